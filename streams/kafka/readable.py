"""A record as a person (or ``jq``) reads it: coordinates, key, headers and the decoded value."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Protocol

from streams.contracts.catalog import Catalog
from streams.contracts.codec import Codec
from streams.contracts.headers import parse_headers
from streams.errors import PodiumError

__all__ = ["describe"]


def _text_or_b64(value: bytes | None) -> str | dict[str, str] | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def _plain(value: Any) -> Any:
    """Avro bytes fields (a dead letter's original value) become text or base64 for JSON."""
    if isinstance(value, bytes):
        return _text_or_b64(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class KafkaRecord(Protocol):
    """What aiokafka's ConsumerRecord and a follower's Arrival both have."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def describe(record: KafkaRecord, catalog: Catalog, codec: Codec) -> dict[str, Any]:
    headers = parse_headers(record.headers)
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp,
        "key": _text_or_b64(record.key),
        "request_id": headers.request_id,
        "trace_id": headers.trace_id,
        "attempt": headers.attempt,
        "deadline_ms": headers.deadline_ms,
        "path": list(headers.path),
        "headers": {k: _text_or_b64(v) for k, v in (record.headers or ())},
    }
    try:
        schema = catalog.get(record.topic).value_schema
        out["value"] = _plain(codec.decode(schema, record.value or b""))
    except PodiumError as exc:
        out["value"] = None
        out["value_error"] = str(exc)
        out["value_raw"] = _text_or_b64(record.value)
    return out
