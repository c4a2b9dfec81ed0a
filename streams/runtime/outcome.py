"""What one record of a stage becomes: steps 1 (the value) and 3-4 of the commit order written
in :mod:`streams.runtime.stage_worker`.

:meth:`Outcomes.of` decodes a record's value, runs the stage's handler under a timeout bounded
by the request's deadline (one :class:`~streams.runtime.deadlines.Deadlines` watcher per
worker), retries it in process as :func:`streams.runtime.retry.decide` says,
and returns exactly one outcome as the records to produce: the handler's results (each checked
against its topic's size limit before anything is sent), the original bytes to
``<consumes>.retry`` with a not-before time, or a ``podium.DeadLetter`` to ``<consumes>.dlq``.
A tombstone (no value) is dead-lettered, or, when the stage declares ``on_tombstone``, runs that
handler with its key through the same steps (a retried tombstone goes to the retry topic as a
tombstone again). It sends nothing: the worker delivers the records (step 5) and marks the offset (step 6).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.metrics import Meter
from opentelemetry.trace import Status, StatusCode

from streams.contracts.catalog import DEAD_LETTER_SCHEMA, Catalog, dlq_topic, retry_topic
from streams.contracts.codec import Codec
from streams.contracts.headers import RequestHeaders, now_ms
from streams.errors import (
    CodecError,
    DeadlineExceeded,
    HandlerTimeout,
    PayloadTooLarge,
    RoutingError,
    error_type,
)
from streams.runtime.deadletter import letter_for
from streams.runtime.deadlines import Deadlines
from streams.runtime.retry import DeadLetter, RetryLater, RetryNow, decide
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.workers import MAX_REQUEST_BYTES
from streams.telemetry.otel import current_trace_headers

__all__ = ["Outcomes", "Output"]

_CLOCK_SKEW_S = 5.0
_RECORD_OVERHEAD = 512  # batch and record framing that Kafka counts against max.message.bytes

# Sleeps, unless the record is given up (the worker stops, or loses its partition): then raises.
Sleep = Callable[[float, ConsumerRecord[bytes, bytes]], Awaitable[None]]


@dataclass(frozen=True)
class Output:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone going to the retry topic
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class _Deletion:
    """A tombstone for the stage's ``on_tombstone``: the deleted key."""

    key: str


