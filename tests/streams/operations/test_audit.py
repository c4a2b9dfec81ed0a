"""podium audit: pure classification, and on the real broker against a deleted response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete

from streams.contracts.catalog import parse_catalog
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.headers import now_ms
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.operations.audit import classify, pipeline_topics, run_audit
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import running

TOPICS = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: a, partitions: 1}
  {p}.mid: {value: podium.demo.Note, consumer: b, partitions: 1}
  {p}.done: {value: podium.demo.Note, partitions: 1}
"""


def chain(prefix: str) -> list[Stage[Any]]:
    async def forward(note: dict[str, Any], ctx: StageContext) -> Emit:
        return Emit(f"{prefix}.mid" if ctx.stage.startswith("a") else f"{prefix}.done", note)

    return [
        Stage(name=f"a{prefix}", consumes=f"{prefix}.in", produces=(f"{prefix}.mid",), handler=forward),
        Stage(name=f"b{prefix}", consumes=f"{prefix}.mid", produces=(f"{prefix}.done",), handler=forward),
    ]


def test_terminal_topics_are_unconsumed_outputs_and_every_dlq(schema_store: SchemaStore) -> None:
    catalog = parse_catalog(TOPICS.replace("{p}", "x"), Path("t.yaml"), schema_store.names())
    assert pipeline_topics(chain("x"), catalog) == ("x.in", ["x.done", "x.in.dlq", "x.mid.dlq"])


def test_classify_sorts_every_request_into_one_bucket() -> None:
    entered = {"ok": 0, "twice": 0, "late": 0, "young": 9_500}
    arrivals = {"ok": ["done"], "twice": ["done", "done"]}
    report = classify(entered, arrivals, now_ms=10_000, grace_ms=1_000)
    assert report.ended == {"ok": "done", "twice": "done"}
    assert report.duplicated == {"twice": ["done", "done"]}
    assert (report.missing, report.in_flight) == (["late"], ["young"])
    # A dead letter that was redriven and then answered ended in its last topic.
    assert classify({"r": 0}, {"r": ["in.dlq", "done"]}, 1, 1).ended == {"r": "done"}


async def test_audit_finds_nothing_missing_then_catches_a_deleted_response(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    stages = chain(unique)
    input_topic, terminal = pipeline_topics(stages, catalog)
    workers = [StageWorker(s, cluster=cluster, catalog=catalog, codec=codec) for s in stages]
    async with Follower(cluster, [f"{unique}.done"]) as follower, running(*workers):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            ids = {await publisher.publish(input_topic, {"request_id": "", "text": str(i)}) for i in range(8)}
        await follower.collect(ids, timeout_s=30)
    clean = await run_audit(cluster, input_topic, terminal, since=None, now_ms=now_ms(), grace_ms=0)
    assert clean.entered == 8 and clean.missing == [] and clean.by_topic == {f"{unique}.done": 8}

    admin = cluster.admin()
    await admin.start()
    try:  # delete the first three responses
        await admin.delete_records({TopicPartition(f"{unique}.done", 0): RecordsToDelete(3)})
    finally:
        await admin.close()
    broken = await run_audit(cluster, input_topic, terminal, since=None, now_ms=now_ms(), grace_ms=0)
    assert len(broken.missing) == 3 and len(broken.ended) == 5
