"""Topics on the cluster's replication: the plan and its warning without I/O, then the real broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import Settings
from streams.contracts.catalog import parse_catalog
from streams.contracts.schemas import SchemaStore
from streams.kafka.admin import ClusterFacts, ExistingTopic, TopicAdmin, plan, replication_warnings
from streams.kafka.connection import Cluster
from tests.streams.kafka.three_brokers import three_brokers

SCHEMAS = ["podium.demo.Note", "podium.DeadLetter"]
P = Path("topics.yaml")
CATALOG = parse_catalog(
    "defaults:\n  min_insync_replicas: 2\ntopics:\n"
    "  in:\n    value: podium.demo.Note\n    consumer: s\n"
    "  out:\n    value: podium.demo.Note\n    replication: 3\n",
    P,
    SCHEMAS,
)


def test_a_topic_left_to_the_cluster_is_created_with_minus_one_and_min_isr_capped_at_its_default() -> None:
    one_node = {c.topic: c for c in plan(CATALOG, {}, ClusterFacts(brokers=1, default_replication=1))}
    assert set(one_node) == {"in", "in.retry", "in.dlq", "out"}
    assert one_node["in"].detail == "3 partitions, 1 replica(s), the cluster's default"
    assert one_node["in"].configs["min.insync.replicas"] == "1"
    assert one_node["out"].detail == "3 partitions, 3 replica(s)"
    assert one_node["out"].configs["min.insync.replicas"] == "2"
    production = plan(CATALOG, {}, ClusterFacts(brokers=5, default_replication=3))
    assert {c.configs["min.insync.replicas"] for c in production} == {"2"}
    assert plan(CATALOG, {})[0].detail == "3 partitions, replica(s), the cluster's default"


def test_a_topic_on_one_replica_keeps_min_isr_one_so_applying_again_changes_nothing() -> None:
    facts = ClusterFacts(brokers=1, default_replication=1)
    existing = {
        c.topic: ExistingTopic(c.spec.partitions, c.configs, replicas=max(c.spec.replication, 1))
        for c in plan(CATALOG, {}, facts)
    }
    assert plan(CATALOG, existing, facts) == []
    # The topic's own replicas decide, not the cluster's default of today.
    grown_default = ClusterFacts(brokers=3, default_replication=3)
    assert plan(CATALOG, existing, grown_default) == []
    raised = {**existing, "in": ExistingTopic(3, {**existing["in"].configs}, replicas=3)}
    (change,) = plan(CATALOG, raised, grown_default)
    assert (change.topic, change.action, change.detail) == ("in", "configure", "min.insync.replicas: 1 -> 2")


def test_a_multi_broker_cluster_with_fewer_than_three_replicas_gets_one_warning_per_count() -> None:
    assert replication_warnings(CATALOG, {}, ClusterFacts(brokers=1, default_replication=1)) == []
    assert replication_warnings(CATALOG, {}, ClusterFacts(brokers=3, default_replication=3)) == []
    (warning,) = replication_warnings(CATALOG, {}, ClusterFacts(brokers=3, default_replication=1))
    assert warning.startswith("3 topic(s) have 1 replica(s) on a 3-broker cluster (in, in.retry, in.dlq)")
    assert (
        "set `replication: 3` (or -1 with default.replication.factor=3 on the brokers) in topics.yaml"
        in warning
    )
    assert "already exist" not in warning  # nothing exists yet: the catalog alone fixes it
    existing = {"out": ExistingTopic(3, {}, replicas=2), "in": ExistingTopic(3, {}, replicas=1)}
    ones, twos = replication_warnings(CATALOG, existing, ClusterFacts(brokers=3, default_replication=1))
    assert ones.startswith("3 topic(s) have 1 replica(s)") and "1 already exist" in ones
    assert twos.startswith("1 topic(s) have 2 replica(s) on a 3-broker cluster (out)")
    assert "kafka-reassign-partitions" in twos
    many = parse_catalog(
        "topics:\n" + "".join(f"  t{i}:\n    value: podium.demo.Note\n" for i in range(8)), P, SCHEMAS
    )
    (long,) = replication_warnings(many, {}, ClusterFacts(brokers=2, default_replication=2))
    assert "(t0, t1, t2, t3, t4 and 3 more)" in long


async def test_the_one_node_broker_creates_a_cluster_default_topic_with_one_replica(
    cluster: Cluster, unique: str, schema_store: SchemaStore
) -> None:
    catalog = parse_catalog(
        f"defaults:\n  replication: -1\n  min_insync_replicas: 2\ntopics:\n"
        f"  {unique}.a:\n    value: podium.demo.Note\n    consumer: s\n    partitions: 2\n",
        P,
        schema_store.names(),
    )
    async with TopicAdmin(cluster) as admin:
        facts = await admin.facts()
        assert facts == ClusterFacts(brokers=1, default_replication=1)
        assert replication_warnings(catalog, {}, facts) == []
        created = await admin.apply(catalog)
        assert [c.action for c in created] == ["create"] * 3
        existing = await admin.existing(catalog.names())
        assert await admin.apply(catalog) == []  # min.insync.replicas went as 1: nothing to fix
    for name in catalog.names():
        assert existing[name].replicas == 1
        assert existing[name].configs["min.insync.replicas"] == "1"


@pytest.mark.kafka
async def test_on_three_brokers_the_cluster_default_means_three_replicas_and_one_replica_is_warned_about(
    broker_settings: Settings, tmp_path: Path, schema_store: SchemaStore
) -> None:
    catalog = parse_catalog(
        "defaults:\n  replication: -1\n  min_insync_replicas: 2\ntopics:\n"
        "  wide:\n    value: podium.demo.Note\n    consumer: s\n"
        "  thin:\n    value: podium.demo.Note\n    replication: 1\n",
        P,
        schema_store.names(),
    )
    async with three_brokers(broker_settings, tmp_path) as bootstrap, TopicAdmin(Cluster(bootstrap)) as admin:
        facts = await admin.facts()
        assert facts == ClusterFacts(brokers=3, default_replication=3)
        (warning,) = replication_warnings(catalog, {}, facts)
        assert warning.startswith("1 topic(s) have 1 replica(s) on a 3-broker cluster (thin)")
        await admin.apply(catalog)
        existing = await admin.existing(catalog.names())
        assert await admin.apply(catalog) == []
    assert {n: (t.replicas, t.configs["min.insync.replicas"]) for n, t in existing.items()} == {
        "wide": (3, "2"),
        "wide.retry": (3, "2"),
        "wide.dlq": (3, "2"),
        "thin": (1, "1"),  # the defaults' 2 capped at its one replica: it stays writable
    }
    (after,) = replication_warnings(catalog, existing, facts)
    assert "1 already exist and keep their replicas until reassigned" in after