class Outcomes:
    """The outcomes of one stage's records; ``sleep`` is the worker's (retry delays)."""

    def __init__(
        self,
        stage: Stage[Any],
        *,
        catalog: Catalog,
        codec: Codec,
        meter: Meter,
        sleep: Sleep,
        deadlines: Deadlines | None = None,
    ) -> None:
        self._stage = stage
        self._codec = codec
        self._sleep = sleep
        self._deadlines = deadlines or Deadlines()  # the worker's, shared by its records
        self.retry_topic = retry_topic(stage.consumes)
        self.dlq_topic = dlq_topic(stage.consumes)
        # Records of the extra topics have no retry topic of their own: in-process retries only.
        self._extra_retry = replace(stage.retry, retry_topic_delays_s=())
        self._value_schemas = {
            t: catalog.get(t).value_schema for t in (stage.consumes, self.retry_topic, *stage.also_consumes)
        }
        self._out_schemas = {t: catalog.get(t).value_schema for t in stage.produces}
        self._out_limits = {
            t: min(catalog.get(t).max_message_bytes, MAX_REQUEST_BYTES) for t in stage.produces
        }
        catalog.get(self.dlq_topic)  # the retry topic is looked up with the value schemas above
        # The longest a retried record may wait for its not-before: a bogus or skewed one must
        # not hold a slot forever.
        self._longest_wait_s = max(stage.retry.retry_topic_delays_s, default=0.0) + _CLOCK_SKEW_S
        self._retries = meter.create_counter(
            "podium.stage.retries", description="Handler runs that failed and were retried (now or later)"
        )
        self._dead_letters = meter.create_counter(
            "podium.stage.dead_letters", description="Records sent to the dead-letter topic, by error type"
        )

    @property
    def topics(self) -> list[str]:
        """What the stage reads: its own topic, its retry topic and the extra ones."""
        return list(self._value_schemas)

    async def of(
        self, record: ConsumerRecord[bytes, bytes], headers: RequestHeaders, span: trace.Span
    ) -> tuple[list[Output], str]:
        """The records ``record`` becomes and the outcome's name: ok, retry or dlq."""
        value = record.value
        decoded: dict[str, Any] | _Deletion
        try:
            if value is None:
                decoded = self._deletion(record)
            else:
                if len(value) > self._stage.max_value_bytes:
                    raise PayloadTooLarge(
                        f"value is {len(value)} bytes; stage {self._stage.name} accepts at most "
                        f"{self._stage.max_value_bytes}"
                    )
                decoded = self._codec.decode(self._value_schemas[record.topic], value)
        except CodecError as exc:
            return [self.dead_letter(record, headers, error_type(exc), str(exc), 0, span)], "dlq"

        if record.topic == self.retry_topic and headers.not_before_ms is not None:
            # A bogus or skewed not-before must not hold a slot forever.
            await self._sleep(min((headers.not_before_ms - now_ms()) / 1000, self._longest_wait_s), record)

        attempt_in_round = 0
        while True:
            attempt_in_round += 1
            headers = headers.evolve(attempt=headers.attempt + 1)
            try:
                emits, context = await self._run_handler(record, headers, decoded)
                return self._results(emits, headers, context.spent_usd), "ok"
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the worker is stopping
                # Something inside the handler cancelled it: a handler failure, not a stop.
                reason = "the handler's own await was cancelled (not by the worker)"
                return [self.dead_letter(record, headers, "cancelled", reason, headers.attempt, span)], "dlq"
            # A handler may raise anything; the decision reads the error's retryable flag.
            except Exception as exc:  # noqa: BLE001
                decision = decide(
                    self._extra_retry if record.topic in self._stage.also_consumes else self._stage.retry,
                    exc,
                    attempt_in_round=attempt_in_round,
                    round=headers.round,
                    remaining_s=headers.remaining_s(),
                )
                span.add_event(
                    "podium.attempt.failed",
                    {
                        "error.type": error_type(exc),
                        "podium.attempt": headers.attempt,
                        "podium.decision": type(decision).__name__,
                        "exception.message": str(exc)[:500],
                    },
                )
                if isinstance(decision, RetryNow):
                    self._retries.add(1, {"podium.stage": self._stage.name, "podium.retry": "now"})
                    await self._sleep(decision.delay_s, record)
                    continue
                if isinstance(decision, RetryLater):
                    self._retries.add(1, {"podium.stage": self._stage.name, "podium.retry": "topic"})
                    later = headers.evolve(
                        round=decision.next_round,
                        not_before_ms=now_ms() + int(decision.delay_s * 1000),
                    )
                    return [Output(self.retry_topic, record.key, value, later.to_kafka())], "retry"
                assert isinstance(decision, DeadLetter)
                span.set_status(Status(StatusCode.ERROR, decision.reason[:200]))
                span.set_attribute("error.type", decision.error_type)
                return [
                    self.dead_letter(
                        record, headers, decision.error_type, decision.reason, headers.attempt, span
                    )
                ], "dlq"

    def _deletion(self, record: ConsumerRecord[bytes, bytes]) -> _Deletion:
        """A tombstone's key for ``on_tombstone``; without one, a tombstone is undecodable."""
        if self._stage.on_tombstone is None:
            raise CodecError("the record has no value (tombstone)")
        if record.key is None:
            raise CodecError("a tombstone with no key deletes nothing")
        try:
            return _Deletion(record.key.decode())
        except UnicodeDecodeError:
            raise CodecError("the tombstone's key is not UTF-8") from None

    async def _run_handler(
        self,
        record: ConsumerRecord[bytes, bytes],
        headers: RequestHeaders,
        decoded: dict[str, Any] | _Deletion,
    ) -> tuple[list[Emit], StageContext]:
        timeout = self._stage.handler_timeout_s
        remaining = headers.remaining_s()
        if remaining is not None and not self._stage.answers_expired:
            if remaining <= 0:
                raise DeadlineExceeded(f"latency budget spent {-remaining:.3f}s ago")
            timeout = min(timeout, remaining)
        context = StageContext(
            self._stage.name,
            record.topic,
            record.partition,
            record.offset,
            headers,
            headers.attempt,
            timestamp_ms=record.timestamp,
        )
        watch = self._deadlines.watch(timeout)
        try:
            if isinstance(decoded, _Deletion):
                assert self._stage.on_tombstone is not None  # checked by _deletion
                result = await self._stage.on_tombstone(decoded.key, context)
            else:
                result = await self._stage.handler(decoded, context)
        except asyncio.CancelledError:
            if not watch.expired():
                raise
            raise _timed_out(timeout, remaining) from None
        except TimeoutError:  # the handler's own, as under asyncio.timeout: a handler timeout
            raise _timed_out(timeout, remaining) from None
        finally:
            self._deadlines.release(watch)
        emits = [result] if isinstance(result, Emit) else list(result)
        if not emits:
            raise RoutingError("the handler produced nothing; every record must go somewhere")
        for emit in emits:
            if emit.topic not in self._out_schemas:
                raise RoutingError(
                    f"stage {self._stage.name} may produce to {sorted(self._out_schemas)}, not {emit.topic}"
                )
        return emits, context

    def _results(self, emits: list[Emit], headers: RequestHeaders, spent_usd: float) -> list[Output]:
        traceparent, tracestate = current_trace_headers()
        next_headers = headers.for_next_hop(self._stage.name, traceparent, tracestate, spent_usd).to_kafka()
        request_key = (headers.request_id or "").encode()
        outputs = [
            Output(
                e.topic,
                request_key if e.key is None else e.key.encode(),
                self._codec.encode(self._out_schemas[e.topic], e.value),
                next_headers,
            )
            for e in emits
        ]
        # Checked before anything is sent, so that a refused output cannot leave its siblings
        # delivered and the input dead-lettered as well.
        header_bytes = sum(len(k) + len(v) for k, v in next_headers)  # the same on every output
        for out in outputs:
            size = len(out.value or b"") + len(out.key or b"") + header_bytes
            if size > self._out_limits[out.topic] - _RECORD_OVERHEAD:
                raise PayloadTooLarge(
                    f"output to {out.topic} is {size} bytes; the topic accepts {self._out_limits[out.topic]}"
                )
        return outputs

    def dead_letter(
        self,
        record: ConsumerRecord[bytes, bytes],
        headers: RequestHeaders,
        kind: str,
        reason: str,
        attempts: int,
        span: trace.Span,
    ) -> Output:
        """The dead letter of ``record``: its original key, bytes and headers, and why."""
        span.set_attribute("error.type", kind)
        self._dead_letters.add(1, {"podium.stage": self._stage.name, "error.type": kind})
        letter = letter_for(
            record,
            stage=self._stage.name,
            error_type=kind,
            reason=reason,
            attempts=attempts,
            request_id=headers.request_id,
            trace_id=span.get_span_context().trace_id.to_bytes(16, "big").hex(),
        )
        traceparent, tracestate = current_trace_headers()
        out_headers = headers.evolve(
            traceparent=traceparent, tracestate=tracestate, not_before_ms=None
        ).to_kafka()
        return Output(self.dlq_topic, record.key, self._codec.encode(DEAD_LETTER_SCHEMA, letter), out_headers)


def _timed_out(timeout: float, remaining: float | None) -> HandlerTimeout | DeadlineExceeded:
    if remaining is not None and timeout >= remaining:
        return DeadlineExceeded(f"latency budget ran out during the handler ({timeout:.3f}s)")
    return HandlerTimeout(f"handler ran past {timeout:.3f}s")
