"""OpenTelemetry for every worker: tracer and meter providers chosen by settings, the trace context
carried in headers, and the embedded exporter that writes spans to ``podium.telemetry``."""

from streams.telemetry.otel import (
    Telemetry,
    current_trace_headers,
    extract_context,
    new_span_id,
    span_with_id,
)
from streams.telemetry.spanlog import TELEMETRY_TOPIC

__all__ = [
    "TELEMETRY_TOPIC",
    "Telemetry",
    "current_trace_headers",
    "extract_context",
    "new_span_id",
    "span_with_id",
]
