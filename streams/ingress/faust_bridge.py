"""faust-streaming apps on podium topics: podium's Avro values and request headers.

A faust app reads a podium topic and writes into a podium pipeline with two pieces:

``AvroCodec``
    A faust codec for one record type: it decodes podium's Avro values (single-object encoding
    or Confluent framing, whichever :class:`streams.contracts.Codec` the project uses) into dicts,
    and encodes dicts back. Pass it as a topic's ``value_serializer``.
``next_hop_headers``
    The headers of what the faust agent sends on: the incoming request id, deadline and cost,
    the trace continued (the current span if one runs in the incoming trace, else the incoming
    ``traceparent`` unchanged), the faust stage appended to ``podium-path``, unknown headers
    passed through. ``request_headers`` reads the incoming ones (``remaining_s()`` and so on).

::

    app = faust.App("enrich", broker="kafka://127.0.0.1:9092", web_enabled=False)
    notes = app.topic("notes.in", value_serializer=AvroCodec(codec, "podium.demo.Note"))
    out = app.topic("notes.out", value_serializer=AvroCodec(codec, "podium.demo.Note"))

    @app.agent(notes)
    async def enrich(stream):
        async for event in stream.events():
            note = {**event.value, "text": event.value["text"].upper()}
            await out.send(key=event.key, value=note, headers=next_hop_headers(event.headers, stage="enrich"))

faust, not podium, owns that agent's consumer loop: a value that does not decode raises faust's
``ValueDecodeError`` in the agent, and an agent that raises has its event acknowledged and
skipped (faust-streaming #315). Neither reaches a podium dead-letter topic, so keep work that
needs retries and dead letters in podium stages (README: "Why the stage runtime owns its
consumer loop instead of faust's agents").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from faust.serializers.codecs import Codec as FaustCodec
from opentelemetry import trace

from streams.contracts.codec import Codec
from streams.contracts.headers import (
    KafkaHeaders,
    RequestHeaders,
    is_stage_name,
    parse_headers,
    request_id_from_key,
)
from streams.errors import ConfigError
from streams.telemetry.otel import current_trace_headers

__all__ = ["AvroCodec", "FaustHeaders", "next_hop_headers", "request_headers"]

# What faust hands an agent as ``event.headers`` (a dict) or takes in ``send(headers=...)``.
FaustHeaders = Mapping[str, bytes] | Iterable[tuple[str, bytes]]


class AvroCodec(FaustCodec):
    """``value_serializer=AvroCodec(codec, "podium.demo.Note")``: podium Avro <-> dict.

    Errors are podium's :class:`~streams.errors.CodecError`; faust wraps them in its
    ``ValueDecodeError``/``ValueEncodeError``.
    """

    def __init__(self, codec: Codec, schema_name: str, children: Any = None) -> None:
        # faust keeps the keyword arguments to clone a codec (``codec | other``).
        super().__init__(children=children, codec=codec, schema_name=schema_name)
        self._codec = codec
        self._schema_name = schema_name

    def _loads(self, s: bytes) -> dict[str, Any]:
        return self._codec.decode(self._schema_name, s)

    def _dumps(self, s: Any) -> bytes:
        return self._codec.encode(self._schema_name, s)

    def __repr__(self) -> str:
        return f"AvroCodec({self._schema_name!r})"


def _pairs(headers: FaustHeaders | None) -> list[tuple[str, bytes]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def request_headers(incoming: FaustHeaders | None, key: bytes | None = None) -> RequestHeaders:
    """The podium headers of an incoming faust event (``event.headers``, ``event.key``).

    Like a podium stage, a record without a request id takes its key (keys are request ids by
    convention), or a fresh id when the key is not one.
    """
    headers = parse_headers(_pairs(incoming))
    if headers.request_id is None:
        headers = replace(headers, request_id=request_id_from_key(key))
    return headers


def next_hop_headers(
    incoming: FaustHeaders | None, *, stage: str, key: bytes | None = None, spent_usd: float = 0.0
) -> KafkaHeaders:
    """Headers for what a faust agent sends on from an incoming event, as a podium stage would.

    The trace continues: when a span of the incoming trace is current (faust's OpenTelemetry
    sensor, or a span the agent opened), the outgoing ``traceparent`` names it; otherwise the
    incoming one is kept. Request id, deadline and cost so far travel unchanged (plus
    ``spent_usd``), attempt counters start again, ``stage`` joins ``podium-path``.
    """
    if not is_stage_name(stage):
        raise ConfigError(f"faust stage name {stage!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    headers = request_headers(incoming, key)
    traceparent, tracestate = headers.traceparent, headers.tracestate
    current = trace.get_current_span().get_span_context()
    if current.is_valid and (headers.trace_id is None or f"{current.trace_id:032x}" == headers.trace_id):
        traceparent, tracestate = current_trace_headers()
    return headers.for_next_hop(stage, traceparent, tracestate, spent_usd).to_kafka()
