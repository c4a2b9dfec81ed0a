"""The window worker's commit order and restore, on the real local broker.

Its order (streams/runtime/window_join.py): fold, send the due windows, await their acknowledgement, write
each partition's snapshot with the input positions it covers, commit those positions. A restore
reads the snapshot and seeks the inputs to its positions, so every record counts once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.config import Settings
from streams.contracts.catalog import Catalog
from streams.contracts.codec import Codec, SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.errors import PodiumError
from streams.ingress.publish import Publisher
from streams.kafka.admin import TopicAdmin
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.runtime.project import Project
from streams.runtime.stage import Record
from streams.runtime.window_join import WINDOW_STATE_SCHEMA, WindowStage, WindowWorker
from tests.agents.market.scripted import T0, publish_ticks, symbol, workers
from tests.streams.running import committed, read_topic, running

NOTE = "podium.demo.Note"

COUNTS = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: counts, partitions: 1}
  {p}.joins: {value: podium.demo.Note, partitions: 1}
  {p}.out: {value: podium.demo.Note, partitions: 1, max_message_bytes: 1MiB}
  {p}.state: {value: podium.WindowState, partitions: 1, cleanup: compact}
"""


class Counts:
    """A test window per key: counts its notes; a note saying ``close`` emits the count as
    ``priority`` (``close big``: with a text larger than the output topic accepts)."""

    def __init__(self, snapshot: bytes | None) -> None:
        self.counts: dict[str, int] = json.loads(snapshot) if snapshot else {}
        self._due: list[tuple[str, Record]] = []

    def add(self, topic: str, value: Record, timestamp_ms: int) -> None:
        key = value["request_id"]
        if not value["text"].startswith("close"):
            self.counts[key] = self.counts.get(key, 0) + 1
            return
        text = "x" * 2_000_000 if value["text"] == "close big" else ""
        window = {"request_id": key, "text": text, "hops": [], "priority": self.counts.pop(key, 0)}
        self._due.append((key, window))

    def due(self, idle_ms: int) -> list[tuple[str, Record]]:
        due, self._due = self._due, []
        return due

    def snapshot(self) -> bytes:
        return json.dumps(self.counts).encode()


def counting(prefix: str, catalog: Catalog, codec: Codec, cluster: Cluster) -> WindowWorker:
    stage = WindowStage(
        name="counts",
        consumes=f"{prefix}.in",
        joins=f"{prefix}.joins",
        produces=(f"{prefix}.out",),
        state_topic=f"{prefix}.state",
        new_state=Counts,
        checkpoint_interval_s=0.2,
    )
    return WindowWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=f"{prefix}-g")


async def notes(publisher: Publisher, prefix: str, key: str, *texts: str) -> None:
    for text in texts:
        await publisher.publish(f"{prefix}.in", {"request_id": key, "text": text}, request_id=key)


async def snapshots(cluster: Cluster, codec: Codec, prefix: str) -> list[dict[str, Any]]:
    return [codec.decode(WINDOW_STATE_SCHEMA, v) for _, v in await read_topic(cluster, f"{prefix}.state")]


async def until_snapshot(cluster: Cluster, codec: Codec, prefix: str, position: int) -> dict[str, Any]:
    """The first snapshot that covers the input up to ``position``."""
    for _ in range(200):
        for snapshot in await snapshots(cluster, codec, prefix):
            if snapshot["positions"].get(f"{prefix}.in") == position:
                return snapshot
        await asyncio.sleep(0.1)
    raise AssertionError(f"no snapshot at {position}: {await snapshots(cluster, codec, prefix)}")


