"""A windowed join of two co-partitioned topics, with state that survives restarts.

A :class:`WindowStage` reads ``consumes`` (e.g. price ticks) and ``joins`` (e.g. news signals),
both keyed the same way with the same partition count, so partition *p* of each holds the same
keys and one worker owns both. What a window aggregates is the stage's business: it supplies a
:class:`WindowState` per partition (pure logic, no I/O); this module owns when things are safe.

The commit order of a window worker, one checkpoint every ``checkpoint_interval_s``:

1. fold each fetched record into its partition's state (unreadable ones become dead letters);
2. send the windows the state says are due (and the dead letters) without waiting;
3. at a checkpoint, await the broker's acknowledgement of everything sent since the last one;
4. write each changed partition's snapshot, *with the input positions it covers*, to the
   compacted ``state_topic`` and await its acknowledgement;
5. commit the same positions to the consumer group (for lag tools; restarts read step 4).

On assignment a worker restores each partition from its newest snapshot and seeks both inputs
to the positions in it, so a crash anywhere replays exactly the records the snapshot lacks: the
state counts every record once. Windows sent after the last snapshot are sent again on replay
(the same records give the same windows, keyed ``<key>:<window start>``), so readers of the
output see each window at least once and can drop repeats by key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Unpack

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind

from streams.contracts.catalog import DEAD_LETTER_SCHEMA, dlq_topic
from streams.contracts.headers import RequestHeaders, now_ms
from streams.errors import CodecError, PodiumError
from streams.kafka.reading import Selection, TopicReader
from streams.runtime.deadletter import letter_for
from streams.runtime.stage import Record, Resource
from streams.runtime.workers import ClientSettings, KafkaWorker, WorkerArgs
from streams.telemetry.otel import current_trace_headers, records_spans, trace_headers, unrecorded_child_of

__all__ = ["WINDOW_STATE_SCHEMA", "WindowStage", "WindowState", "WindowWorker"]

log = logging.getLogger("podium.windows")

WINDOW_STATE_SCHEMA = "podium.WindowState"


class WindowState(Protocol):
    """The open windows of one partition."""

    def add(self, topic: str, value: Record, timestamp_ms: int) -> None:
        """Fold one record in; ValueError: the record is unusable (it is dead-lettered)."""

    def due(self, idle_ms: int) -> list[tuple[str, Record]]:
        """Windows to emit now as (key, value). ``idle_ms``: 0 while input flows; once the
        partition has had none for the stage's ``idle_close_s``, the event time that has
        passed since its newest record by the clock (the feed ended or stalled)."""

    def snapshot(self) -> bytes: ...


@dataclass(frozen=True)
class WindowStage:
    name: str
    consumes: str
    joins: str
    produces: tuple[str, ...]  # the first is where windows go
    state_topic: str
    new_state: Callable[[bytes | None], WindowState]  # from a snapshot, or empty
    checkpoint_interval_s: float = 1.0
    idle_close_s: float = 2.0
    # Event time per wall-clock second while idle: 1 for live feeds; a replay at 60x sets 60.
    idle_clock_rate: float = 1.0
    max_batch: int = 10_000
    resources: tuple[Resource, ...] = ()


class WindowWorker(KafkaWorker[WindowStage]):
    def __init__(self, stage: WindowStage, **clients: Unpack[WorkerArgs]) -> None:
        super().__init__(stage, **clients)
        self._schemas = {t: self._catalog.get(t).value_schema for t in (stage.consumes, stage.joins)}
        self._out_schema = self._catalog.get(stage.produces[0]).value_schema
        self._dlq = dlq_topic(stage.consumes)
        for topic in (self._dlq, stage.state_topic):
            self._catalog.get(topic)
        self._states: dict[int, WindowState] = {}
        self._positions: dict[int, dict[str, int]] = {}
        self._changed: set[int] = set()
        self._last_input: dict[int, float] = {}
        self._restores: dict[int, int] = {}  # how often each partition was restored
        self._unacked: list[asyncio.Future[Any]] = []
        self._records_spans = records_spans(self._telemetry.tracer_provider)
        # One checkpoint, restore or release at a time: aiokafka runs the rebalance callbacks on
        # its own task, concurrently with the loop.
        self._state_lock = asyncio.Lock()
        self._broken = False  # a send failed: no snapshot may claim positions past it
        self.windows_sent = 0
        self.records_folded = 0
        self.first_fetch_at: float | None = None  # time.perf_counter() of the first records fetched

    # -- lifecycle (the rest is KafkaWorker's) --------------------------------------------
    def _client_settings(self) -> ClientSettings:
        # Range assignment gives one member partition p of both inputs: the join needs it.
        per_partition = 4 * 1024 * 1024  # max_partition_fetch_bytes
        return ClientSettings(
            self.stage.name, self._stage_cluster, self._group, RangePartitionAssignor, per_partition
        )

    def _topics(self) -> tuple[str, str]:
        return (self.stage.consumes, self.stage.joins)

    def _copartitioned(self) -> bool:
        return True

    # -- the loop -------------------------------------------------------------------------
    async def _loop(self) -> None:
        try:
            await self._consume()
        except BaseException:
            # State and positions may have moved past windows never sent (a cancelled task too:
            # state.due() may have handed over windows a send never took): no snapshot may keep
            # that. The next owner replays from the last good snapshot.
            self._broken = True
            raise

    async def _consume(self) -> None:
        assert self._consumer is not None
        next_checkpoint = time.monotonic() + self.stage.checkpoint_interval_s
        while not self._stop.requested.is_set():
            batches = await self._consumer.getmany(timeout_ms=100, max_records=self.stage.max_batch)
            restores = dict(self._restores)  # as the records were handed over
            if batches and self.first_fetch_at is None:
                self.first_fetch_at = time.perf_counter()
            async with self._state_lock:  # a rebalance waits for the batch, not the reverse
                for tp, records in batches.items():
                    if tp.partition not in self._states:
                        continue  # revoked while fetched
                    if self._restores[tp.partition] != restores.get(tp.partition):
                        # Restored while these waited for the lock: aiokafka fetches from the
                        # group's commit while the restore runs, which may be past the snapshot.
                        # The restore's seek reads them again, after the records it lacks.
                        continue
                    # What the state already covers is skipped: aiokafka may hand over records it
                    # fetched from the group's commit before the restore moved the position.
                    covered = self._positions[tp.partition].get(tp.topic, -1)
                    undecodable = [
                        (record, exc)
                        for record in records
                        if record.offset >= covered and (exc := self._fold(record)) is not None  # step 1
                    ]
                    for record, exc in undecodable:
                        await self._send(self._dlq, record.key, self._dead_letter(record, exc), [])
                    self._positions[tp.partition][tp.topic] = max(covered, records[-1].offset + 1)
                    self._changed.add(tp.partition)
                    self._last_input[tp.partition] = time.monotonic()
                await self._emit_due()  # step 2
            if time.monotonic() >= next_checkpoint:
                await self._checkpoint(set(self._states))
                next_checkpoint = time.monotonic() + self.stage.checkpoint_interval_s

    def _fold(self, record: ConsumerRecord[bytes, bytes]) -> Exception | None:
        """Into the window state; what could not be folded is returned, to be dead-lettered after
        the batch: no await and no coroutine per record."""
        state = self._states[record.partition]
        try:
            if record.value is None:
                raise CodecError("the record has no value (tombstone)")
            value = self._codec.decode(self._schemas[record.topic], record.value)
            state.add(record.topic, value, record.timestamp)
            self.records_folded += 1
        except (CodecError, ValueError) as exc:
            return exc
        return None

    async def _emit_due(self) -> None:
        now = time.monotonic()
        for partition, state in self._states.items():
            quiet_s = now - self._last_input.get(partition, now)
            idle_ms = (
                int(quiet_s * 1000 * self.stage.idle_clock_rate) if quiet_s >= self.stage.idle_close_s else 0
            )
            due = state.due(idle_ms)
            if due:
                self._changed.add(partition)
            for key, value in due:
                if self._records_spans:
                    with self._tracer.start_as_current_span(
                        f"window {self.stage.consumes}", kind=SpanKind.PRODUCER
                    ) as span:
                        span.set_attributes({"podium.stage": self.stage.name, "podium.request_id": key})
                        traceparent, tracestate = current_trace_headers()
                else:  # a trace of its own for the window, no span built for nobody
                    traceparent, tracestate = trace_headers(unrecorded_child_of(None, None)[0])
                headers = RequestHeaders(
                    request_id=key, traceparent=traceparent, tracestate=tracestate, path=(self.stage.name,)
                ).to_kafka()
                encoded = self._codec.encode(self._out_schema, value)
                await self._send(self.stage.produces[0], key.encode(), encoded, headers)
                self.windows_sent += 1

    async def _send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        assert self._producer is not None
        # send() queues the record (waiting only while the buffer is full); the future it returns
        # resolves on the broker's acknowledgement, awaited at the checkpoint.
        self._unacked.append(await self._producer.send(topic, value, key=key, headers=headers))

    async def _checkpoint(self, partitions: set[int]) -> None:
        async with self._state_lock:
            await self._checkpoint_locked(partitions)

    async def _checkpoint_locked(self, partitions: set[int]) -> None:
        """Steps 3 to 5 for ``partitions``."""
        assert self._producer is not None and self._consumer is not None
        if self._broken:
            raise PodiumError(f"stage {self.stage.name}: a send failed; no snapshot is written after it")
        sent, self._unacked = self._unacked, []
        try:
            await asyncio.gather(*sent)  # step 3
        except BaseException:
            # A window or dead letter may be lost: a snapshot past it would make that final. The
            # worker stops; the next owner replays from the last snapshot and sends it again.
            self._broken = True
            raise
        changed = partitions & self._changed & set(self._states)
        if not changed:
            return
        writes = []
        for p in sorted(changed):
            snapshot = {
                "partition": p,
                "positions": dict(self._positions[p]),
                "state": self._states[p].snapshot(),
                "written_ms": now_ms(),
            }
            value = self._codec.encode(WINDOW_STATE_SCHEMA, snapshot)
            writes.append(await self._producer.send(self.stage.state_topic, value, key=str(p).encode()))
        await asyncio.gather(*writes)  # step 4
        self._changed -= changed
        assigned = self._consumer.assignment()
        offsets = {
            TopicPartition(topic, p): offset
            for p in changed
            for topic, offset in self._positions[p].items()
            if TopicPartition(topic, p) in assigned
        }
        if offsets:
            with contextlib.suppress(KafkaError):  # informational: restarts read the snapshot
                await self._consumer.commit(offsets)  # step 5

    # -- assignment -----------------------------------------------------------------------
    # A failed release: without its last snapshot the next owner replays more (nothing is
    # lost), but this worker must not go on closing windows of partitions it no longer owns.
    # A failed restore: a worker without its state must not consume. Either stops it.
    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        await self._restore({tp.partition for tp in assigned})

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        await self._release({tp.partition for tp in revoked})

    async def _restore(self, partitions: set[int]) -> None:
        async with self._state_lock:
            await self._restore_locked(partitions)

    async def _restore_locked(self, partitions: set[int]) -> None:
        """Each partition's state from its newest snapshot, and both inputs seeked to the
        positions that snapshot covers (no snapshot: the group's commit, else the beginning).
        The seek is explicit because aiokafka may have fetched ahead before this ran."""
        assert self._consumer is not None
        async with asyncio.timeout(60):  # inside a rebalance: the whole group waits for it
            snapshots = await self._read_snapshots(partitions)
        starts: dict[TopicPartition, int | None] = {}
        for p in partitions:
            covered = snapshots[p]["positions"] if p in snapshots else {}
            for topic in (self.stage.consumes, self.stage.joins):
                tp = TopicPartition(topic, p)
                starts[tp] = covered[topic] if topic in covered else await self._consumer.committed(tp)
        # No awaits from here on: state and positions change together.
        for p in sorted(partitions):
            snapshot = snapshots.get(p)
            self._states[p] = self.stage.new_state(snapshot["state"] if snapshot else None)
            self._positions[p] = dict(snapshot["positions"]) if snapshot else {}
            self._restores[p] = self._restores.get(p, 0) + 1
            # A restored window with no more input still closes after idle_close_s.
            self._last_input[p] = time.monotonic()
            log.info(
                "stage %s: partition %d restored from %s",
                self.stage.name,
                p,
                f"snapshot at {self._positions[p]}" if snapshot else "nothing (new)",
            )
        beginning = [tp for tp, start in starts.items() if start is None]
        for tp, start in starts.items():
            if start is not None:
                self._consumer.seek(tp, start)
        if beginning:
            await self._consumer.seek_to_beginning(*beginning)

    async def _release(self, partitions: set[int]) -> None:
        async with self._state_lock:
            owned = partitions & set(self._states)
            try:
                if owned and self._producer is not None and not self._broken:
                    await self._checkpoint_locked(owned)
            finally:
                self._forget(owned)

    def _forget(self, owned: set[int]) -> None:
        for p in owned:
            self._states.pop(p, None)
            self._positions.pop(p, None)
            self._last_input.pop(p, None)

    async def _read_snapshots(self, partitions: set[int]) -> dict[int, dict[str, Any]]:
        """The newest snapshot per partition, read from the start of the compacted state topic."""
        found: dict[int, dict[str, Any]] = {}
        async with TopicReader(self._stage_cluster) as reader:
            async for record in reader.read(await reader.plan(Selection(self.stage.state_topic))):
                if record.value is not None:
                    snapshot = self._codec.decode(WINDOW_STATE_SCHEMA, record.value)
                    if snapshot["partition"] in partitions:
                        found[snapshot["partition"]] = snapshot
        return found

    # -- shutdown -------------------------------------------------------------------------
    async def _wind_down(self) -> None:
        """On stop: a last checkpoint, unless a send failed."""
        if not self._broken:
            try:
                await self._checkpoint(set(self._states))
            except (KafkaError, PodiumError) as exc:
                # Nothing is lost (no snapshot passes an unsent window), but the stop is no success.
                self._stop.fail(exc)

    def _dead_letter(self, record: ConsumerRecord[bytes, bytes], exc: Exception) -> bytes:
        letter = letter_for(
            record,
            stage=self.stage.name,
            error_type=type(exc).__name__,
            reason=str(exc),
            attempts=1,
            request_id=(record.key or b"").decode("utf-8", "replace")[:128] or None,
            trace_id=None,
        )
        return self._codec.encode(DEAD_LETTER_SCHEMA, letter)
