"""Tombstones (records with no value, deletions on a compacted topic): dead-lettered unless the
stage declares ``on_tombstone``; then the key's handler runs with the same retries and outcomes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord
from opentelemetry import metrics, trace

from streams.contracts.catalog import parse_catalog
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.headers import REQUEST_ID, parse_headers
from streams.contracts.schemas import SchemaStore
from streams.errors import PermanentError, TransientError
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.runtime.outcome import Outcomes
from streams.runtime.retry import RetryPolicy
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import running

NOTE = "podium.demo.Note"

TOPICS = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: keep, cleanup: compact, retention: forever, partitions: 2}
  {p}.out: {value: podium.demo.Note, partitions: 1}
"""


def _stage(prefix: str, **kwargs: Any) -> Stage[Any]:
    async def keep(note: dict[str, Any], ctx: StageContext) -> Emit:
        return Emit(f"{prefix}.out", {**note, "text": f"kept {note['text']}"})

    return Stage("keep", f"{prefix}.in", (f"{prefix}.out",), keep, **kwargs)


def _gone(prefix: str, runs: Counter[str] | None = None, fail_first: int = 0) -> Any:
    async def gone(key: str, ctx: StageContext) -> Emit:
        if runs is not None:
            runs[key] += 1
            if runs[key] <= fail_first:
                raise TransientError(f"store busy ({runs[key]})")
        return Emit(f"{prefix}.out", {"request_id": key, "text": f"deleted {key}"}, key=key)

    return gone


def _tombstone(topic: str, key: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, 7, 0, 0, key, None, None, len(key or b""), -1, [])


def _outcomes(stage: Stage[Any], schema_store: SchemaStore) -> Outcomes:
    catalog = parse_catalog(TOPICS.replace("{p}", "u"), Path("t.yaml"), schema_store.names())

    async def no_sleep(seconds: float, record: ConsumerRecord[bytes, bytes]) -> None:
        return None

    return Outcomes(
        stage,
        catalog=catalog,
        codec=SingleObjectCodec(schema_store),
        meter=metrics.get_meter("test"),
        sleep=no_sleep,
    )


async def test_without_a_tombstone_handler_a_tombstone_is_dead_lettered(schema_store: SchemaStore) -> None:
    outcomes = _outcomes(_stage("u"), schema_store)
    record = _tombstone("u.in", b"doc-1")
    outputs, outcome = await outcomes.of(record, parse_headers([]), trace.INVALID_SPAN)
    assert outcome == "dlq"
    [letter] = outputs
    decoded = SingleObjectCodec(schema_store).decode("podium.DeadLetter", letter.value or b"")
    assert decoded["error_type"] == "undecodable" and "tombstone" in decoded["error_message"]
    assert decoded["original_value"] is None and decoded["original_key"] == b"doc-1"


async def test_a_tombstone_handler_gets_the_key_and_its_emits_are_the_outcome(
    schema_store: SchemaStore,
) -> None:
    outcomes = _outcomes(_stage("u", on_tombstone=_gone("u")), schema_store)
    outputs, outcome = await outcomes.of(_tombstone("u.in", b"doc-1"), parse_headers([]), trace.INVALID_SPAN)
    assert outcome == "ok"
    [out] = outputs
    assert (out.topic, out.key) == ("u.out", b"doc-1")
    assert SingleObjectCodec(schema_store).decode(NOTE, out.value or b"")["text"] == "deleted doc-1"


async def test_a_failing_tombstone_goes_to_the_retry_topic_as_a_tombstone(schema_store: SchemaStore) -> None:
    runs: Counter[str] = Counter()
    stage = _stage(
        "u",
        on_tombstone=_gone("u", runs, fail_first=99),
        retry=RetryPolicy(attempts_per_round=2, backoff_base_s=0.0, retry_topic_delays_s=(1.0,)),
    )
    outputs, outcome = await _outcomes(stage, schema_store).of(
        _tombstone("u.in", b"doc-1"), parse_headers([]), trace.INVALID_SPAN
    )
    assert outcome == "retry" and runs["doc-1"] == 2
    [out] = outputs
    assert (out.topic, out.key, out.value) == ("u.in.retry", b"doc-1", None)
    assert parse_headers(out.headers).not_before_ms is not None


async def test_a_tombstone_with_no_key_or_a_permanent_failure_is_dead_lettered(
    schema_store: SchemaStore,
) -> None:
    async def refuse(key: str, ctx: StageContext) -> Emit:
        raise PermanentError(f"cannot delete {key}")

    codec = SingleObjectCodec(schema_store)
    outcomes = _outcomes(_stage("u", on_tombstone=refuse), schema_store)
    no_key, _ = await outcomes.of(_tombstone("u.in", None), parse_headers([]), trace.INVALID_SPAN)
    assert "no key" in codec.decode("podium.DeadLetter", no_key[0].value or b"")["error_message"]
    refused, outcome = await outcomes.of(_tombstone("u.in", b"doc-2"), parse_headers([]), trace.INVALID_SPAN)
    letter = codec.decode("podium.DeadLetter", refused[0].value or b"")
    assert outcome == "dlq" and letter["error_type"] == "permanent"
    assert letter["error_message"] == "PermanentError: cannot delete doc-2"


async def test_on_the_broker_tombstones_follow_their_key_s_values_in_order_through_the_retry_topic(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    """A value then a tombstone of one key end in that order; a tombstone whose handler fails
    goes through the retry topic and is handled; a stage without a handler dead-letters them."""
    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    runs: Counter[str] = Counter()
    stage = _stage(
        unique,
        ordered_by_key=True,
        on_tombstone=_gone(unique, runs, fail_first=1),
        retry=RetryPolicy(attempts_per_round=1, backoff_base_s=0.0, retry_topic_delays_s=(0.2,)),
    )
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-g")
    keys = [f"doc-{i}" for i in range(6)]
    async with (
        Follower(cluster, [f"{unique}.out", f"{unique}.in.retry", f"{unique}.in.dlq"]) as follower,
        running(worker),
    ):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            for key in keys:
                await publisher.publish(f"{unique}.in", {"request_id": key, "text": key}, request_id=key)
                await publisher.send_raw(f"{unique}.in", key.encode(), None, [(REQUEST_ID, key.encode())])
        arrivals = await follower.collect(set(keys), timeout_s=60, per_id=3)
    for key in keys:
        topics = [a.topic for a in arrivals[key]]
        assert topics.count(f"{unique}.in.retry") == 1 and f"{unique}.in.dlq" not in topics
        [retried] = [a for a in arrivals[key] if a.topic == f"{unique}.in.retry"]
        assert retried.value is None and retried.key == key.encode()
        outs = [
            codec.decode(NOTE, a.value or b"")["text"] for a in arrivals[key] if a.topic == f"{unique}.out"
        ]
        assert outs == [f"kept {key}", f"deleted {key}"]
        assert runs[key] == 2

    # The same topic read by a stage that declares no tombstone handler: dead letters.
    plain = StageWorker(
        _stage(unique), cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-plain"
    )
    async with (
        Follower(cluster, [f"{unique}.in.dlq"], from_beginning=True) as follower,
        running(plain),
    ):
        letters = await follower.collect(set(keys), timeout_s=60)
    for key in keys:
        letter = codec.decode("podium.DeadLetter", letters[key][0].value or b"")
        assert letter["stage"] == "keep" and "tombstone" in letter["error_message"]
