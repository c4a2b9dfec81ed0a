"""The topic catalog: ``topics.yaml`` read into frozen :class:`TopicSpec` objects.

Every consumed topic gets two companions by one fixed rule, created with it:
``<topic>.retry`` (same value schema; delayed re-runs) and ``<topic>.dlq`` (``podium.DeadLetter``
records holding the original bytes). Names ending in ``.retry`` or ``.dlq`` are reserved.

``replication: -1`` (the shipped default) leaves the replica count to the cluster's own
``default.replication.factor`` (CreateTopics accepts -1 since Kafka 2.4, KIP-464), so one catalog
serves the one-node local broker and a three-broker production cluster alike.
``min_insync_replicas`` is sent as ``min.insync.replicas``, never above the topic's replica count
where that is known (see :meth:`TopicSpec.kafka_configs`).

Errors name the file, the line and the field, because a catalog is edited by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from streams.errors import CatalogError

__all__ = [
    "CLUSTER_DEFAULT",
    "DEAD_LETTER_SCHEMA",
    "Catalog",
    "TopicSpec",
    "dlq_topic",
    "load_catalog",
    "parse_catalog",
    "retry_topic",
]

DEAD_LETTER_SCHEMA = "podium.DeadLetter"
#: ``replication`` left to the cluster (its default.replication.factor), as CreateTopics takes it.
CLUSTER_DEFAULT = -1
RETRY_SUFFIX = ".retry"
DLQ_SUFFIX = ".dlq"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_DURATION = re.compile(r"^(?P<n>\d+)(?P<unit>ms|s|m|h|d)$")
_SIZE = re.compile(r"^(?P<n>\d+)(?P<unit>B|KiB|MiB)?$")
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_UNITS_B = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024 * 1024}
_CLEANUP = {"delete", "compact", "compact,delete"}
_TOPIC_FIELDS = {
    "partitions",
    "replication",
    "min_insync_replicas",
    "retention",
    "cleanup",
    "max_message_bytes",
    "key",
    "value",
    "consumer",
    "description",
    "dlq_retention",
    "budget",
    "tombstone_retention",
}


def retry_topic(topic: str) -> str:
    return topic + RETRY_SUFFIX


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int  # CLUSTER_DEFAULT (-1): the cluster's default.replication.factor
    retention_ms: int  # -1: keep forever
    cleanup: str
    max_message_bytes: int
    key: str  # "string" (request id) or "bytes"
    value_schema: str
    consumer: str | None = None
    description: str = ""
    role: str = "main"  # main | retry | dlq
    parent: str | None = None
    # The latency budget ingress gives a new request on this topic unless the caller names one.
    budget_ms: int | None = None
    # A compacted topic's delete.retention.ms: how long a tombstone outlives compaction. A
    # consumer that is down longer never sees the deletion (the broker's default is 1 day).
    tombstone_retention_ms: int | None = None
    # How many replicas must have a write before an acks=all producer (every podium producer)
    # hears it succeeded. None: the cluster's own min.insync.replicas.
    min_insync_replicas: int | None = None

    def known_replicas(self, on_cluster: int | None = None) -> int | None:
        """The topic's replica count: what the cluster has (``on_cluster``), else the catalog's
        number; None when both are unknown (replication left to the cluster, not yet asked)."""
        if on_cluster is not None:
            return on_cluster
        return None if self.replication == CLUSTER_DEFAULT else self.replication

    def kafka_configs(self, replicas: int | None = None) -> dict[str, str]:
        """The topic configs podium owns. ``replicas``: the topic's replica count when known
        beyond the catalog (the cluster's default, or the topic's own on the cluster).

        min.insync.replicas is capped at the replica count: above it, no acks=all write could
        ever succeed (NotEnoughReplicas), so the catalog's 2 becomes 1 on a one-node broker.
        """
        configs = {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup,
            "max.message.bytes": str(self.max_message_bytes),
        }
        if self.tombstone_retention_ms is not None:
            configs["delete.retention.ms"] = str(self.tombstone_retention_ms)
        if self.min_insync_replicas is not None:
            known = self.known_replicas(replicas)
            wanted = self.min_insync_replicas if known is None else min(self.min_insync_replicas, known)
            configs["min.insync.replicas"] = str(wanted)
        return configs


@dataclass(frozen=True)
class Catalog:
    path: Path
    topics: tuple[TopicSpec, ...]

    def __iter__(self) -> Any:
        return iter(self.topics)

    def get(self, name: str) -> TopicSpec:
        for topic in self.topics:
            if topic.name == name:
                return topic
        raise CatalogError(f"{self.path}: no topic '{name}' (known: {', '.join(self.names())})")

    def names(self) -> list[str]:
        return [t.name for t in self.topics]

    def consumed_by(self, stage: str) -> list[TopicSpec]:
        return [t for t in self.topics if t.consumer == stage]

    def select(self, names: Iterable[str]) -> Catalog:
        wanted = set(names)
        return replace(self, topics=tuple(t for t in self.topics if t.name in wanted))


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: yaml.Node, what: str) -> CatalogError:
        return CatalogError(f"{self.path}:{node.start_mark.line + 1}: {what}")

    def mapping(self, node: yaml.Node, what: str) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.fail(key, f"{what}: keys must be plain names")
            if key.value in out:
                raise self.fail(key, f"{what}: '{key.value}' appears twice")
            out[key.value] = value
        return out

    def scalar(self, node: yaml.Node, field: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"field '{field}' must be a single value")
        return str(node.value)

    def replication(self, node: yaml.Node) -> int:
        text = self.scalar(node, "replication")
        if text == str(CLUSTER_DEFAULT):
            return CLUSTER_DEFAULT
        if not text.isdigit() or int(text) < 1:
            raise self.fail(
                node,
                f"field 'replication' must be an integer >= 1, or -1 for the cluster's "
                f"default.replication.factor, got '{text}'",
            )
        return int(text)

    def integer(self, node: yaml.Node, field: str, minimum: int = 1) -> int:
        text = self.scalar(node, field)
        if not text.isdigit() or int(text) < minimum:
            raise self.fail(node, f"field '{field}' must be an integer >= {minimum}, got '{text}'")
        return int(text)

    def duration_ms(self, node: yaml.Node, field: str) -> int:
        text = self.scalar(node, field)
        if text in ("forever", "-1"):
            return -1
        match = _DURATION.match(text)
        if not match:
            raise self.fail(node, f"field '{field}' must be a duration like 7d, 12h, 30m or 'forever'")
        return int(match["n"]) * _UNITS_MS[match["unit"]]

    def size_bytes(self, node: yaml.Node, field: str) -> int:
        text = self.scalar(node, field)
        match = _SIZE.match(text)
        if not match:
            raise self.fail(node, f"field '{field}' must be a size like 8MiB, 512KiB or 1048576")
        return int(match["n"]) * _UNITS_B[match["unit"]]


def parse_catalog(text: str, path: Path, known_schemas: Iterable[str] | None = None) -> Catalog:
    reader = _Reader(path)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from exc
    if root is None:
        raise CatalogError(f"{path}: empty catalog")
    top = reader.mapping(root, "the catalog")
    for key in top:
        if key not in ("defaults", "topics"):
            raise reader.fail(root, f"unknown top-level field '{key}' (expected defaults, topics)")
    if "topics" not in top:
        raise reader.fail(root, "missing 'topics'")
    defaults = reader.mapping(top["defaults"], "defaults") if "defaults" in top else {}
    schemas = set(known_schemas) if known_schemas is not None else None

    topics: list[TopicSpec] = []
    for name, node in reader.mapping(top["topics"], "topics").items():
        own = reader.mapping(node, f"topic '{name}'")
        fields = {**defaults, **own}
        for key, value in fields.items():
            if key not in _TOPIC_FIELDS:
                raise reader.fail(value, f"topic '{name}': unknown field '{key}'")
        if not _NAME.match(name):
            raise reader.fail(node, f"topic '{name}': names use letters, digits, '.', '_', '-'")
        if name.endswith((RETRY_SUFFIX, DLQ_SUFFIX)):
            raise reader.fail(node, f"topic '{name}': .retry and .dlq topics are derived, not declared")
        if "value" not in fields:
            raise reader.fail(node, f"topic '{name}': missing field 'value' (the record's schema)")
        value_schema = reader.scalar(fields["value"], "value")
        if schemas is not None and value_schema not in schemas:
            raise reader.fail(
                fields["value"], f"topic '{name}': field 'value': no schema '{value_schema}' in schemas/"
            )
        key = reader.scalar(fields["key"], "key") if "key" in fields else "string"
        if key not in ("string", "bytes"):
            raise reader.fail(fields["key"], f"topic '{name}': field 'key' must be string or bytes")
        cleanup = reader.scalar(fields["cleanup"], "cleanup") if "cleanup" in fields else "delete"
        if cleanup not in _CLEANUP:
            raise reader.fail(
                fields["cleanup"],
                f"topic '{name}': field 'cleanup' must be one of {sorted(_CLEANUP)}",
            )
        consumer = reader.scalar(fields["consumer"], "consumer") if "consumer" in fields else None
        spec = TopicSpec(
            name=name,
            partitions=reader.integer(fields["partitions"], "partitions") if "partitions" in fields else 3,
            replication=reader.replication(fields["replication"])
            if "replication" in fields
            else CLUSTER_DEFAULT,
            min_insync_replicas=reader.integer(fields["min_insync_replicas"], "min_insync_replicas")
            if "min_insync_replicas" in fields
            else None,
            retention_ms=reader.duration_ms(fields["retention"], "retention")
            if "retention" in fields
            else 7 * 86_400_000,
            cleanup=cleanup,
            max_message_bytes=reader.size_bytes(fields["max_message_bytes"], "max_message_bytes")
            if "max_message_bytes" in fields
            else 8 * 1024 * 1024,
            key=key,
            value_schema=value_schema,
            consumer=consumer if consumer not in ("", "null", "~") else None,
            description=reader.scalar(fields["description"], "description")
            if "description" in fields
            else "",
            budget_ms=reader.duration_ms(fields["budget"], "budget") if "budget" in fields else None,
            tombstone_retention_ms=reader.duration_ms(fields["tombstone_retention"], "tombstone_retention")
            if "tombstone_retention" in fields
            else None,
        )
        # A topic that names both, with min.insync.replicas above its replication, is a mistake;
        # the defaults' min_insync_replicas is capped at a topic's own replication instead.
        if (
            "min_insync_replicas" in own
            and spec.min_insync_replicas is not None
            and spec.replication != CLUSTER_DEFAULT
            and spec.min_insync_replicas > spec.replication
        ):
            raise reader.fail(
                fields["min_insync_replicas"],
                f"topic '{name}': field 'min_insync_replicas' ({spec.min_insync_replicas}) is above "
                f"its replication ({spec.replication}): no acks=all write could ever succeed",
            )
        if spec.tombstone_retention_ms is not None and "compact" not in spec.cleanup:
            raise reader.fail(
                fields["tombstone_retention"],
                f"topic '{name}': field 'tombstone_retention' needs 'cleanup: compact' (tombstones"
                " are a compacted topic's deletions)",
            )
        topics.append(spec)
        if spec.consumer:
            dlq_retention = (
                reader.duration_ms(fields["dlq_retention"], "dlq_retention")
                if "dlq_retention" in fields
                else 30 * 86_400_000
            )
            topics.append(
                replace(
                    spec,
                    name=retry_topic(name),
                    role="retry",
                    parent=name,
                    description=f"delayed re-runs of {name}",
                )
            )
            topics.append(
                replace(
                    spec,
                    name=dlq_topic(name),
                    role="dlq",
                    parent=name,
                    consumer=None,
                    value_schema=DEAD_LETTER_SCHEMA,
                    retention_ms=dlq_retention,
                    cleanup="delete",
                    tombstone_retention_ms=None,
                    # A dead letter holds the original bytes plus its reason: give it room.
                    max_message_bytes=spec.max_message_bytes + 1024 * 1024,
                    description=f"records of {name} that could not be processed",
                )
            )
    return Catalog(path=path, topics=tuple(topics))


def load_catalog(path: Path, known_schemas: Iterable[str] | None = None) -> Catalog:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CatalogError(
            f"{path}: cannot read the topic catalog ({exc.strerror}); set PODIUM_TOPICS"
        ) from exc
    return parse_catalog(text, path, known_schemas)
