"""Make a cluster match the catalog: create missing topics, grow partitions, update configs.

The plan is computed without I/O (:func:`plan`) from what the cluster has; :class:`TopicAdmin`
reads the cluster and applies the plan. It never deletes a topic or shrinks anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from streams.contracts.catalog import Catalog, TopicSpec
from streams.errors import BrokerError, CatalogError, ConfigError
from streams.kafka.connection import Cluster

__all__ = ["Change", "ExistingTopic", "TopicAdmin", "check_copartitioned", "plan"]


@dataclass(frozen=True)
class ExistingTopic:
    partitions: int
    configs: dict[str, str]


@dataclass(frozen=True)
class Change:
    topic: str
    action: str  # create | grow | configure
    detail: str
    spec: TopicSpec


def plan(catalog: Catalog, existing: dict[str, ExistingTopic]) -> list[Change]:
    changes: list[Change] = []
    for spec in catalog:
        have = existing.get(spec.name)
        if have is None:
            changes.append(Change(spec.name, "create", f"{spec.partitions} partitions", spec))
            continue
        if have.partitions < spec.partitions:
            changes.append(
                Change(spec.name, "grow", f"{have.partitions} -> {spec.partitions} partitions", spec)
            )
        elif have.partitions > spec.partitions:
            raise CatalogError(
                f"{catalog.path}: topic '{spec.name}' has {have.partitions} partitions on the "
                f"cluster but the catalog says {spec.partitions}; Kafka cannot shrink a topic"
            )
        differs = {k: v for k, v in spec.kafka_configs().items() if have.configs.get(k) != v}
        if differs:
            detail = ", ".join(f"{k}: {have.configs.get(k)} -> {v}" for k, v in sorted(differs.items()))
            changes.append(Change(spec.name, "configure", detail, spec))
    return changes


class TopicAdmin:
    def __init__(self, cluster: Cluster) -> None:
        self._client = cluster.admin(request_timeout_ms=15000)
        self._cluster = cluster

    async def __aenter__(self) -> TopicAdmin:
        try:
            await self._client.start()
        except KafkaError as exc:
            await self._client.close()
            raise BrokerError(
                f"cannot reach Kafka at {self._cluster} ({exc}); start the local broker with "
                "`podium broker start` or set KAFKA_BOOTSTRAP_SERVERS"
            ) from exc
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
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
        configs: dict[str, dict[str, str]] = {}
        for response in await self._client.describe_configs(resources):
            for resource in response.resources:
                # (error_code, error_message, type, name, [(key, value, read_only, ...)])
                configs[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
        return {n: ExistingTopic(partitions[n], configs.get(n, {})) for n in wanted}

    async def apply(self, catalog: Catalog) -> list[Change]:
        changes = plan(catalog, await self.existing(catalog.names()))
        creates = [c.spec for c in changes if c.action == "create"]
        if creates:
            response = await self._client.create_topics(
                [
                    NewTopic(s.name, s.partitions, s.replication, topic_configs=s.kafka_configs())
                    for s in creates
                ]
            )
            for topic, code, *message in response.topic_errors:
                # Already there: another process created it between our read and our write.
                if code and for_code(code) is not TopicAlreadyExistsError:
                    raise BrokerError(f"could not create topic {topic}: {for_code(code).__name__} {message}")
        grows = {c.topic: NewPartitions(c.spec.partitions) for c in changes if c.action == "grow"}
        if grows:
            await self._client.create_partitions(grows)
        configures = [c.spec for c in changes if c.action == "configure"]
        if configures:
            # AlterConfigs (not incremental) replaces a topic's whole override set: podium owns
            # the topic configs it declares; other overrides set by hand are reset.
            for response in await self._client.alter_configs(
                [
                    ConfigResource(ConfigResourceType.TOPIC, s.name, configs=s.kafka_configs())
                    for s in configures
                ]
            ):
                for code, message, _type, name in response.resources:
                    if code:
                        raise BrokerError(f"could not configure {name}: {for_code(code).__name__} {message}")
        return changes


async def check_copartitioned(producer: AIOKafkaProducer, topics: Iterable[str], stage: str) -> None:
    """A stage that meets one key's records from several topics in one worker needs them all
    partitioned alike: the same count (and the same key, which is the producers' part)."""
    counts = {t: len(await producer.partitions_for(t)) for t in topics}
    if len(set(counts.values())) > 1:
        raise ConfigError(
            f"stage {stage} reads keyed topics with different partition counts {counts}: "
            "give them the same `partitions:` in topics.yaml"
        )
