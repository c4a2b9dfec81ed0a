"""OpenTelemetry for stages: one tracer and meter provider per process, chosen by settings.

Trace context travels in Kafka headers (W3C ``traceparent``/``tracestate``). The SDK tracer
provider is always installed, even with no exporter, so every request gets a real trace id
that the next hop continues. With no exporter, spans are not recorded (sampler ALWAYS_OFF):
the trace context still propagates, at a fraction of the per-record cost.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from streams.contracts.codec import Codec
from streams.contracts.headers import RequestHeaders
from streams.errors import ConfigError
from streams.kafka.connection import Cluster

__all__ = [
    "Telemetry",
    "current_trace_headers",
    "extract_context",
    "new_span_id",
    "process_span",
    "records_spans",
    "span_with_id",
    "trace_headers",
    "unrecorded_child",
    "unrecorded_child_of",
]

_PROPAGATOR = TraceContextTextMapPropagator()
_RANDOM_IDS = RandomIdGenerator()
_NOT_SAMPLED = trace.TraceFlags(trace.TraceFlags.DEFAULT)
_NO_STATE = trace.TraceState()
_EMPTY = otel_context.Context()


class _OneChosenId(IdGenerator):
    def __init__(self, span_id: int) -> None:
        self._span_id = span_id

    def generate_span_id(self) -> int:
        return self._span_id

    def generate_trace_id(self) -> int:
        return _RANDOM_IDS.generate_trace_id()


def new_span_id() -> int:
    """An id for a span that will be recorded later (:func:`span_with_id`)."""
    return _RANDOM_IDS.generate_span_id()


@contextmanager
def span_with_id(
    tracer: trace.Tracer,
    name: str,
    span_id: int,
    *,
    parent: otel_context.Context,
    start_time_ns: int,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """A span whose id was chosen (and handed to its children as their parent) before it could
    be recorded: a request that lives across many records and workers, such as an agent's loop,
    is one span that starts with its first record and is written when its last one is done."""
    # The SDK's tracer draws the id from its generator inside start_span, which does not await:
    # lending it one that answers the chosen id for that call affects no other span.
    generator = getattr(tracer, "id_generator", None)
    if generator is not None:
        tracer.id_generator = _OneChosenId(span_id)  # type: ignore[attr-defined]
    try:
        span = tracer.start_span(name, context=parent, start_time=start_time_ns, attributes=attributes)
    finally:
        if generator is not None:
            tracer.id_generator = generator  # type: ignore[attr-defined]
    with trace.use_span(span, end_on_exit=True):
        yield span


def extract_context(traceparent: str | None, tracestate: str | None) -> otel_context.Context:
    carrier = {}
    if traceparent:
        carrier["traceparent"] = traceparent
        if tracestate:
            carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier)


def process_span(
    tracer: trace.Tracer,
    records: bool,
    record: ConsumerRecord[bytes, bytes],
    headers: RequestHeaders,
    *,
    group: str,
    stage: str,
) -> tuple[trace.Span, otel_context.Context]:
    """A stage's ``process <topic>`` span continuing the producer's trace, and its context.

    With nothing to record it (``records`` False: no exporter) the span is not built: the record
    carries the producer's trace on with a span id of its own, as the SDK would, for a fraction
    of the cost."""
    if not records:
        return unrecorded_child_of(headers.traceparent, headers.tracestate)
    parent = extract_context(headers.traceparent, headers.tracestate)
    span = tracer.start_span(f"process {record.topic}", context=parent, kind=trace.SpanKind.CONSUMER)
    if span.is_recording():
        span.set_attributes(
            {
                "messaging.system": "kafka",
                "messaging.operation.name": "process",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": group,
                "messaging.kafka.message.key": (record.key or b"").decode("utf-8", "replace")[:128],
                "podium.stage": stage,
                "podium.request_id": headers.request_id or "",
            }
        )
    return span, trace.set_span_in_context(span, parent)


def records_spans(provider: trace.TracerProvider) -> bool:
    """Whether any span of ``provider`` can be recorded: not with ``Telemetry.configure("none")``
    (sampler ALWAYS_OFF), the default of every worker without an exporter."""
    return getattr(provider, "sampler", None) is not ALWAYS_OFF


def unrecorded_child_of(
    traceparent: str | None, tracestate: str | None
) -> tuple[trace.Span, otel_context.Context]:
    """``unrecorded_child(extract_context(traceparent, tracestate))`` for a traceparent that
    :func:`~streams.contracts.headers.parse_headers` already checked, without the propagator's
    second parse (5 us a record)."""
    if traceparent is None or traceparent.startswith("ff"):  # W3C: version ff is invalid
        return unrecorded_child(_EMPTY)
    state = TraceState.from_header([tracestate]) if tracestate else _NO_STATE
    span = trace.NonRecordingSpan(
        trace.SpanContext(
            int(traceparent[3:35], 16), _RANDOM_IDS.generate_span_id(), False, _NOT_SAMPLED, state
        )
    )
    return span, trace.set_span_in_context(span, _EMPTY)


def unrecorded_child(parent: otel_context.Context) -> tuple[trace.Span, otel_context.Context]:
    """What the SDK's tracer makes of a span its sampler drops, without the tracer: a span that
    records nothing, with a new span id in the parent's trace (a new trace without one), and the
    context that carries it. A record costs a few ids instead of a span's construction."""
    parent_context = trace.get_current_span(parent).get_span_context()
    if parent_context.is_valid:
        trace_id, state = parent_context.trace_id, parent_context.trace_state
    else:
        trace_id, state = _RANDOM_IDS.generate_trace_id(), _NO_STATE
    # Not sampled, as the SDK marks a span its sampler dropped.
    span = trace.NonRecordingSpan(
        trace.SpanContext(trace_id, _RANDOM_IDS.generate_span_id(), False, _NOT_SAMPLED, state)
    )
    return span, trace.set_span_in_context(span, parent)


