"""The stage runtime's guarantees, shown on the real local broker."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest
from aiokafka import TopicPartition

from streams.contracts.codec import SingleObjectCodec
from streams.contracts.headers import REQUEST_ID, TRACEPARENT, header_value, parse_headers
from streams.contracts.schemas import SchemaStore
from streams.errors import PermanentError, PodiumError, TransientError
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.runtime.retry import RetryPolicy
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import committed, read_topic, running

REPO = Path(__file__).resolve().parents[3]
NOTE = "podium.demo.Note"

CHAIN = """
defaults: {partitions: 3}
topics:
  {p}.in: {value: podium.demo.Note, consumer: first}
  {p}.mid: {value: podium.demo.Note, consumer: second}
  {p}.out: {value: podium.demo.Note}
"""


def stamping(name: str, to: str, **kwargs: Any) -> Stage:
    async def handler(note: dict[str, Any], ctx: StageContext) -> Emit:
        return Emit(to, {**note, "hops": [*note["hops"], ctx.stage]})

    return Stage(name=name, consumes="", produces=(to,), handler=handler, **kwargs)


def on(stage: Stage, consumes: str) -> Stage:
    return replace(stage, consumes=consumes)


async def test_round_trip_through_two_chained_stages(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(CHAIN, unique)
    codec = SingleObjectCodec(schema_store)
    first = on(stamping("first", f"{unique}.mid"), f"{unique}.in")
    second = on(stamping("second", f"{unique}.out"), f"{unique}.mid")
    workers = [
        StageWorker(s, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-{s.name}")
        for s in (first, second)
    ]
    official = avro.schema.parse((REPO / "schemas" / "note.avsc").read_text())
    async with (
        running(*workers),
        Follower(cluster, [f"{unique}.in", f"{unique}.mid", f"{unique}.out"]) as follower,
    ):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            sent = {
                await publisher.publish(f"{unique}.in", {"request_id": f"r{i}", "text": f"note {i}"})
                for i in range(20)
            }
        arrivals = await follower.collect(sent, timeout_s=60, per_id=3)
    assert set(arrivals) >= sent
    for rid in sent:
        hops = {a.topic: a for a in arrivals[rid]}
        assert set(hops) == {f"{unique}.in", f"{unique}.mid", f"{unique}.out"}
        trace_ids = {parse_headers(a.headers).trace_id for a in hops.values()}
        assert len(trace_ids) == 1 and None not in trace_ids, "one trace through every hop"
        for a in hops.values():
            assert header_value(a.headers, REQUEST_ID) == rid.encode() and a.key == rid.encode()
            assert [k for k, _ in a.headers].count(TRACEPARENT) == 1
        out = hops[f"{unique}.out"]
        assert out.value is not None and out.value[:2] == b"\xc3\x01"
        assert out.value[2:10] == official.fingerprint("CRC-64-AVRO")
        decoded = avro.io.DatumReader(official).read(avro.io.BinaryDecoder(io.BytesIO(out.value[10:])))
        assert decoded["hops"] == ["first", "second"]
        assert parse_headers(out.headers).path == ("first", "second")


POISON = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: first, partitions: 1}
  {p}.out: {value: podium.demo.Note, partitions: 1}
"""


