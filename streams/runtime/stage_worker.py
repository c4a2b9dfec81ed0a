"""The stage runtime: many records in flight, nothing lost.

For every record of ``<consumes>`` and ``<consumes>.retry`` a :class:`StageWorker`:

0. tracks the record in the :class:`~streams.runtime.offsets.OffsetTracker` as soon as it is
   read, then holds it in a :class:`~streams.runtime.fairness.FairScheduler` until the scheduler
   starts it in a free in-flight slot (its tenant's turn; its lane free when ordered by key).
   Being tracked from the read, a record waiting there holds the committed position below it;
   what is read ahead is bounded (records and bytes; partitions paused when full);
1. decodes headers (bad ones are replaced, never fatal) and the Avro value (a tombstone, a
   record with no value, is dead-lettered unless the stage handles deletions: ``on_tombstone``);
2. opens a ``process <topic>`` span that continues the producer's trace (with nothing to record
   it, none is built: the record carries the trace on with a span id of its own);
3. runs the handler under a timeout bounded by the request's deadline (one
   :class:`~streams.runtime.deadlines.Deadlines` watcher per worker, not a timer per record),
   retrying in process as :func:`streams.runtime.retry.decide` says;
4. produces the outcome, exactly one of: the handler's results (to the stage's ``produces``),
   the original bytes to ``<consumes>.retry`` with a not-before time, or a ``podium.DeadLetter``
   with the original key, bytes and headers to ``<consumes>.dlq``;
5. hands the records to the sender and waits for the broker's acknowledgement of every one
   (``acks=all``): the producer's own delivery futures, no future of podium's per record;
6. marks the offset finished in the :class:`~streams.runtime.offsets.OffsetTracker`, in the
   callback of the last acknowledgement;
7. a separate loop commits the tracker's safe positions: never past an unfinished record.

This numbered order is the commit order of podium; nothing else commits offsets. A crash
anywhere before 7 replays the record after restart (duplicates are possible, losses are not).
On revocation and on stop, in-flight records are drained (bounded) before the final commit;
records still waiting for a slot are given up at once (the next owner reads them again).
If the task that relays the sends dies, the records waiting for step 5 are given up at once
(never marked finished, so they are redelivered) and the worker stops with its error.

Records are started in batches: whatever the scheduler gives to the slots free at one moment
(after a fetch, or once the acknowledgements of one produce batch have settled their records)
starts together, each on a task of its own (a handler may await for seconds; the others go on),
and the duration histogram is recorded once per batch. A failed send leaves the fast path: the
record's outputs are delivered again by a task of its own, one record at a time, each output in
a batch of its own: with backoff, or to the dead letter when the broker refuses it alone.

What a record becomes (the value in 1, then 3 and 4) is :class:`~streams.runtime.outcome.Outcomes`;
the task that relays step 5's records is a :class:`~streams.runtime.sender.Sender`; the worker's
lifecycle is :class:`~streams.runtime.workers.KafkaWorker`'s. This module orders the steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Unpack

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import KafkaError
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Status, StatusCode

from streams.contracts.catalog import dlq_topic, retry_topic
from streams.contracts.headers import RequestHeaders, parse_headers, request_id_from_key
from streams.runtime.batches import produce_round
from streams.runtime.deadlines import Deadlines
from streams.runtime.fairness import FairScheduler, ReadAhead, tenant_of
from streams.runtime.offsets import OffsetTracker
from streams.runtime.outcome import Outcomes, Output
from streams.runtime.redelivery import Abandon, Redelivery
from streams.runtime.sender import Sender, SenderStopped
from streams.runtime.settling import Batch, Read, Settling
from streams.runtime.stage import Stage
from streams.runtime.workers import MAX_REQUEST_BYTES, ClientSettings, KafkaWorker, WorkerArgs, kafka_producer
from streams.telemetry.otel import process_span, records_spans

__all__ = ["StageWorker"]

PROCESS_DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

log = logging.getLogger("podium.runtime")

PRODUCE_BATCH_BYTES = 1_000_000  # librdkafka's default batch.size
# While every partition is paused (the read-ahead is full), the loop still polls this often, so
# the group's max.poll.interval.ms never takes a busy worker for a dead one.
_PAUSED_POLL_S = 1.0


class StageWorker(KafkaWorker[Stage[Any]]):
    def __init__(
        self,
        stage: Stage[Any],
        *,
        commit_interval_s: float = 0.25,
        drain_timeout_s: float = 30.0,
        **clients: Unpack[WorkerArgs],
    ) -> None:
        super().__init__(stage, **clients)
        self._commit_interval_s = commit_interval_s
        self._drain_timeout_s = drain_timeout_s
        meter = self._telemetry.meter("podium.streams")
        self._duration = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Time to settle one batch of records (those started together)",
            # The messaging conventions' boundaries, in seconds: the SDK's defaults (0, 5, 10, ...
            # 10000) put every stage duration in the first bucket, so no quantile could be read.
            explicit_bucket_boundaries_advisory=PROCESS_DURATION_BUCKETS_S,
        )
        self._settled = meter.create_counter(
            "podium.stage.settled",
            unit="{record}",
            description="Records settled, by outcome: ok, retry, dlq or abandoned (redelivered)",
        )
        self._records_spans = records_spans(self._telemetry.tracer_provider)
        # What one produce batch to each topic may hold: the broker refuses a whole batch over
        # the topic's max.message.bytes.
        self._batch_limits = {
            topic: min(self._catalog.get(topic).max_message_bytes, PRODUCE_BATCH_BYTES)
            for topic in (*stage.produces, retry_topic(stage.consumes), dlq_topic(stage.consumes))
        }
        # Steps 1 (the value) and 3-4: what each record becomes.
        self._outcomes = Outcomes(
            stage,
            catalog=self._catalog,
            codec=self._codec,
            meter=meter,
            sleep=self._sleep,
            deadlines=Deadlines(),
        )
        meter.create_observable_gauge(
            "podium.stage.consumer_lag",
            callbacks=[self._observe_lag],
            unit="{record}",
            description="Records on the consumed topics not yet settled by this worker, per partition",
        )
        # Built once: the SDK hashes attribute sets on every record() call, dicts need not be new.
        self._outcome_attrs = {
            outcome: {"podium.stage": stage.name, "podium.outcome": outcome}
            for outcome in ("ok", "retry", "dlq", "abandoned")
        }
        self._stage_attrs = {"podium.stage": stage.name}
        self._tracker = OffsetTracker()
        self._in_flight = 0  # records started, not yet settled: at most self._slots
        self._refill_due = False  # a call of _start_waiting is scheduled
        self._room = asyncio.Event()  # set each time a record settles or waiting ones are dropped
        self._tasks: set[asyncio.Task[None]] = set()
        # Step 0: what was read waits here for a slot, one queue per tenant.
        fairness = stage.fairness
        self._scheduler: FairScheduler[Read] = FairScheduler(fairness.weight)
        self._read_ahead: ReadAhead[tuple[str, int]] = ReadAhead(
            fairness.read_ahead_records, fairness.read_ahead_bytes
        )
        self._tenant_of = tenant_of if fairness.by_tenant else _one_tenant
        # Ordered by key: a key's records run one at a time, in order, and at most ``lanes`` keys
        # at once. A lane is the key itself, not a hash bucket of keys: a bucket would hold one
        # tenant's request behind another tenant's backlog of other keys.
        self._slots = min(stage.max_in_flight, stage.lanes) if stage.ordered_by_key else stage.max_in_flight
        self._background: list[asyncio.Task[None]] = []
        # Every output goes through one sender; if it dies, the records waiting for it fail at
        # once (left unfinished: redelivered) and the worker stops with its error.
        self._sender = Sender(self._produce, name=f"{stage.name}-send", on_death=self._stop.fail)
        meter.create_observable_gauge(
            "podium.stage.read_ahead",
            callbacks=[self._observe_read_ahead],
            unit="{record}",
            description="Records read and waiting for an in-flight slot",
        )
        self._wake = asyncio.Event()  # replaced each time it fires; sleepers re-check why
        self._revoking: set[tuple[str, int]] = set()
        # Step 5's slow path, and the producer it replaces after a refusal.
        self._redelivery = Redelivery(
            stage.name,
            producer=lambda: self._producer,
            replace=self._use_producer,
            make=lambda: kafka_producer(self._client_settings()),
            stopping=self._stop.requested.is_set,
            sleep=self._sleep,
            dlq_topic=self._outcomes.dlq_topic,
        )

    # -- lifecycle (the rest is KafkaWorker's) --------------------------------------------
    def _client_settings(self) -> ClientSettings:
        return ClientSettings(
            self.stage.name,
            self._stage_cluster,
            self._group,
            # Keyed work (ordered lanes, a join's state): one worker gets partition p of every
            # topic it reads (main, retry, the extra topics), so one key meets one worker.
            assignor=RangePartitionAssignor if self._keyed else RoundRobinPartitionAssignor,
            max_partition_fetch_bytes=MAX_REQUEST_BYTES,
            fetch_max_bytes=4 * MAX_REQUEST_BYTES,
            # aiokafka sends one produce request per broker at a time, with one batch per
            # partition: its 16 KB batch held a stage to a few thousand 1 KB records a second.
            # The rounds' builders are cut at each topic's own limit (produce_round).
            producer_batch_bytes=PRODUCE_BATCH_BYTES,
        )

    def _topics(self) -> list[str]:
        return self._outcomes.topics

    def _copartitioned(self) -> bool:
        return self._keyed

    @property
    def _keyed(self) -> bool:
        return self.stage.ordered_by_key or bool(self.stage.also_consumes)

    def _started(self) -> None:
        self._background.append(asyncio.create_task(self._commit_loop(), name=f"{self.stage.name}-commit"))
        self._sender.start()
        for task in self._background:
            # The committer must never end on its own: stop, uncommitted.
            self._stop.watch(task)

    def _stop_requested(self) -> None:
        self._room.set()
        self._wake_sleepers()

    # -- the loop -------------------------------------------------------------------------
    @property
    def read_ahead(self) -> int:
        """Records read and waiting for an in-flight slot."""
        return len(self._scheduler)

    async def _loop(self) -> None:
        """Read ahead while there is room; each record is started by the scheduler on its own task."""
        consumer = self._consumer
        assert consumer is not None
        polled = time.monotonic()
        while not self._stop.requested.is_set():
            timeout_ms = 100
            if not self._pace(consumer):
                # The read-ahead is full: wait for records to start (each settle wakes this);
                # at least every _PAUSED_POLL_S poll once, fetching nothing, so that the group
                # goes on seeing this worker alive.
                left = _PAUSED_POLL_S - (time.monotonic() - polled)
                if left > 0:
                    self._room.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(left):
                            await self._room.wait()
                    continue
                timeout_ms = 0
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=self._read_ahead.room())
            polled = time.monotonic()
            for tp, records in batches.items():
                self._read((tp.topic, tp.partition), records)
            self._start_waiting()

    def _pace(self, consumer: AIOKafkaConsumer) -> bool:
        """Pause and resume partitions as the read-ahead says (:meth:`ReadAhead.pace`); whether
        any assigned partition is left to fetch from."""
        assigned = consumer.assignment()
        paused = consumer.paused()
        pause, resume = self._read_ahead.pace(
            {(tp.topic, tp.partition) for tp in assigned}, {(tp.topic, tp.partition) for tp in paused}
        )
        if pause:
            consumer.pause(*(TopicPartition(*p) for p in pause))
        if resume:
            consumer.resume(*(TopicPartition(*p) for p in resume))
        return not assigned or len(paused) + len(pause) - len(resume) < len(assigned)

    def _read(self, tp: tuple[str, int], records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Step 0: track each record, then queue it for its slot."""
        if tp in self._revoking:
            return  # not ours any more (not tracked, so never committed): its next owner reads it
        for record in records:
            if not self._tracker.started(tp, record.offset):
                log.warning("stage %s: %s re-read from offset %d", self.stage.name, tp, record.offset)
                # The tracker forgot what it held of the partition; what waits of it comes again.
                for _, size in self._scheduler.drop(lambda read: (read[0].topic, read[0].partition) == tp):
                    self._read_ahead.started(tp, size)
            size = len(record.value or b"") + len(record.key or b"")
            size += sum(len(k) + len(v or b"") for k, v in record.headers or ())
            self._read_ahead.read(tp, size)
            lane = (record.key or b"") if self.stage.ordered_by_key else None
            self._scheduler.add((record, size), self._tenant_of(record.headers), lane)

    def _start_waiting(self) -> None:
        """Fill the free in-flight slots with what the scheduler says comes next: one batch."""
        self._refill_due = False
        if self._stop.requested.is_set():
            return  # what waits is given up at the wind-down
        batch: Batch | None = None
        while self._in_flight < self._slots:
            ticket = self._scheduler.take()
            if ticket is None:
                break
            record, size = ticket.item
            self._read_ahead.started((record.topic, record.partition), size)
            self._in_flight += 1
            if batch is None:
                batch = Batch(time.perf_counter())
            batch.left += 1
            # Tracked for the wind-down; each forgets itself when it ends (no done callback).
            self._tasks.add(asyncio.create_task(self._run(Settling(ticket, record, batch))))

    def _refill(self) -> None:
        """Start what waits once the records settling in this turn of the loop have settled:
        the producer acknowledges a whole batch at once, and its slots refill as one batch."""
        if not self._refill_due:
            self._refill_due = True
            asyncio.get_running_loop().call_soon(self._start_waiting)

    def _give_up_waiting(self, partitions: set[tuple[str, int]] | None = None) -> None:
        """Records waiting for a slot (of ``partitions``; None: all) are given up, unstarted."""
        for record, _ in self._scheduler.drop(
            lambda read: partitions is None or (read[0].topic, read[0].partition) in partitions
        ):
            self._tracker.abandoned((record.topic, record.partition), record.offset)
        self._read_ahead.forget(partitions)
        self._room.set()

    async def _run(self, settling: Settling) -> None:
        """Steps 1-4 on the record's own task, then step 5 handed to the sender: its callback
        (:meth:`_delivered`) does step 6. Never raises: a bug stops the worker, uncommitted."""
        record = settling.record
        try:
            headers = parse_headers(record.headers)
            if headers.request_id is None:
                headers = headers.evolve(request_id=request_id_from_key(record.key))
            settling.headers = headers
            span = settling.span = self._open_span(record, headers)
            if headers.problems:
                span.add_event("podium.headers.replaced", {"problems": list(headers.problems)})
            outputs, settling.outcome = await self._outcomes.of(record, headers, span)
        except (Abandon, SenderStopped):
            self._settle(settling, finished=False)
            return
        except asyncio.CancelledError:
            self._settle(settling, finished=False)  # the wind-down: its slot goes, it is redelivered
            raise
        # A bug, not a record's fate: the worker stops with it, uncommitted past the record.
        except Exception as exc:  # noqa: BLE001
            self._internal_error(settling, exc)
            return
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
        settling.outputs = outputs
        settling.unacked = len(outputs)
        settling.generation = self._redelivery.generation
        delivered = functools.partial(self._delivered, settling)
        for out in outputs:
            self._sender.hand(out, delivered)

    def _open_span(self, record: ConsumerRecord[bytes, bytes], headers: RequestHeaders) -> trace.Span:
        """Step 2 (:func:`~streams.telemetry.otel.process_span`), current on this task."""
        span, context = process_span(
            self._tracer, self._records_spans, record, headers, group=self._group, stage=self.stage.name
        )
        # The task's own copy of the context: it ends with the task, so nothing detaches it.
        otel_context.attach(context)
        return span

    def _delivered(self, settling: Settling, delivery: asyncio.Future[Any]) -> None:
        """Step 6 once the broker acknowledged every output; a failed send goes to the slow path."""
        error = (
            SenderStopped("the producer dropped the send before it was acknowledged")
            if delivery.cancelled()
            else delivery.exception()
        )
        if settling.settled or settling.redelivering:
            return  # an earlier output already decided this record's fate
        if error is None:
            settling.unacked -= 1
            if settling.unacked == 0:
                self._settle(settling, finished=True)
        elif isinstance(error, SenderStopped):
            self._settle(settling, finished=False)
        else:
            settling.redelivering = True
            task = asyncio.create_task(self._deliver_again(settling, error))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver_again(self, settling: Settling, error: BaseException) -> None:
        """Step 5's slow path, on a task of its own: the send of the record's batch failed."""
        try:
            assert settling.headers is not None and settling.span is not None
            # Started from a delivery callback: the record's trace is made current again, so a
            # dead letter built here is a child of its process span.
            otel_context.attach(trace.set_span_in_context(settling.span))
            record, headers, span = settling.record, settling.headers, settling.span

            def dead_letter(refusal: BaseException) -> Output:
                reason = f"broker refused an output record: {refusal!r}"
                return self._outcomes.dead_letter(
                    record, headers, "output_rejected", reason, headers.attempt, span
                )

            if await self._redelivery.deliver(settling.outputs, error, settling.generation, dead_letter):
                settling.outcome = "dlq"
            self._settle(settling, finished=True)
        except (Abandon, SenderStopped):
            self._settle(settling, finished=False)
        except asyncio.CancelledError:
            self._settle(settling, finished=False)
            raise
        except Exception as exc:  # noqa: BLE001 (a bug: _internal_error stops the worker)
            self._internal_error(settling, exc)

    def _internal_error(self, settling: Settling, exc: Exception) -> None:
        record = settling.record
        log.error(
            "stage %s: internal error on %s@%s",
            self.stage.name,
            record.topic,
            record.offset,
            exc_info=exc,
        )
        if settling.span is not None and settling.span.is_recording():
            settling.span.record_exception(exc)
            settling.span.set_status(Status(StatusCode.ERROR, repr(exc)[:200]))
        self._stop.fail(exc)
        self._settle(settling, finished=False)

    def _settle(self, settling: Settling, *, finished: bool) -> None:
        """Step 6 (``finished``) or give the record up unfinished (redelivered): once."""
        if settling.settled:
            return
        settling.settled = True
        record = settling.record
        if finished:
            self._tracker.finished((record.topic, record.partition), record.offset)
        else:
            self._tracker.abandoned((record.topic, record.partition), record.offset)
            settling.outcome = "abandoned"
        self._in_flight -= 1
        self._scheduler.settled(settling.ticket)
        self._room.set()
        span = settling.span
        if span is not None and span.is_recording():
            span.set_attribute("podium.outcome", settling.outcome)
            span.end()
        batch = settling.batch
        batch.outcomes[settling.outcome] = batch.outcomes.get(settling.outcome, 0) + 1
        batch.left -= 1
        if batch.left == 0:
            # Metrics per batch: an SDK record() per record was 12 us of a stage's CPU.
            self._duration.record(time.perf_counter() - batch.started, self._stage_attrs)
            for outcome, count in batch.outcomes.items():
                self._settled.add(count, self._outcome_attrs[outcome])
        self._refill()

    def _use_producer(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def _produce(self, outputs: list[Output]) -> list[asyncio.Future[Any]]:
        """One sender round (:func:`~streams.runtime.batches.produce_round`)."""
        assert self._producer is not None
        return await produce_round(self._producer, outputs, self._batch_limits)

    async def _sleep(self, seconds: float, record: ConsumerRecord[bytes, bytes] | None = None) -> None:
        """Sleep, but give the record up when the worker stops or its partition is revoked."""
        tp = (record.topic, record.partition) if record is not None else None
        deadline = time.monotonic() + seconds
        while True:
            if self._stop.requested.is_set() or (tp is not None and tp in self._revoking):
                raise Abandon
            left = deadline - time.monotonic()
            if left <= 0:
                return
            wake = self._wake
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await wake.wait()

    def _wake_sleepers(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    def _observe_read_ahead(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(len(self._scheduler), {"podium.stage": self.stage.name})]

    def _observe_lag(self, _: CallbackOptions) -> list[Observation]:
        consumer = self._consumer
        if consumer is None:
            return []
        observations = []
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            low = self._tracker.oldest_unsettled((tp.topic, tp.partition))
            if high is not None and low is not None:
                attrs = {
                    "podium.stage": self.stage.name,
                    "messaging.destination.name": tp.topic,
                    "messaging.destination.partition.id": str(tp.partition),
                }
                observations.append(Observation(max(0, high - low), attrs))
        return observations

    # -- rebalances -----------------------------------------------------------------------
    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        await self._drain([(tp.topic, tp.partition) for tp in revoked])

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        self._revoking -= {(tp.topic, tp.partition) for tp in assigned}
        log.info("stage %s assigned %s", self.stage.name, sorted(map(str, assigned)))

    # -- commits --------------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._commit_interval_s)
            await self._commit()

    async def _commit(self) -> None:
        positions = self._tracker.to_commit()
        if not positions or self._consumer is None:
            return
        assigned = self._consumer.assignment()
        offsets = {
            TopicPartition(t, p): o for (t, p), o in positions.items() if TopicPartition(t, p) in assigned
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("stage %s: commit failed (%s); will retry", self.stage.name, exc)
            return
        self._tracker.committed({(tp.topic, tp.partition): o for tp, o in offsets.items()})

    async def _drain(self, partitions: list[tuple[str, int]]) -> None:
        """Settle or give up the in-flight records of ``partitions``, commit, forget them.

        Records that are only waiting (for a slot, a retry delay) are given up at once: the next
        owner runs them. Records inside their handler get up to the drain timeout.
        """
        self._revoking |= set(partitions)
        self._give_up_waiting(set(partitions))
        self._wake_sleepers()
        await self._until(lambda: not any(self._tracker.in_flight(tp) for tp in partitions))
        await self._commit()
        self._tracker.forget(partitions)

    async def _until(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()`` holds (checked each time a record settles), at most the drain timeout."""
        deadline = time.monotonic() + self._drain_timeout_s
        while not done() and time.monotonic() < deadline:
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - time.monotonic()):
                    await self._room.wait()

    async def _wind_down(self) -> None:
        """On stop: drain what is in flight (bounded), stop the tasks and the sender, commit."""
        self._give_up_waiting()
        await self._until(lambda: self._in_flight == 0)
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        await self._sender.stop()
        await self._redelivery.close()
        await self._commit()


def _one_tenant(_: object) -> str:
    """``Fairness(by_tenant=False)``: every record in one queue, started in the order read."""
    return ""
