"""The pure decisions of tenant fairness: which record starts next, and which partitions pause."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from streams.contracts.catalog import parse_catalog
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.headers import RequestHeaders, parse_headers
from streams.contracts.schemas import SchemaStore
from streams.errors import ConfigError
from streams.kafka.connection import Cluster
from streams.runtime.fairness import Fairness, FairScheduler, ReadAhead, Ticket, tenant_of
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.stage_worker import StageWorker
from streams.runtime.workers import worker_for


def scheduler(**weights: float) -> FairScheduler[str]:
    return FairScheduler(Fairness(weights=weights).weight)


def test_a_late_tenant_gets_the_next_free_slot_ahead_of_a_backlog() -> None:
    s = scheduler()
    for i in range(1000):
        s.add(f"a{i}", "A")
    running = [s.take() for _ in range(4)]
    assert [t.item for t in running if t] == ["a0", "a1", "a2", "a3"]
    s.add("b0", "B")
    first = running.pop(0)
    assert first is not None
    s.settled(first)
    nxt = s.take()
    assert nxt is not None and nxt.item == "b0"


def test_fifo_is_one_tenant_started_in_read_order() -> None:
    s: FairScheduler[str] = FairScheduler(Fairness(by_tenant=False).weight)
    order = [f"{t}{i}" for i in range(5) for t in "AB"]
    for item in order:
        s.add(item, "")
    assert [t.item for t in iter(s.take, None)] == order


def test_busy_tenants_hold_slots_in_proportion_to_their_weights() -> None:
    s = scheduler(gold=3)
    for i in range(10_000):
        s.add(f"g{i}", "gold")
        s.add(f"o{i}", "other")
    rng = random.Random(7)
    running: list[Ticket[str]] = [t for t in (s.take() for _ in range(64)) if t]
    for _ in range(5000):  # records settle in any order; each free slot is filled again
        done = running.pop(rng.randrange(len(running)))
        s.settled(done)
        nxt = s.take()
        assert nxt is not None
        running.append(nxt)
        held = Counter(t.tenant for t in running)
        assert abs(held["gold"] - 48) <= 1 and abs(held["other"] - 16) <= 1, held


def test_each_tenant_starts_its_records_in_read_order() -> None:
    s: FairScheduler[int] = FairScheduler(Fairness().weight)
    rng = random.Random(3)
    for i in range(300):
        s.add(i, rng.choice("ABC"))
    started: dict[str, list[int]] = {}
    running: list[Ticket[int]] = []
    while len(s) or running:
        if len(running) < 8 and (ticket := s.take()) is not None:
            started.setdefault(ticket.tenant, []).append(ticket.item)
            running.append(ticket)
            continue
        s.settled(running.pop(rng.randrange(len(running))))
    assert all(order == sorted(order) for order in started.values())
    assert sum(map(len, started.values())) == 300


def test_a_lane_runs_one_record_at_a_time_in_read_order_across_tenants() -> None:
    s = scheduler()
    s.add("k1-A-first", "A", lane=1)
    s.add("k1-B-second", "B", lane=1)
    s.add("k2-B", "B", lane=2)
    a = s.take()
    b = s.take()
    assert a is not None and b is not None
    assert {a.item, b.item} == {"k1-A-first", "k2-B"}
    assert s.take() is None  # lane 1's second record waits for its first, though B is starved
    s.settled(b)
    assert s.take() is None
    s.settled(a)
    c = s.take()
    assert c is not None and c.item == "k1-B-second"
    s.settled(c)
    assert len(s) == 0 and s.take() is None


def test_lanes_with_many_tenants_keep_per_lane_order_under_random_completion() -> None:
    s: FairScheduler[tuple[int, int]] = FairScheduler(Fairness(weights={"A": 2}).weight)
    rng = random.Random(11)
    items = [(rng.randrange(16), i) for i in range(2000)]
    for item in items:
        s.add(item, rng.choice("ABCD"), lane=item[0])
    running: list[Ticket[tuple[int, int]]] = []
    started: list[tuple[int, int]] = []
    while len(s) or running:
        while len(running) < 8 and (t := s.take()) is not None:
            assert all(r.lane != t.lane for r in running), "two records of one lane at once"
            running.append(t)
            started.append(t.item)
        s.settled(running.pop(rng.randrange(len(running))))
    for lane in range(16):
        mine = [i for (l_, i) in started if l_ == lane]
        assert mine == sorted(mine) and len(mine) == sum(1 for (l_, _) in items if l_ == lane)


def test_drop_removes_a_revoked_partitions_waiting_records_and_frees_their_lanes() -> None:
    s: FairScheduler[tuple[int, str]] = FairScheduler(Fairness().weight)
    s.add((0, "p0-k1"), "A", lane=1)
    s.add((1, "p1-k1"), "A", lane=1)  # same lane (hash bucket), other partition
    s.add((0, "p0-free"), "B")
    s.add((1, "p1-free"), "B")
    assert s.drop(lambda item: item[0] == 0) == [(0, "p0-k1"), (0, "p0-free")]
    assert len(s) == 2
    assert sorted(t.item[1] for t in iter(s.take, None)) == ["p1-free", "p1-k1"]


def test_a_running_lane_keeps_its_later_records_waiting_after_a_drop() -> None:
    s: FairScheduler[tuple[int, str]] = FairScheduler(Fairness().weight)
    s.add((0, "first"), "A", lane=1)
    s.add((1, "second"), "A", lane=1)
    first = s.take()
    assert first is not None and s.drop(lambda item: item[0] == 2) == []
    assert s.take() is None
    s.settled(first)
    second = s.take()
    assert second is not None and second.item == (1, "second")


def test_tenants_that_left_are_forgotten() -> None:
    s = scheduler()
    for i in range(100):
        s.add(str(i), f"t{i}")
        ticket = s.take()
        assert ticket is not None
        s.settled(ticket)
    assert s._served == {} and s._running == {} and s._ready == {}


def test_weights_must_be_positive_and_cannot_change_after_declaration() -> None:
    with pytest.raises(ValueError, match="weight of gold must be positive"):
        Fairness(weights={"gold": 0})
    with pytest.raises(ValueError, match="default_weight"):
        Fairness(default_weight=float("nan"))
    with pytest.raises(ValueError, match="read_ahead"):
        Fairness(read_ahead_records=0)
    given = {"gold": 2.0}
    fairness = Fairness(weights=given)
    given["gold"] = 100.0
    assert fairness.weight("gold") == 2.0 and fairness.weight("other") == 1.0
    assert hash(fairness) == hash(Fairness(weights={"gold": 2.0}))  # a Stage holding it stays hashable


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("podium-tenant", b"umbrella")],
        [("podium-tenant", b" umbrella ")],
        [("podium-tenant", b"bad tenant!")],
        [("podium-tenant", b"\xff\xfe")],
        [("podium-tenant", b"\xff"), ("podium-tenant", b"second")],
        [("podium-tenant", None), ("podium-tenant", b"second")],
        [("podium-tenant", b"x" * 5000), ("podium-tenant", b"second")],
        [("podium-tenant", b"first"), ("podium-tenant", b"second")],
        [("podium-tenant", b"x" * 129)],
    ],
)
def test_the_tenant_is_the_one_parse_headers_reads(headers: list[tuple[str, bytes | None]]) -> None:
    assert tenant_of(headers) == (parse_headers(headers).tenant or "")


def test_the_tenants_remembered_stay_bounded_however_many_are_made_up() -> None:
    from streams.runtime import fairness

    for i in range(3 * fairness._MAX_TENANT_NAMES):
        assert tenant_of([("podium-tenant", f"t{i}".encode())]) == f"t{i}"
    assert len(fairness._TENANT_NAMES) <= fairness._MAX_TENANT_NAMES


def test_the_tenant_survives_a_hop() -> None:
    kafka = RequestHeaders(request_id="r", tenant="acme").to_kafka()
    assert tenant_of(kafka) == "acme" and tenant_of(None) == ""


def test_read_ahead_reads_everything_below_its_bounds() -> None:
    r: ReadAhead[int] = ReadAhead(records=300, bytes_=10**9)
    for _ in range(290):  # all on one partition: far over its share, but the total is not full
        r.read(0, 10)
    assert r.pace({0, 1, 2, 3, 4, 5}, paused=set()) == (set(), set())
    assert r.room() == 10


def test_read_ahead_when_full_pauses_the_partitions_over_their_share_and_resumes_at_three_quarters() -> None:
    r: ReadAhead[int] = ReadAhead(records=300, bytes_=10**9)
    assigned = {0, 1, 2}
    for _ in range(280):
        r.read(0, 10)
    for _ in range(20):
        r.read(1, 10)
    assert r.pace(assigned, paused=set()) == ({0}, set())  # 1 and 2 go on being read
    assert r.room() == 300 // 8  # in batches, up to twice the bound
    for _ in range(60):
        r.read(1, 10)
    assert r.pace(assigned, paused={0}) == (set(), set())  # 360: 1 holds 80 of its 100
    for _ in range(40):
        r.read(1, 10)
    assert r.pace(assigned, paused={0}) == ({1}, set())
    for _ in range(100):
        r.started(0, 10)
    assert r.pace(assigned, paused={0, 1}) == (set(), set())  # 300: still full, both stay
    for _ in range(74):
        r.started(0, 10)
    assert r.pace(assigned, paused={0, 1}) == (set(), set())  # 226: above 3/4, kept as it is
    r.started(0, 10)
    assert r.pace(assigned, paused={0, 1}) == (set(), {0, 1})  # 225: 3/4, both read again


def test_read_ahead_full_of_bytes_pauses_the_heavy_and_at_twice_a_bound_everything() -> None:
    r: ReadAhead[int] = ReadAhead(records=300, bytes_=1000)
    r.read(0, 600)
    r.read(1, 400)
    assert r.pace({0, 1, 2}, paused=set()) == ({0, 1}, set())  # each over its 333 bytes
    big: ReadAhead[int] = ReadAhead(records=10, bytes_=10**9)
    for _ in range(20):
        big.read(0, 1)
    assert big.pace({0, 1}, paused=set()) == ({0, 1}, set())
    assert big.room() == 1
    big.forget([0])
    assert big.held(0) == (0, 0) and big.records == 0
    assert big.pace({0, 1}, paused={0, 1}) == (set(), {0, 1})
    assert big.pace(set(), paused=set()) == (set(), set())


def test_the_settings_weights_go_on_top_of_the_stages_own(schema_store: SchemaStore) -> None:
    catalog = parse_catalog(
        "topics:\n  a: {value: podium.demo.Note, consumer: s}\n  b: {value: podium.demo.Note}\n",
        Path("test-topics.yaml"),
        schema_store.names(),
    )

    async def handler(note: dict[str, Any], ctx: StageContext) -> Emit:
        return Emit("b", note)

    stage = Stage(
        name="s",
        consumes="a",
        produces=("b",),
        handler=handler,
        fairness=Fairness(weights={"gold": 2, "x": 5}),
    )
    clients = {
        "cluster": Cluster("unused:9092"),
        "catalog": catalog,
        "codec": SingleObjectCodec(schema_store),
    }
    worker = worker_for(stage, **clients, tenant_weights={"gold": 3})  # type: ignore[arg-type]
    assert isinstance(worker, StageWorker)
    fairness = worker.stage.fairness
    assert (fairness.weight("gold"), fairness.weight("x"), fairness.weight("other")) == (3, 5, 1)
    with pytest.raises(ConfigError, match="PODIUM_TENANT_WEIGHTS: fairness: 'no spaces' is not a tenant"):
        worker_for(stage, **clients, tenant_weights={"no spaces": 3})  # type: ignore[arg-type]


def test_a_partition_read_again_from_earlier_drops_what_waited_of_it(schema_store: SchemaStore) -> None:
    """The consumer re-reads a partition from an earlier offset (a seek, a truncated log): the
    records of it still waiting for a slot are dropped, so none runs twice from one read."""
    catalog = parse_catalog(
        "topics:\n  a: {value: podium.demo.Note, consumer: s}\n  b: {value: podium.demo.Note}\n",
        Path("test-topics.yaml"),
        schema_store.names(),
    )

    async def handler(note: dict[str, Any], ctx: StageContext) -> Emit:
        return Emit("b", note)

    stage = Stage(name="s", consumes="a", produces=("b",), handler=handler)
    worker = StageWorker(
        stage, cluster=Cluster("unused:9092"), catalog=catalog, codec=SingleObjectCodec(schema_store)
    )

    def records(partition: int, *offsets: int) -> list[ConsumerRecord[bytes, bytes]]:
        headers = [("podium-tenant", b"A")]
        return [ConsumerRecord("a", partition, o, 0, 0, b"k", b"v", None, 1, 1, headers) for o in offsets]

    worker._read(("a", 0), records(0, 5, 6, 7))
    worker._read(("a", 1), records(1, 0))
    assert worker.read_ahead == 4
    worker._read(("a", 0), records(0, 6, 7))  # from 6 again
    assert worker.read_ahead == 3
    waiting = [ticket.item[0] for ticket in iter(worker._scheduler.take, None)]
    assert sorted((r.partition, r.offset) for r in waiting) == [(0, 6), (0, 7), (1, 0)]
    assert worker._read_ahead.held(("a", 0))[0] == 2