async def test_poison_lands_in_the_dlq_with_reason_and_bytes_and_the_stage_goes_on(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(POISON, unique)
    codec = SingleObjectCodec(schema_store)
    stage = on(stamping("first", f"{unique}.out"), f"{unique}.in")
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-g")
    good = codec.encode(NOTE, {"request_id": "x", "text": "fine"})
    other_schema = codec.encode(
        "podium.DeadLetter",
        {
            "stage": "s",
            "error_type": "e",
            "error_message": "m",
            "original_topic": "t",
            "original_partition": 0,
            "original_offset": 0,
            "original_timestamp_ms": 0,
            "attempts": 0,
            "dead_lettered_at_ms": 0,
        },
    )
    poison = {
        "random": os.urandom(300),
        "other-schema": other_schema,
        "truncated": good[:-3],
        "huge": good[:10] + os.urandom(5 * 1024 * 1024),
    }
    expected_type = {
        "random": "undecodable",
        "other-schema": "undecodable",
        "truncated": "undecodable",
        "huge": "payload_too_large",
    }
    async with Follower(cluster, [f"{unique}.out", f"{unique}.in.dlq"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            for rid, value in poison.items():
                await publisher.send_raw(
                    f"{unique}.in", rid.encode(), value, [(REQUEST_ID, rid.encode()), ("x-extra", b"kept")]
                )
            # A good record with a non-UTF-8, a malformed and an oversized header: tolerated.
            await publisher.send_raw(
                f"{unique}.in",
                b"bad-headers",
                good,
                [
                    (REQUEST_ID, b"\xff\xfe"),
                    (TRACEPARENT, b"garbage"),
                    ("podium-deadline-ms", b"x" * 10_000),
                ],
            )
            after = await publisher.publish(f"{unique}.in", {"request_id": "after", "text": "still running"})
        arrivals = await follower.collect({*poison, "bad-headers", after}, timeout_s=60)
    for rid, value in poison.items():
        [arrival] = arrivals[rid]
        assert arrival.topic == f"{unique}.in.dlq"
        letter = codec.decode("podium.DeadLetter", arrival.value or b"")
        assert letter["error_type"] == expected_type[rid], letter["error_message"]
        assert letter["original_value"] == value and letter["original_key"] == rid.encode()
        assert {"key": "x-extra", "value": b"kept"} in letter["original_headers"]
        assert (letter["original_topic"], letter["stage"], letter["attempts"]) == (f"{unique}.in", "first", 0)
    assert (
        "schema mismatch"
        in codec.decode("podium.DeadLetter", arrivals["other-schema"][0].value or b"")["error_message"]
    )
    assert "5242" in codec.decode("podium.DeadLetter", arrivals["huge"][0].value or b"")["error_message"]
    # The bad-headers record was processed under its key, with a fresh trace.
    [ok] = arrivals["bad-headers"]
    assert ok.topic == f"{unique}.out" and parse_headers(ok.headers).trace_id is not None
    assert arrivals[after][0].topic == f"{unique}.out"


RETRY = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: flaky, partitions: 2}
  {p}.out: {value: podium.demo.Note, partitions: 1}
"""


async def test_transient_failures_are_retried_until_success(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(RETRY, unique)
    codec = SingleObjectCodec(schema_store)
    runs: Counter[str] = Counter()

    async def flaky(note: dict[str, Any], ctx: StageContext) -> Emit:
        runs[ctx.request_id] += 1
        if runs[ctx.request_id] <= 2:
            raise TransientError(f"provider hiccup {runs[ctx.request_id]}")
        return Emit(f"{unique}.out", {**note, "text": f"after {ctx.attempt} attempts"})

    stage = Stage(
        name="flaky",
        consumes=f"{unique}.in",
        produces=(f"{unique}.out",),
        handler=flaky,
        retry=RetryPolicy(attempts_per_round=3, backoff_base_s=0.01, retry_topic_delays_s=()),
    )
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-g")
    async with Follower(cluster, [f"{unique}.out", f"{unique}.in.dlq"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            sent = {
                await publisher.publish(f"{unique}.in", {"request_id": "", "text": str(i)}) for i in range(10)
            }
        arrivals = await follower.collect(sent, timeout_s=60)
    assert all(arrivals[r][0].topic == f"{unique}.out" for r in sent)
    assert {codec.decode(NOTE, arrivals[r][0].value or b"")["text"] for r in sent} == {"after 3 attempts"}
    assert all(runs[r] == 3 for r in sent)


async def test_always_failing_goes_via_the_retry_topic_to_the_dlq_never_committed_first(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(RETRY, unique)
    codec = SingleObjectCodec(schema_store)
    group = f"{unique}-g"

    async def broken(note: dict[str, Any], ctx: StageContext) -> Emit:
        raise TransientError("model provider down")

    stage = Stage(
        name="flaky",
        consumes=f"{unique}.in",
        produces=(f"{unique}.out",),
        handler=broken,
        retry=RetryPolicy(attempts_per_round=2, backoff_base_s=0.01, retry_topic_delays_s=(0.5,)),
    )
    worker = StageWorker(
        stage, cluster=cluster, catalog=catalog, codec=codec, group_id=group, commit_interval_s=0.05
    )
    violations: list[str] = []
    ends = cluster.consumer()
    await ends.start()
    retry_tps = [TopicPartition(f"{unique}.in.retry", p) for p in range(2)]
    dlq_tps = [TopicPartition(f"{unique}.in.dlq", p) for p in range(2)]
    try:
        async with (
            Follower(cluster, [f"{unique}.in.retry", f"{unique}.in.dlq"]) as follower,
            running(worker),
        ):
            async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
                sent = [
                    await publisher.publish(f"{unique}.in", {"request_id": "", "text": str(i)})
                    for i in range(6)
                ]
            arrivals: dict[str, list[Any]] = {}
            for _ in range(300):
                # Commit first, then look: whatever the group committed must already be on the
                # next topic (acknowledged produces are below the high watermark).
                positions = await committed(cluster, group)
                on_input = sum(positions.get((f"{unique}.in", p), 0) for p in range(2))
                on_retry = sum(positions.get((f"{unique}.in.retry", p), 0) for p in range(2))
                in_retry = sum((await ends.end_offsets(retry_tps)).values())
                in_dlq = sum((await ends.end_offsets(dlq_tps)).values())
                if on_input > in_retry or on_retry > in_dlq:
                    violations.append(f"committed {on_input}/{on_retry} with {in_retry}/{in_dlq} written")
                for rid, items in (await follower.poll(0.05)).items():
                    arrivals.setdefault(rid, []).extend(items)
                if sum(a.topic.endswith(".dlq") for items in arrivals.values() for a in items) == len(sent):
                    break
    finally:
        await ends.stop()
    assert violations == []
    for rid in sent:
        # One pass through the retry topic, then the DLQ (a poll may return them in any order).
        by_topic = {a.topic: a for a in arrivals[rid]}
        assert sorted(a.topic for a in arrivals[rid]) == [f"{unique}.in.dlq", f"{unique}.in.retry"]
        letter = codec.decode("podium.DeadLetter", by_topic[f"{unique}.in.dlq"].value or b"")
        assert letter["error_type"] == "transient" and letter["attempts"] == 4
        assert "gave up after 4 attempts" in letter["error_message"]
        assert letter["original_topic"] == f"{unique}.in.retry"


async def test_permanent_errors_skip_retries(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(RETRY, unique)
    codec = SingleObjectCodec(schema_store)
    runs: Counter[str] = Counter()

    async def refuse(note: dict[str, Any], ctx: StageContext) -> Emit:
        runs[ctx.request_id] += 1
        raise PermanentError("this request can never be answered")

    stage = Stage(name="flaky", consumes=f"{unique}.in", produces=(f"{unique}.out",), handler=refuse)
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-g")
    async with Follower(cluster, [f"{unique}.in.retry", f"{unique}.in.dlq"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            rid = await publisher.publish(f"{unique}.in", {"request_id": "", "text": "x"})
        arrivals = await follower.collect({rid}, timeout_s=30)
    assert [a.topic for a in arrivals[rid]] == [f"{unique}.in.dlq"] and runs[rid] == 1


async def test_a_record_written_with_an_older_schema_is_processed(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(POISON, unique)
    codec = SingleObjectCodec(schema_store)
    v1 = schema_store.history(NOTE)[0]
    buf = io.BytesIO(b"\xc3\x01" + v1.fingerprint)
    buf.seek(0, 2)
    fastavro.schemaless_writer(buf, v1.parsed, {"request_id": "old", "text": "written by v1", "hops": []})
    worker = StageWorker(
        on(stamping("first", f"{unique}.out"), f"{unique}.in"),
        cluster=cluster,
        catalog=catalog,
        codec=codec,
        group_id=f"{unique}-g",
    )
    async with Follower(cluster, [f"{unique}.out"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            await publisher.send_raw(f"{unique}.in", b"old", buf.getvalue(), [(REQUEST_ID, b"old")])
        arrivals = await follower.collect({"old"}, timeout_s=30)
    out = codec.decode(NOTE, arrivals["old"][0].value or b"")
    assert out == {"request_id": "old", "text": "written by v1", "hops": ["first"], "priority": 0}


async def test_commit_waits_for_the_oldest_unfinished_record(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(POISON, unique)
    codec = SingleObjectCodec(schema_store)
    release = asyncio.Event()
    group = f"{unique}-g"

    async def slow_first(note: dict[str, Any], ctx: StageContext) -> Emit:
        if ctx.offset == 0:
            await release.wait()
        return Emit(f"{unique}.out", note)

    stage = Stage(name="first", consumes=f"{unique}.in", produces=(f"{unique}.out",), handler=slow_first)
    worker = StageWorker(
        stage, cluster=cluster, catalog=catalog, codec=codec, group_id=group, commit_interval_s=0.05
    )
    async with Follower(cluster, [f"{unique}.out"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            ids = [
                await publisher.publish(f"{unique}.in", {"request_id": "", "text": str(i)}) for i in range(10)
            ]
        arrivals = await follower.collect(set(ids[1:]), timeout_s=30)
        assert set(ids[1:]) <= set(arrivals) and ids[0] not in arrivals
        await asyncio.sleep(0.3)
        assert (await committed(cluster, group)).get((f"{unique}.in", 0), -1) in (-1, 0)
        release.set()
        await follower.collect({ids[0]}, timeout_s=30)
        for _ in range(50):
            if (await committed(cluster, group)).get((f"{unique}.in", 0)) == 10:
                break
            await asyncio.sleep(0.1)
    assert (await committed(cluster, group))[(f"{unique}.in", 0)] == 10


async def test_a_dead_sender_fails_the_records_waiting_for_it_at_once_and_nothing_is_lost(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    """The task relaying the worker's sends dies (ended from outside here, as a crash would end
    it) with records waiting for it: they fail at once, the worker stops with that error long
    before its drain timeout, nothing is committed past them, and a restart delivers them all."""
    catalog = await make_topics(POISON, unique)
    codec = SingleObjectCodec(schema_store)
    group = f"{unique}-g"
    release = asyncio.Event()
    entered = 0

    async def held(note: dict[str, Any], ctx: StageContext) -> Emit:
        nonlocal entered
        entered += 1
        await release.wait()
        return Emit(f"{unique}.out", note)

    stage = Stage(name=f"{unique}-held", consumes=f"{unique}.in", produces=(f"{unique}.out",), handler=held)

    def worker() -> StageWorker:
        return StageWorker(
            stage, cluster=cluster, catalog=catalog, codec=codec, group_id=group, drain_timeout_s=10
        )

    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        ids = {await publisher.publish(f"{unique}.in", {"request_id": "", "text": str(i)}) for i in range(10)}
    first = worker()
    await first.start()
    run = asyncio.create_task(first.run())
    try:
        for _ in range(300):
            if entered == 10:
                break
            await asyncio.sleep(0.1)
        assert entered == 10
        [sender] = [t for t in asyncio.all_tasks() if t.get_name() == f"{stage.name}-send"]
        release.set()  # the handlers return and queue their outputs for the sender ...
        sender.cancel()  # ... which dies before it sends one of them
        started = time.monotonic()
        with pytest.raises(PodiumError, match=f"stage {stage.name} failed"):
            await asyncio.wait_for(asyncio.shield(run), timeout=5)
        assert time.monotonic() - started < 5  # the drain timeout is 10 s
    finally:
        first.request_stop()
        await asyncio.gather(run, return_exceptions=True)
    assert await read_topic(cluster, f"{unique}.out") == []
    assert (await committed(cluster, group)).get((f"{unique}.in", 0), -1) in (-1, 0)
    async with Follower(cluster, [f"{unique}.out"]) as follower, running(worker()):
        arrivals = await follower.collect(ids, timeout_s=30)
    assert set(arrivals) == ids


async def test_ordered_by_key_keeps_each_keys_order_while_keys_run_in_parallel(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(POISON, unique)
    codec = SingleObjectCodec(schema_store)
    import random

    async def jittery(note: dict[str, Any], ctx: StageContext) -> Emit:
        await asyncio.sleep(random.uniform(0, 0.03))
        return Emit(f"{unique}.out", note)

    stage = Stage(
        name="first",
        consumes=f"{unique}.in",
        produces=(f"{unique}.out",),
        handler=jittery,
        ordered_by_key=True,
    )
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-g")
    keys = [f"k{i}" for i in range(8)]
    async with Follower(cluster, [f"{unique}.out"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            for n in range(15):
                for key in keys:
                    await publisher.publish(
                        f"{unique}.in", {"request_id": key, "text": str(n)}, request_id=key
                    )
        arrivals = await follower.collect(set(keys), timeout_s=60, per_id=15)
    for key in keys:
        order = [int(codec.decode(NOTE, a.value or b"")["text"]) for a in arrivals[key]]
        assert order == list(range(15)), (key, order)


LIMITED = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: first, partitions: 1}
  {p}.out: {value: podium.demo.Note, partitions: 1, max_message_bytes: 256KiB}
  {p}.side: {value: podium.demo.Note, partitions: 1}
"""


async def test_an_output_too_large_for_its_topic_dead_letters_the_input_and_sends_nothing(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(LIMITED, unique)
    codec = SingleObjectCodec(schema_store)

    async def bloat(note: dict[str, Any], ctx: StageContext) -> list[Emit]:
        big = {**note, "text": "x" * (300 * 1024)} if note["text"] == "big" else note
        return [Emit(f"{unique}.side", note), Emit(f"{unique}.out", big)]

    stage = Stage(
        name="first", consumes=f"{unique}.in", produces=(f"{unique}.out", f"{unique}.side"), handler=bloat
    )
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-g")
    async with (
        Follower(cluster, [f"{unique}.out", f"{unique}.side", f"{unique}.in.dlq"]) as follower,
        running(worker),
    ):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            big = await publisher.publish(f"{unique}.in", {"request_id": "", "text": "big"})
            small = await publisher.publish(f"{unique}.in", {"request_id": "", "text": "small"})
        arrivals = await follower.collect({small}, timeout_s=30, per_id=2)
        arrivals.update(await follower.collect({big}, timeout_s=5))
    assert sorted(a.topic for a in arrivals[small]) == [f"{unique}.out", f"{unique}.side"]
    assert [a.topic for a in arrivals[big]] == [f"{unique}.in.dlq"]
    letter = codec.decode("podium.DeadLetter", arrivals[big][0].value or b"")
    assert letter["error_type"] == "payload_too_large" and f"{unique}.out" in letter["error_message"]


async def test_a_bogus_not_before_on_the_retry_topic_waits_only_the_longest_delay(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(POISON, unique)
    codec = SingleObjectCodec(schema_store)
    stage = replace(
        on(stamping("first", f"{unique}.out"), f"{unique}.in"), retry=RetryPolicy(retry_topic_delays_s=(0.2,))
    )
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-g")
    ten_days = str(int(time.time() * 1000) + 10 * 86_400_000).encode()
    async with Follower(cluster, [f"{unique}.out"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            value = codec.encode(NOTE, {"request_id": "late", "text": "x"})
            await publisher.send_raw(
                f"{unique}.in.retry",
                b"late",
                value,
                [(REQUEST_ID, b"late"), ("podium-not-before-ms", ten_days), ("podium-round", b"1")],
            )
        started = time.monotonic()
        arrivals = await follower.collect({"late"}, timeout_s=30)
    assert arrivals["late"][0].topic == f"{unique}.out"
    assert time.monotonic() - started < 15  # the cap is 0.2 s + 5 s of clock skew


async def test_a_handler_cancelled_from_inside_is_dead_lettered_and_the_stage_goes_on(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(POISON, unique)
    codec = SingleObjectCodec(schema_store)

    async def self_cancelling(note: dict[str, Any], ctx: StageContext) -> Emit:
        if note["text"] == "cancel":
            inner = asyncio.get_running_loop().create_future()
            inner.cancel()
            await inner  # raises CancelledError inside the handler
        return Emit(f"{unique}.out", note)

    stage = Stage(name="first", consumes=f"{unique}.in", produces=(f"{unique}.out",), handler=self_cancelling)
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-g")
    async with Follower(cluster, [f"{unique}.out", f"{unique}.in.dlq"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            cancelled = await publisher.publish(f"{unique}.in", {"request_id": "", "text": "cancel"})
            fine = await publisher.publish(f"{unique}.in", {"request_id": "", "text": "fine"})
        arrivals = await follower.collect({cancelled, fine}, timeout_s=30)
    assert arrivals[cancelled][0].topic == f"{unique}.in.dlq"
    assert codec.decode("podium.DeadLetter", arrivals[cancelled][0].value or b"")["error_type"] == "cancelled"
    assert arrivals[fine][0].topic == f"{unique}.out"


async def test_what_each_stage_spends_is_summed_into_the_cost_header(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(CHAIN, unique)
    codec = SingleObjectCodec(schema_store)

    def spender(name: str, to: str, usd: float) -> Stage:
        async def handler(note: dict[str, Any], ctx: StageContext) -> Emit:
            ctx.add_cost(usd)  # as a stage does with GatewayResult.cost_usd
            return Emit(to, note)

        return Stage(
            name=name,
            consumes=f"{unique}.in" if name == "first" else f"{unique}.mid",
            produces=(to,),
            handler=handler,
        )

    stages = [spender("first", f"{unique}.mid", 0.0015), spender("second", f"{unique}.out", 0.0025)]
    workers = [
        StageWorker(s, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-{s.name}")
        for s in stages
    ]
    async with Follower(cluster, [f"{unique}.out"]) as follower, running(*workers):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            rid = await publisher.publish(f"{unique}.in", {"request_id": "", "text": "x"})
        arrivals = await follower.collect({rid}, timeout_s=30)
    assert parse_headers(arrivals[rid][0].headers).cost_usd == pytest.approx(0.004)


async def test_an_output_the_broker_refuses_dead_letters_its_input_alone_not_its_batch_neighbours(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    """Records settle in produce batches; the broker refuses a whole batch for one record too
    large for the topic (set smaller on the broker than the catalog says). Each record of the
    refused batch is sent again on its own: the big one's input goes to the DLQ as
    ``output_rejected``, its neighbours reach the output (not the DLQ as OutOfOrderSequenceNumber,
    which aiokafka's producer answers after a refused batch: the worker replaces it), and the
    commit passes all of them."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    catalog = await make_topics(POISON, unique)
    admin = cluster.admin()
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, f"{unique}.out", configs={"max.message.bytes": "3000"})]
        )
    finally:
        await admin.close()
    codec = SingleObjectCodec(schema_store)
    group = f"{unique}-g"
    gate = asyncio.Event()

    async def inflating(note: dict[str, Any], ctx: StageContext) -> Emit:
        await gate.wait()  # all of them finish together: one sender round, one produce batch
        text = "x" * 20_000 if note["text"] == "big" else note["text"]
        return Emit(f"{unique}.out", {**note, "text": text})

    stage = Stage(name="inflate", consumes=f"{unique}.in", produces=(f"{unique}.out",), handler=inflating)
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=group)
    texts = ["a", "b", "big", "c", "d"]
    async with Follower(cluster, [f"{unique}.out", f"{unique}.in.dlq"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            ids = [await publisher.publish(f"{unique}.in", {"request_id": "", "text": t}) for t in texts]
        for _ in range(200):
            if worker._in_flight == len(texts):
                break
            await asyncio.sleep(0.05)
        assert worker._in_flight == len(texts)  # all held at the gate: they settle in one round
        gate.set()
        arrivals = await follower.collect(set(ids), timeout_s=60)
        for _ in range(100):
            if (await committed(cluster, group)).get((f"{unique}.in", 0)) == len(texts):
                break
            await asyncio.sleep(0.1)
    topics = {t: [a.topic for a in arrivals[rid]] for t, rid in zip(texts, ids, strict=True)}
    assert topics == {
        "a": [f"{unique}.out"],
        "b": [f"{unique}.out"],
        "big": [f"{unique}.in.dlq"],
        "c": [f"{unique}.out"],
        "d": [f"{unique}.out"],
    }
    letter = codec.decode("podium.DeadLetter", arrivals[ids[2]][0].value or b"")
    assert letter["error_type"] == "output_rejected"
    assert (await committed(cluster, group))[(f"{unique}.in", 0)] == len(texts)


SMALL_OUTPUT = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: first, partitions: 1}
  {p}.out: {value: podium.demo.Note, partitions: 1, max_message_bytes: 64KiB}
"""


async def test_a_round_is_cut_into_batches_the_output_topic_accepts(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    """The broker measures a whole produce batch against the topic's max.message.bytes: 200
    records of 1 KB settling in one round go as several batches under the topic's 64 KiB, none
    refused (a refusal would replace the worker's producer)."""
    catalog = await make_topics(SMALL_OUTPUT, unique)
    codec = SingleObjectCodec(schema_store)
    gate = asyncio.Event()

    async def held(note: dict[str, Any], ctx: StageContext) -> Emit:
        await gate.wait()
        return Emit(f"{unique}.out", note)

    stage = Stage(name="held", consumes=f"{unique}.in", produces=(f"{unique}.out",), handler=held)
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-g")
    async with Follower(cluster, [f"{unique}.out", f"{unique}.in.dlq"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            note = {"request_id": "", "text": "x" * 1000}
            ids = {await publisher.publish(f"{unique}.in", note) for _ in range(200)}
        for _ in range(200):
            if worker._in_flight == len(ids):
                break
            await asyncio.sleep(0.05)
        assert worker._in_flight == len(ids)
        gate.set()
        arrivals = await follower.collect(ids, timeout_s=60)
    assert {a.topic for rid in ids for a in arrivals[rid]} == {f"{unique}.out"}
    assert worker._redelivery.generation == 0  # no batch was refused (no producer replaced)
