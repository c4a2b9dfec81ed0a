"""Make a cluster match the catalog: create missing topics, grow partitions, update configs.

The plan is computed without I/O (:func:`plan`) from what the cluster has; :class:`TopicAdmin`
reads the cluster and applies the plan. It never deletes a topic or shrinks anything.

Replication: a topic the catalog leaves to the cluster (``replication: -1``) is created with -1,
and the broker applies its default.replication.factor (KIP-464). The plan learns that default
and the broker count (:class:`ClusterFacts`) so that it can cap min.insync.replicas at the real
replica count and :func:`replication_warnings` can say when a multi-broker cluster keeps a topic
on fewer than three replicas (one broker down and the topic is one failure from unavailable).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from streams.contracts.catalog import CLUSTER_DEFAULT, Catalog, TopicSpec
from streams.errors import BrokerError, CatalogError, ConfigError
from streams.kafka.connection import Cluster, start_admin

__all__ = [
    "SAFE_REPLICAS",
    "Change",
    "ClusterFacts",
    "ExistingTopic",
    "TopicAdmin",
    "check_copartitioned",
    "plan",
    "replication_warnings",
]

#: Fewer replicas than this on a multi-broker cluster gets a warning: with three, one broker may
#: be down (maintenance) and another fail while min.insync.replicas=2 still accepts writes.
SAFE_REPLICAS = 3


@dataclass(frozen=True)
class ExistingTopic:
    partitions: int
    configs: dict[str, str]
    replicas: int | None = None  # the fewest replicas of any of its partitions


@dataclass(frozen=True)
class ClusterFacts:
    """What the plan needs to know about the cluster itself."""

    brokers: int
    default_replication: int  # default.replication.factor: what replication -1 becomes


@dataclass(frozen=True)
class Change:
    topic: str
    action: str  # create | grow | configure
    detail: str
    spec: TopicSpec
    # The topic configs to send: the spec's, with min.insync.replicas capped at the replicas.
    configs: dict[str, str] = field(default_factory=dict)


def _replicas(spec: TopicSpec, have: ExistingTopic | None, facts: ClusterFacts | None) -> int | None:
    on_cluster = have.replicas if have is not None else None
    if on_cluster is None and spec.replication == CLUSTER_DEFAULT and facts is not None:
        on_cluster = facts.default_replication
    return spec.known_replicas(on_cluster)


def plan(
    catalog: Catalog, existing: dict[str, ExistingTopic], facts: ClusterFacts | None = None
) -> list[Change]:
    """What to do so the cluster matches the catalog. Without ``facts`` a topic left to the
    cluster's replication has an unknown replica count, and its min.insync.replicas goes as the
    catalog says."""
    changes: list[Change] = []
    for spec in catalog:
        have = existing.get(spec.name)
        replicas = _replicas(spec, have, facts)
        configs = spec.kafka_configs(replicas)
        if have is None:
            if spec.replication == CLUSTER_DEFAULT:
                default = f"{replicas} " if replicas is not None else ""
                how = f"{default}replica(s), the cluster's default"
            else:
                how = f"{spec.replication} replica(s)"
            changes.append(Change(spec.name, "create", f"{spec.partitions} partitions, {how}", spec, configs))
            continue
        if have.partitions < spec.partitions:
            changes.append(
                Change(spec.name, "grow", f"{have.partitions} -> {spec.partitions} partitions", spec, configs)
            )
        elif have.partitions > spec.partitions:
            raise CatalogError(
                f"{catalog.path}: topic '{spec.name}' has {have.partitions} partitions on the "
                f"cluster but the catalog says {spec.partitions}; Kafka cannot shrink a topic"
            )
        differs = {k: v for k, v in configs.items() if have.configs.get(k) != v}
        if differs:
            detail = ", ".join(f"{k}: {have.configs.get(k)} -> {v}" for k, v in sorted(differs.items()))
            changes.append(Change(spec.name, "configure", detail, spec, configs))
    return changes


def replication_warnings(
    catalog: Catalog, existing: dict[str, ExistingTopic], facts: ClusterFacts
) -> list[str]:
    """What to tell an operator whose multi-broker cluster keeps topics on fewer than
    :data:`SAFE_REPLICAS` replicas, one line per replica count (a catalog has a hundred topics).
    A one-broker cluster (the local broker) has nothing better to offer and gets none."""
    if facts.brokers <= 1:
        return []
    short: dict[int, list[str]] = {}
    for spec in catalog:
        replicas = _replicas(spec, existing.get(spec.name), facts)
        if replicas is not None and replicas < SAFE_REPLICAS:
            short.setdefault(replicas, []).append(spec.name)
    warnings = []
    for replicas, names in sorted(short.items()):
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        existing_ones = [n for n in names if n in existing]
        fix = (
            f"set `replication: {SAFE_REPLICAS}` (or -1 with default.replication.factor="
            f"{SAFE_REPLICAS} on the brokers) in {catalog.path}"
        )
        if existing_ones:
            # CreateTopics sets replication once; raising it later is a partition reassignment.
            fix += (
                f"; {len(existing_ones)} already exist and keep their replicas until reassigned "
                "(kafka-reassign-partitions)"
            )
        warnings.append(
            f"{len(names)} topic(s) have {replicas} replica(s) on a {facts.brokers}-broker cluster "
            f"({shown}): losing a broker can make them unavailable or lose acknowledged records; {fix}"
        )
    return warnings


class TopicAdmin:
    def __init__(self, cluster: Cluster) -> None:
        self._client = cluster.admin(request_timeout_ms=15000)
        self._cluster = cluster

    async def __aenter__(self) -> TopicAdmin:
        await start_admin(
            self._cluster,
            self._client,
            "start the local broker with `podium broker start` or set KAFKA_BOOTSTRAP_SERVERS",
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.close()

    async def existing(self, names: list[str] | None = None) -> dict[str, ExistingTopic]:
        listed = set(await self._client.list_topics())
        wanted = sorted(listed if names is None else listed & set(names))
        if not wanted:
            return {}
        described = await self._client.describe_topics(wanted)
        partitions = {t["topic"]: len(t["partitions"]) for t in described}
        replicas = {
            t["topic"]: min((len(p["replicas"]) for p in t["partitions"]), default=None) for t in described
        }
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
        configs: dict[str, dict[str, str]] = {}
        for response in await self._client.describe_configs(resources):
            for resource in response.resources:
                # (error_code, error_message, type, name, [(key, value, read_only, ...)])
                configs[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
        return {n: ExistingTopic(partitions[n], configs.get(n, {}), replicas[n]) for n in wanted}

    async def _until_listed(self, names: set[str], within_s: float = 15.0) -> None:
        """The controller has created them when CreateTopics answers; each broker learns of them
        from the metadata log a moment later. Wait until the metadata lists them, so that what
        runs next (a worker subscribing, an apply that reads the cluster again) finds them."""
        try:
            async with asyncio.timeout(within_s):
                while True:
                    if names <= set(await self._client.list_topics()):
                        return
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise BrokerError(
                f"Kafka at {self._cluster} created {sorted(names)} but its metadata did not list "
                f"them within {within_s:.0f} s; run `podium topics apply` again to check"
            ) from None

    async def facts(self) -> ClusterFacts:
        """How many brokers the cluster has, and the default.replication.factor of one of them
        (a cluster-wide setting in practice: brokers that disagree are a misconfiguration)."""
        cluster = await self._client.describe_cluster()
        brokers = cluster["brokers"]
        if not brokers:
            raise BrokerError(f"Kafka at {self._cluster} named no brokers in its metadata")
        node = str(cluster.get("controller_id") or brokers[0]["node_id"])
        if node not in {str(b["node_id"]) for b in brokers}:
            node = str(brokers[0]["node_id"])  # KRaft: the controller is not always a broker
        resource = ConfigResource(ConfigResourceType.BROKER, node)
        for response in await self._client.describe_configs([resource]):
            for code, message, _type, _name, entries in (r[:5] for r in response.resources):
                if code:
                    raise BrokerError(
                        f"cannot read broker {node}'s configs: {for_code(code).__name__} {message}; "
                        "the principal needs DESCRIBE_CONFIGS on the cluster"
                    )
                for entry in entries:
                    if entry[0] == "default.replication.factor":
                        return ClusterFacts(len(brokers), int(entry[1]))
        raise BrokerError(f"broker {node} did not report its default.replication.factor")

    async def apply(self, catalog: Catalog) -> list[Change]:
        changes = plan(catalog, await self.existing(catalog.names()), await self.facts())
        creates = [c for c in changes if c.action == "create"]
        if creates:
            response = await self._client.create_topics([_new_topic(c) for c in creates])
            for topic, code, *message in response.topic_errors:
                # Already there: another process created it between our read and our write.
                if code and for_code(code) is not TopicAlreadyExistsError:
                    raise BrokerError(f"could not create topic {topic}: {for_code(code).__name__} {message}")
            await self._until_listed({c.topic for c in creates})
        grows = {c.topic: NewPartitions(c.spec.partitions) for c in changes if c.action == "grow"}
        if grows:
            await self._client.create_partitions(grows)
        configures = [c for c in changes if c.action == "configure"]
        if configures:
            # AlterConfigs (not incremental) replaces a topic's whole override set: podium owns
            # the topic configs it declares; other overrides set by hand are reset.
            for response in await self._client.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, c.topic, configs=c.configs) for c in configures]
            ):
                for code, message, _type, name in response.resources:
                    if code:
                        raise BrokerError(f"could not configure {name}: {for_code(code).__name__} {message}")
        return changes


def _new_topic(change: Change) -> NewTopic:
    spec = change.spec
    topic = NewTopic(spec.name, spec.partitions, max(spec.replication, 1), topic_configs=change.configs)
    # NewTopic refuses -1 without a replica assignment (a check older than KIP-464); the broker
    # takes -1 as "my default.replication.factor", so it is set past the check.
    topic.replication_factor = spec.replication
    return topic


async def check_copartitioned(producer: AIOKafkaProducer, topics: Iterable[str], stage: str) -> None:
    """A stage that meets one key's records from several topics in one worker needs them all
    partitioned alike: the same count (and the same key, which is the producers' part)."""
    counts = {t: len(await producer.partitions_for(t)) for t in topics}
    if len(set(counts.values())) > 1:
        raise ConfigError(
            f"stage {stage} reads keyed topics with different partition counts {counts}: "
            "give them the same `partitions:` in topics.yaml"
        )
