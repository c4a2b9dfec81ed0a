"""The embedded span exporter: finished spans as ``podium.Span`` Avro records on a Kafka topic.

No collector is needed: ``podium trace`` and ``podium report`` read the spans back from the
``podium.telemetry`` topic. OpenTelemetry calls exporters from its batch thread, so the exporter
runs its own aiokafka producer on a private event loop in a daemon thread. Records are keyed by
trace id, so one trace stays in one partition, in order.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from streams.contracts.codec import Codec
from streams.kafka.connection import Cluster

__all__ = ["TELEMETRY_TOPIC", "KafkaSpanExporter", "span_record"]

TELEMETRY_TOPIC = "podium.telemetry"


def _attrs(attributes: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (attributes or {}).items()}


def span_record(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    parent = span.parent
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": str(span.resource.attributes.get("service.name", "podium")),
        "start_ns": span.start_time or 0,
        "end_ns": span.end_time or span.start_time or 0,
        "status": span.status.status_code.name,
        "status_message": span.status.description,
        "attributes": _attrs(span.attributes),
        "events": [
            {"name": e.name, "time_ns": e.timestamp, "attributes": _attrs(e.attributes)} for e in span.events
        ],
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
    }


class KafkaSpanExporter(SpanExporter):
    def __init__(
        self, cluster: Cluster, codec: Codec, topic: str = TELEMETRY_TOPIC, timeout_s: float = 10.0
    ) -> None:
        self._codec = codec
        self._topic = topic
        self._timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="podium-span-exporter", daemon=True
        )
        self._thread.start()
        self._producer: AIOKafkaProducer | None = None

        async def start() -> None:
            # aiokafka binds a client to the loop it is created on: create it on ours.
            self._producer = cluster.producer(acks=1, linger_ms=50)
            await self._producer.start()

        self._started = self._call(start())

    def _call(self, coro: Any) -> bool:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            future.result(self._timeout_s)
        except (KafkaError, OSError, FutureTimeout):
            future.cancel()
            return False
        return True

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._started:
            return SpanExportResult.FAILURE
        records = [
            (r["trace_id"].encode(), self._codec.encode("podium.Span", r)) for r in map(span_record, spans)
        ]

        async def send() -> None:
            assert self._producer is not None
            futures = [await self._producer.send(self._topic, value, key=key) for key, value in records]
            await asyncio.gather(*futures)

        return SpanExportResult.SUCCESS if self._call(send()) else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        if self._producer is not None:
            self._call(self._producer.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._producer is not None and self._started and self._call(self._producer.flush())
