"""The one builder of a ``podium.DeadLetter``: a consumed record (or a feed entry that never
reached a topic) with its original key, bytes and headers, where it came from, and why."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord

from streams.contracts.headers import now_ms

__all__ = ["dead_letter", "letter_for"]


def dead_letter(
    *,
    stage: str,
    error_type: str,
    reason: str,
    origin: tuple[str, int, int, int],
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] = (),
    attempts: int,
    request_id: str | None,
    trace_id: str | None,
) -> dict[str, Any]:
    """A ``podium.DeadLetter``: the original key, bytes and headers as they came, where they
    came from (``origin``: topic, partition, offset, timestamp ms), and why."""
    topic, partition, offset, timestamp_ms = origin
    return {
        "stage": stage,
        "error_type": error_type,
        "error_message": reason[:4000],
        "original_topic": topic,
        "original_partition": partition,
        "original_offset": offset,
        "original_timestamp_ms": timestamp_ms,
        "original_key": key,
        "original_value": value,
        "original_headers": [{"key": k, "value": v} for k, v in headers],
        "attempts": attempts,
        "request_id": request_id,
        "trace_id": trace_id,
        "dead_lettered_at_ms": now_ms(),
    }


def letter_for(
    record: ConsumerRecord[bytes, bytes],
    *,
    stage: str,
    error_type: str,
    reason: str,
    attempts: int,
    request_id: str | None,
    trace_id: str | None,
) -> dict[str, Any]:
    """The dead letter of a consumed record."""
    return dead_letter(
        stage=stage,
        error_type=error_type,
        reason=reason,
        origin=(record.topic, record.partition, record.offset, record.timestamp),
        key=record.key,
        value=record.value,
        headers=record.headers or (),
        attempts=attempts,
        request_id=request_id,
        trace_id=trace_id,
    )
