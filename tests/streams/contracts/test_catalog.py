from pathlib import Path

import pytest

from streams.contracts.catalog import load_catalog, parse_catalog
from streams.contracts.schemas import SchemaStore
from streams.errors import CatalogError
from streams.kafka.admin import ExistingTopic, plan

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = ["podium.demo.Note", "podium.DeadLetter"]
P = Path("topics.yaml")


def test_repo_catalog_derives_retry_and_dlq_for_every_consumed_topic(schema_store: SchemaStore) -> None:
    catalog = load_catalog(REPO / "topics.yaml", schema_store.names())
    consumed = [t for t in catalog if t.role == "main" and t.consumer]
    assert consumed
    for topic in consumed:
        retry = catalog.get(topic.name + ".retry")
        dlq = catalog.get(topic.name + ".dlq")
        assert retry.value_schema == topic.value_schema and retry.parent == topic.name
        assert dlq.value_schema == "podium.DeadLetter" and dlq.consumer is None
        assert dlq.max_message_bytes > topic.max_message_bytes


def test_an_input_topic_may_declare_the_budget_ingress_gives_new_requests(schema_store: SchemaStore) -> None:
    catalog = load_catalog(REPO / "topics.yaml", schema_store.names())
    assert catalog.get("support.requests").budget_ms == 8000
    assert (
        catalog.get("support.requests.retry").budget_ms == 8000
        and catalog.get("demo.notes").budget_ms is None
    )
    with pytest.raises(CatalogError, match=r"topics\.yaml:3: field 'budget' must be a duration"):
        parse_catalog("topics:\n  a:\n    budget: soon\n    value: podium.demo.Note\n", P, SCHEMAS)


def test_defaults_apply_and_topics_override() -> None:
    catalog = parse_catalog(
        "defaults:\n  partitions: 2\n  retention: 1d\ntopics:\n"
        "  a:\n    value: podium.demo.Note\n    partitions: 6\n    retention: forever\n"
        "  b:\n    value: podium.demo.Note\n    cleanup: compact\n    max_message_bytes: 512KiB\n",
        P,
        SCHEMAS,
    )
    a, b = catalog.get("a"), catalog.get("b")
    assert (a.partitions, a.retention_ms) == (6, -1)
    assert (b.partitions, b.retention_ms, b.cleanup, b.max_message_bytes) == (
        2,
        86_400_000,
        "compact",
        512 * 1024,
    )
    assert catalog.names() == ["a", "b"]  # nothing consumed: no companions


def test_a_compacted_topic_may_keep_its_tombstones_longer(schema_store: SchemaStore) -> None:
    catalog = parse_catalog(
        "topics:\n  d:\n    value: podium.demo.Note\n    consumer: c\n    cleanup: compact\n"
        "    tombstone_retention: 30d\n",
        P,
        SCHEMAS,
    )
    assert catalog.get("d").kafka_configs()["delete.retention.ms"] == str(30 * 86_400_000)
    assert "delete.retention.ms" not in catalog.get("d.dlq").kafka_configs()  # not compacted
    assert (
        "delete.retention.ms"
        not in parse_catalog("topics:\n  e:\n    value: podium.demo.Note\n", P, SCHEMAS)
        .get("e")
        .kafka_configs()
    )
    repo = load_catalog(REPO / "topics.yaml", schema_store.names())
    assert repo.get("kb.documents").tombstone_retention_ms == 30 * 86_400_000
    with pytest.raises(CatalogError, match="'tombstone_retention' needs 'cleanup: compact'"):
        parse_catalog("topics:\n  f:\n    value: podium.demo.Note\n    tombstone_retention: 1d\n", P, SCHEMAS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "topics:\n  a:\n    value: podium.demo.Note\n    partitions: zero\n",
            "topics.yaml:4: field 'partitions'",
        ),
        (
            "topics:\n  a:\n    value: nope.Missing\n",
            "topics.yaml:3: topic 'a': field 'value': no schema 'nope.Missing'",
        ),
        (
            "topics:\n  a:\n    value: podium.demo.Note\n    colour: red\n",
            "topics.yaml:4: topic 'a': unknown field 'colour'",
        ),
        ("topics:\n  a.dlq:\n    value: podium.demo.Note\n", "are derived, not declared"),
        ("topics:\n  a:\n    partitions: 1\n", "missing field 'value'"),
        (
            "topics:\n  a:\n    value: podium.demo.Note\n  a:\n    value: podium.demo.Note\n",
            "topics.yaml:4: topics: 'a' appears twice",
        ),
        (
            "topics:\n  a:\n    value: podium.demo.Note\n    retention: 7 days\n",
            "field 'retention' must be a duration",
        ),
        ("topics: [1, 2\n", "not valid YAML"),
    ],
)
def test_invalid_catalog_names_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message.replace(".", r"\.").replace("'", "'")):
        parse_catalog(text, P, SCHEMAS)


