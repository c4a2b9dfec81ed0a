"""Token streaming over Kafka: a gateway stream as ordered ``podium.StreamChunk`` records.

Each request's chunks go to ``<topic>.stream`` keyed by request id (one partition, in order):
TEXT pieces, a RESET when a stream broke and an alternate starts over, and one FINAL with the
model, usage and cost. :func:`rebuild` turns the chunks back into the exact final text.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from agents.gateway.gateway import GatewayResult, Reset, StreamEvent

__all__ = ["STREAM_SUFFIX", "chunk_records", "coalesce", "rebuild"]

STREAM_SUFFIX = ".stream"

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def chunk_records(
    request_id: str, events: AsyncIterator[StreamEvent], send: Send, first_seq: int = 0
) -> GatewayResult:
    """Send one record per event, in order; returns the gateway's result. A re-run of the same
    request starts at a higher ``first_seq`` (and with a RESET), so ordering by seq still works."""
    seq = first_seq
    async for event in events:
        if isinstance(event, GatewayResult):
            usage = event.completion.usage
            await send(
                {
                    "request_id": request_id,
                    "seq": seq,
                    "kind": "FINAL",
                    "text": "",
                    "model": event.completion.model,
                    "finish_reason": event.completion.finish_reason,
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "usage_estimated": usage.estimated,
                    "cost_usd": event.cost_usd,
                }
            )
            return event
        if isinstance(event, Reset):
            await send({"request_id": request_id, "seq": seq, "kind": "RESET", "text": event.reason[:500]})
        else:
            await send({"request_id": request_id, "seq": seq, "kind": "TEXT", "text": event})
        seq += 1
    raise RuntimeError("the gateway stream ended without a result")


async def coalesce(
    events: AsyncIterator[StreamEvent],
    max_wait_s: float = 0.05,
    max_chars: int = 512,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[StreamEvent]:
    """Merge text deltas that arrive close together into one: a token per Kafka record would
    cost a record per word. A merged delta goes out when it is ``max_wait_s`` old at the next
    event, reaches ``max_chars``, or a reset or the result follows; nothing is reordered."""
    buffered: list[str] = []
    since = 0.0
    async for event in events:
        if isinstance(event, str):
            if not buffered:
                since = clock()
            buffered.append(event)
            if clock() - since < max_wait_s and sum(map(len, buffered)) < max_chars:
                continue
            yield "".join(buffered)
            buffered = []
            continue
        if buffered:
            yield "".join(buffered)
            buffered = []
        yield event
    if buffered:
        yield "".join(buffered)


def rebuild(chunks: Iterable[dict[str, Any]]) -> tuple[str, bool]:
    """(final text, complete?) from a request's chunks in any order."""
    text: list[str] = []
    complete = False
    for chunk in sorted(chunks, key=lambda c: c["seq"]):
        if chunk["kind"] == "RESET":
            text.clear()
        elif chunk["kind"] == "TEXT":
            text.append(chunk["text"])
        else:
            complete = True
    return "".join(text), complete