async def commit_group(cluster: Cluster, group: str, tp: TopicPartition, offset: int) -> None:
    """Set the group's committed position by hand (the group has no member now)."""
    consumer = cluster.consumer(group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


async def test_a_window_is_acknowledged_before_a_snapshot_or_commit_covers_its_input(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(COUNTS, unique)
    codec = SingleObjectCodec(schema_store)
    worker = counting(unique, catalog, codec, cluster)
    await worker.start()
    run = asyncio.create_task(worker.run())
    try:
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            await notes(publisher, unique, "a", "tick", "tick", "close")
            await notes(publisher, unique, "k", "tick", "tick", "tick")
            # Steps 2-5: the window is on the output topic; the snapshot holds the state and the
            # positions it covers; the group's commit is the same position.
            snapshot = await until_snapshot(cluster, codec, unique, 6)
            assert json.loads(snapshot["state"]) == {"k": 3}
            [(key, value)] = await read_topic(cluster, f"{unique}.out")
            assert (key, codec.decode(NOTE, value)["priority"]) == ("a", 2)
            assert (await committed(cluster, f"{unique}-g"))[(f"{unique}.in", 0)] == 6
            # A window the broker refuses: step 3 fails, so no snapshot and no commit may pass it.
            await notes(publisher, unique, "k", "close big")
            with pytest.raises(PodiumError):  # aiokafka's error, translated by the worker
                await asyncio.wait_for(asyncio.shield(run), timeout=30)
    finally:
        worker.request_stop()
        await asyncio.gather(run, return_exceptions=True)
    positions = [s["positions"][f"{unique}.in"] for s in await snapshots(cluster, codec, unique)]
    assert max(positions) == 6, positions
    assert (await committed(cluster, f"{unique}-g"))[(f"{unique}.in", 0)] == 6
    assert len(await read_topic(cluster, f"{unique}.out")) == 1


async def test_a_restore_seeks_to_the_snapshot_positions_whatever_the_group_committed(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(COUNTS, unique)
    codec = SingleObjectCodec(schema_store)
    tp = TopicPartition(f"{unique}.in", 0)
    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        first = counting(unique, catalog, codec, cluster)
        async with running(first):
            await notes(publisher, unique, "k", "tick", "tick", "tick", "tick")
            await until_snapshot(cluster, codec, unique, 4)
        assert first.records_folded == 4
        # As after a crash between the snapshot (step 4) and the commit (step 5): the group is
        # behind. Restored from the snapshot, the four ticks still count once, not twice.
        await commit_group(cluster, f"{unique}-g", tp, 0)
        second = counting(unique, catalog, codec, cluster)
        async with Follower(cluster, [f"{unique}.out"]) as follower, running(second):
            await notes(publisher, unique, "k", "tick", "tick", "tick", "close")
            got = await follower.collect({"k"}, timeout_s=30)
        assert second.records_folded == 4  # only the records the snapshot lacked
        assert codec.decode(NOTE, got["k"][0].value or b"")["priority"] == 7
        # The group ahead of the snapshot (at 8): only the snapshot says what the state holds,
        # so the records it lacks are replayed into it.
        await notes(publisher, unique, "j", "tick", "tick")
        await commit_group(cluster, f"{unique}-g", tp, 10)
        third = counting(unique, catalog, codec, cluster)
        async with Follower(cluster, [f"{unique}.out"]) as follower, running(third):
            await notes(publisher, unique, "j", "close")
            got = await follower.collect({"j"}, timeout_s=30)
    assert codec.decode(NOTE, got["j"][0].value or b"")["priority"] == 2


# -- the market's window stage (moved here from tests/agents/market/test_pipeline.py) ---------
WINDOW_MS = 60_000


@pytest.fixture(scope="module")
async def project(broker_settings: Settings, cluster: Cluster) -> AsyncIterator[Project]:
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": cluster.bootstrap}))
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog)
    yield project


async def _until(done: Any, timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s * 10)):
        if done():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def test_a_window_worker_restarted_mid_window_counts_every_tick_once(project: Project) -> None:
    sym = symbol()
    first = [(i * 2_000, 100.0 + i, 1.0) for i in range(10)]
    second = [(20_000 + i * 2_000, 110.0 + i, 1.0) for i in range(10)]
    async with Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub:
        [window] = workers(project, only=("windows",))
        assert isinstance(window, WindowWorker)
        async with running(window):
            await publish_ticks(pub, sym, first)
            await _until(lambda: window.records_folded >= 10)
            await asyncio.sleep(0.5)  # past a checkpoint: the snapshot holds the open window
        async with (
            running(*workers(project)),
            Follower(project.cluster(), ["market.windows"]) as follower,
        ):
            await publish_ticks(pub, sym, [*second, (WINDOW_MS + 6_000, 120.0, 1.0)])
            key = f"{sym}:{T0}"
            got = await follower.collect({key}, timeout_s=30)
    closed = project.codec.decode("podium.market.Window", got[key][0].value or b"")
    assert closed["ticks"] == 20 and closed["volume"] == 20.0
    assert (closed["open"], closed["close"], closed["high"]) == (100.0, 119.0, 119.0)


async def test_an_unreadable_tick_is_dead_lettered_with_its_bytes_and_the_windows_go_on(
    project: Project,
) -> None:
    sym = symbol()
    [window] = workers(project, only=("windows",))
    assert isinstance(window, WindowWorker)
    async with (
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
        running(window),
        Follower(project.cluster(), ["market.ticks.dlq"]) as letters,
    ):
        await pub.send_raw("market.ticks", sym.encode(), b"\x00not avro", [])
        await publish_ticks(pub, sym, [(1_000, 100.0, 1.0)])
        got = await letters.collect({sym}, timeout_s=30)
        await _until(lambda: window.records_folded >= 1)
    letter = project.codec.decode("podium.DeadLetter", got[sym][0].value or b"")
    assert letter["original_value"] == b"\x00not avro" and letter["original_topic"] == "market.ticks"
    assert letter["stage"] == "windows" and letter["error_message"]