def test_plan_creates_grows_configures_and_refuses_to_shrink() -> None:
    catalog = parse_catalog(
        "topics:\n  a:\n    value: podium.demo.Note\n    partitions: 4\n"
        "  b:\n    value: podium.demo.Note\n    partitions: 2\n"
        "  c:\n    value: podium.demo.Note\n    partitions: 1\n",
        P,
        SCHEMAS,
    )
    same = catalog.get("c").kafka_configs()
    existing = {
        "a": ExistingTopic(2, same),
        "c": ExistingTopic(1, {**same, "retention.ms": "1"}),
    }
    changes = {(c.topic, c.action) for c in plan(catalog, existing)}
    assert changes == {("a", "grow"), ("b", "create"), ("c", "configure")}
    assert (
        plan(
            catalog,
            {n: ExistingTopic(t.partitions, t.kafka_configs()) for n, t in ((t.name, t) for t in catalog)},
        )
        == []
    )
    with pytest.raises(CatalogError, match="cannot shrink"):
        plan(catalog, {"b": ExistingTopic(5, same)})


def test_replication_is_left_to_the_cluster_unless_the_catalog_names_it(schema_store: SchemaStore) -> None:
    catalog = parse_catalog(
        "topics:\n  a:\n    value: podium.demo.Note\n    consumer: s\n"
        "  b:\n    value: podium.demo.Note\n    replication: 3\n"
        "  c:\n    value: podium.demo.Note\n    replication: -1\n",
        P,
        SCHEMAS,
    )
    assert [catalog.get(n).replication for n in ("a", "a.retry", "a.dlq", "b", "c")] == [-1, -1, -1, 3, -1]
    shipped = load_catalog(REPO / "topics.yaml", schema_store.names())
    assert {t.replication for t in shipped} == {-1}
    assert {t.min_insync_replicas for t in shipped} == {2}
    with pytest.raises(CatalogError, match=r"topics\.yaml:4: field 'replication' must be .* or -1"):
        parse_catalog("topics:\n  a:\n    value: podium.demo.Note\n    replication: 0\n", P, SCHEMAS)


def test_min_insync_replicas_is_sent_but_never_above_the_replicas() -> None:
    catalog = parse_catalog(
        "defaults:\n  min_insync_replicas: 2\ntopics:\n"
        "  left:\n    value: podium.demo.Note\n"
        "  three:\n    value: podium.demo.Note\n    replication: 3\n"
        "  plain:\n    value: podium.demo.Note\n    min_insync_replicas: 1\n",
        P,
        SCHEMAS,
    )
    left, three = catalog.get("left"), catalog.get("three")
    # Replication left to the cluster and not yet known: the catalog's number goes as it is.
    assert left.kafka_configs()["min.insync.replicas"] == "2"
    # Known (the one-node broker's default, or the topic's replicas on the cluster): capped.
    assert left.kafka_configs(replicas=1)["min.insync.replicas"] == "1"
    assert left.kafka_configs(replicas=3)["min.insync.replicas"] == "2"
    assert three.kafka_configs()["min.insync.replicas"] == "2"
    assert catalog.get("plain").kafka_configs(replicas=3)["min.insync.replicas"] == "1"
    unset = parse_catalog("topics:\n  a:\n    value: podium.demo.Note\n", P, SCHEMAS).get("a")
    assert "min.insync.replicas" not in unset.kafka_configs(replicas=3)  # the cluster's own
    with pytest.raises(
        CatalogError, match=r"topics\.yaml:5: .*'min_insync_replicas' \(3\) is above its replication \(2\)"
    ):
        parse_catalog(
            "topics:\n  a:\n    value: podium.demo.Note\n    replication: 2\n    min_insync_replicas: 3\n",
            P,
            SCHEMAS,
        )
    # The defaults' number is capped at a topic's own replication, not refused.
    single = parse_catalog(
        "defaults:\n  min_insync_replicas: 2\n"
        "topics:\n  a:\n    value: podium.demo.Note\n    replication: 1\n",
        P,
        SCHEMAS,
    ).get("a")
    assert single.kafka_configs()["min.insync.replicas"] == "1"
    with pytest.raises(CatalogError, match="field 'min_insync_replicas' must be an integer >= 1"):
        parse_catalog("topics:\n  a:\n    value: podium.demo.Note\n    min_insync_replicas: 0\n", P, SCHEMAS)