def current_trace_headers() -> tuple[str | None, str | None]:
    """What the W3C propagator's ``inject`` writes for the current span, formatted here: every
    output of every stage takes this, and the propagator's carrier and setter cost twice as much."""
    return trace_headers(trace.get_current_span())


def trace_headers(span: trace.Span) -> tuple[str | None, str | None]:
    """``traceparent`` and ``tracestate`` naming ``span`` as the parent of what comes next."""
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return None, None
    traceparent = (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"
    )
    return traceparent, span_context.trace_state.to_header() if span_context.trace_state else None


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    metrics_server: Any = None  # the Prometheus HTTP server, when one was started

    @classmethod
    def configure(
        cls,
        exporter: str,
        service_name: str = "podium",
        *,
        cluster: Cluster | None = None,
        codec: Codec | None = None,
        prometheus_port: int | None = None,
        otlp_metrics: bool = True,
    ) -> Telemetry:
        """``exporter``: none | console | otlp | kafka (spans to podium.telemetry).

        ``prometheus_port`` serves ``/metrics`` on that port (a free one if it is taken);
        ``otlp_metrics`` False exports spans only over OTLP.
        """
        resource = Resource.create({"service.name": service_name})
        sampler = ALWAYS_OFF if exporter == "none" else ParentBased(ALWAYS_ON)
        tracer_provider = TracerProvider(resource=resource, sampler=sampler)
        readers: list[MetricReader] = []
        span_exporter: SpanExporter | None = None
        if exporter == "console":
            span_exporter = ConsoleSpanExporter()
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), 10_000))
        elif exporter == "otlp":
            # Imported here: only processes that export OTLP pay for the protobuf stack.
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            span_exporter = OTLPSpanExporter()
            if otlp_metrics:
                readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(), 10_000))
        elif exporter == "kafka":
            from streams.telemetry.spanlog import KafkaSpanExporter

            if cluster is None or codec is None:
                raise ConfigError("the kafka span exporter needs a cluster address and a codec")
            span_exporter = KafkaSpanExporter(cluster, codec)
        elif exporter != "none":
            raise ConfigError(f"PODIUM_OTEL_EXPORTER={exporter}: use none, console, otlp or kafka")
        if span_exporter is not None:
            tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter, schedule_delay_millis=500))
        server = None
        if prometheus_port is not None:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import start_http_server

            readers.append(PrometheusMetricReader())
            try:
                server, _ = start_http_server(prometheus_port, addr="127.0.0.1")
            except OSError:
                server, _ = start_http_server(0, addr="127.0.0.1")
        return cls(tracer_provider, MeterProvider(resource=resource, metric_readers=readers), server)

    @property
    def metrics_port(self) -> int | None:
        return int(self.metrics_server.server_port) if self.metrics_server is not None else None

    def tracer(self, name: str) -> trace.Tracer:
        return self.tracer_provider.get_tracer(name)

    def meter(self, name: str) -> metrics.Meter:
        return self.meter_provider.get_meter(name)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
