"""On the real broker: a tenant's records overtake another tenant's backlog once it is read ahead.

The order of completion is asserted, never time: tenant A's first records hold the stage's slots
until the worker has read everything (its ``read_ahead`` says so), then the slots free one by one
and the scheduler decides who gets each.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.runtime.fairness import Fairness
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import committed, running

TOPICS = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: first, partitions: 1}
  {p}.out: {value: podium.demo.Note, partitions: 1}
"""
A_RECORDS = 200
B_RECORDS = 10
SLOTS = 4


@pytest.mark.parametrize(
    ("fairness", "ordered"),
    [(Fairness(), False), (Fairness(), True), (Fairness(by_tenant=False), False)],
    ids=["fair", "fair-ordered-by-key", "fifo"],
)
async def test_a_small_tenant_overtakes_a_read_backlog_of_another(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore, fairness: Fairness, ordered: bool
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    group = f"{unique}-g"
    gate = asyncio.Event()
    completed: list[str] = []

    async def held(note: dict[str, Any], ctx: StageContext) -> Emit:
        await gate.wait()
        completed.append(ctx.headers.tenant or "")
        return Emit(f"{unique}.out", note)

    stage = Stage(
        name="first",
        consumes=f"{unique}.in",
        produces=(f"{unique}.out",),
        handler=held,
        max_in_flight=SLOTS,
        lanes=SLOTS,
        ordered_by_key=ordered,
        fairness=fairness,
    )
    worker = StageWorker(
        stage, cluster=cluster, catalog=catalog, codec=codec, group_id=group, commit_interval_s=0.05
    )
    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        sent = [
            await publisher.publish(f"{unique}.in", {"request_id": "", "text": f"a{i}"}, tenant="A")
            for i in range(A_RECORDS)
        ]
        sent += [
            await publisher.publish(f"{unique}.in", {"request_id": "", "text": f"b{i}"}, tenant="B")
            for i in range(B_RECORDS)
        ]
    async with Follower(cluster, [f"{unique}.out"]) as follower, running(worker):
        for _ in range(600):
            if worker.read_ahead == A_RECORDS + B_RECORDS - SLOTS:
                break
            await asyncio.sleep(0.05)
        assert worker.read_ahead == A_RECORDS + B_RECORDS - SLOTS, "the worker did not read everything"
        # Nothing was committed while every record was held or waiting.
        assert (await committed(cluster, group)).get((f"{unique}.in", 0), -1) in (-1, 0)
        gate.set()
        arrivals = await follower.collect(set(sent), timeout_s=60)
        assert set(arrivals) == set(sent)
        for _ in range(100):
            if (await committed(cluster, group)).get((f"{unique}.in", 0)) == len(sent):
                break
            await asyncio.sleep(0.05)
    assert (await committed(cluster, group))[(f"{unique}.in", 0)] == len(sent)
    assert completed.count("A") == A_RECORDS and completed.count("B") == B_RECORDS
    last_b = max(i for i, tenant in enumerate(completed) if tenant == "B")
    if fairness.by_tenant:
        # B shares the slots as soon as it has records read: at most one A record per free slot
        # of B's, after the SLOTS that held the gate.
        assert last_b < SLOTS + 2 * B_RECORDS + SLOTS, completed[:40]
    else:
        assert completed == ["A"] * A_RECORDS + ["B"] * B_RECORDS  # the FIFO it was


async def test_a_weighted_tenant_gets_its_share_of_the_slots(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    """Both busy, gold of weight 3 holds three slots for one of other's: of the first 40 started
    after the gate, about 30 are gold's (all of other's records were published first)."""
    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    gate = asyncio.Event()
    completed: list[str] = []

    async def held(note: dict[str, Any], ctx: StageContext) -> Emit:
        await gate.wait()
        completed.append(ctx.headers.tenant or "")
        return Emit(f"{unique}.out", note)

    stage = Stage(
        name="first",
        consumes=f"{unique}.in",
        produces=(f"{unique}.out",),
        handler=held,
        max_in_flight=8,
        fairness=Fairness(weights={"gold": 3}),
    )
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{unique}-g")
    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        sent = [
            await publisher.publish(f"{unique}.in", {"request_id": "", "text": "o"}, tenant=tenant)
            for tenant in ["other"] * 100 + ["gold"] * 100
        ]
    async with Follower(cluster, [f"{unique}.out"]) as follower, running(worker):
        for _ in range(600):
            if worker.read_ahead == 200 - 8:
                break
            await asyncio.sleep(0.05)
        assert worker.read_ahead == 200 - 8
        gate.set()
        await follower.collect(set(sent), timeout_s=60)
    after_gate = completed[8:48]
    assert 26 <= after_gate.count("gold") <= 34, after_gate


SPREAD = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: first, partitions: 3}
  {p}.out: {value: podium.demo.Note, partitions: 3}
"""


@pytest.mark.parametrize(
    "fairness",
    [Fairness(read_ahead_records=16), Fairness(read_ahead_bytes=4000)],
    ids=["records", "bytes"],
)
async def test_a_small_read_ahead_pauses_and_resumes_partitions_and_loses_nothing(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore, fairness: Fairness
) -> None:  # type: ignore[no-untyped-def]
    """The read-ahead never holds more than twice its bound (at a bound the heavy partitions
    pause, at twice it all of them), and pausing loses or stalls nothing: every record arrives
    and the group commits the end of every partition."""
    catalog = await make_topics(SPREAD, unique)
    codec = SingleObjectCodec(schema_store)
    group = f"{unique}-g"

    async def slow(note: dict[str, Any], ctx: StageContext) -> Emit:
        await asyncio.sleep(0.002)
        return Emit(f"{unique}.out", note)

    stage = Stage(
        name="first",
        consumes=f"{unique}.in",
        produces=(f"{unique}.out",),
        handler=slow,
        max_in_flight=4,
        fairness=fairness,
    )
    worker = StageWorker(
        stage, cluster=cluster, catalog=catalog, codec=codec, group_id=group, commit_interval_s=0.05
    )
    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        sent = {
            await publisher.publish(f"{unique}.in", {"request_id": "", "text": "x" * 100}, tenant=t)
            for t in ["A"] * 250 + ["B"] * 50
        }
    most = 0
    async with Follower(cluster, [f"{unique}.out"]) as follower, running(worker):
        arrivals: dict[str, Any] = {}
        for _ in range(1200):
            most = max(most, worker.read_ahead)
            arrivals.update(await follower.poll(0.05))
            if set(arrivals) >= sent:
                break
        assert set(arrivals) >= sent, f"{len(sent - set(arrivals))} records never arrived"
        for _ in range(100):
            positions = await committed(cluster, group)
            if sum(positions.get((f"{unique}.in", p), 0) for p in range(3)) == len(sent):
                break
            await asyncio.sleep(0.05)
    positions = await committed(cluster, group)
    assert sum(positions.get((f"{unique}.in", p), 0) for p in range(3)) == len(sent)
    if fairness.read_ahead_records == 16:
        assert most <= 2 * 16, most
    assert most > 0  # it did read ahead (and so was bounded, not idle)
