"""The faults the provider simulator injects (a stand-in, not a model): which there are, the
early answers they give (429s, 500s, 529s, hangs, resets) in either protocol's error shape, and
the streamed body that can break off mid-way the way a provider's load balancer drops it.

A drop ends the response without its final message: uvicorn closes the connection and logs one
generic line, which :data:`QUIET_DROPS` removes for injected faults only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Send

__all__ = [
    "BREAKS",
    "DROPS",
    "FAULTS",
    "FORCED_ONLY",
    "INJECTED",
    "QUIET_DROPS",
    "Drop",
    "DroppableStream",
    "error_response",
    "fault_response",
]

FAULTS = (
    "rate_limit",
    "quota",
    "server_error",
    "overloaded",
    "timeout",
    "reset",
    "cut_stream",
    "error_event",
)
# Forced per request only (header or queue), never drawn: one more kind among the drawn ones
# would change what every seeded run picks (rng.choice over more kinds).
FORCED_ONLY = ("bad_output",)
DROPS = frozenset({"reset", "cut_stream"})  # faults that end in a dropped connection
BREAKS = frozenset({"cut_stream", "error_event"})  # faults that strike mid-stream

# The fault injected into the request being served. uvicorn runs each request in its own task
# and logs from that task, so _QuietDrops sees the value the endpoint set.
INJECTED: ContextVar[str | None] = ContextVar("podium_sim_injected", default=None)


class Drop(Exception):
    """Raised by a body iterator where the simulator drops the connection."""


class DroppableStream(StreamingResponse):
    """A streamed body that can end in a dropped connection instead of its final message.

    On ``Drop`` the response stops unfinished; uvicorn then closes the connection, so the client
    sees the body break off (a transport error), and logs one generic error line that _QuietDrops
    removes for injected faults.
    """

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                body = chunk if isinstance(chunk, bytes | memoryview) else chunk.encode(self.charset)
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except Drop:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _QuietDrops(logging.Filter):
    """Drops uvicorn's "returned without completing response" line for an injected drop only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            INJECTED.get() in DROPS
            and record.getMessage().startswith("ASGI callable returned without completing response")
        )


QUIET_DROPS = _QuietDrops()


def error_response(
    flavour: str, status: int, kind: str, message: str, code: str | None = None, **headers: str
) -> Response:
    if flavour == "anthropic":
        body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


async def fault_response(
    fault: str | None, flavour: str, retry_after_s: float, timeout_s: float
) -> Response | None:
    """The early answer a fault gives (an error, a hang, a reset); None: the call is answered."""
    wait = str(retry_after_s)
    if fault == "rate_limit":
        kind = "rate_limit_error" if flavour == "anthropic" else "requests"
        return error_response(
            flavour, 429, kind, "simulated rate limit", "rate_limit_exceeded", **{"retry-after": wait}
        )
    if fault == "quota":
        kind = "billing_error" if flavour == "anthropic" else "insufficient_quota"
        return error_response(
            flavour, 429, kind, "You exceeded your current quota (simulated)", "insufficient_quota"
        )
    if fault == "server_error":
        return error_response(flavour, 500, "api_error", "simulated server error", "server_error")
    if fault == "overloaded":
        return error_response(flavour, 529, "overloaded_error", "Overloaded (simulated)", "overloaded")
    if fault == "bad_request":
        return error_response(
            flavour, 400, "invalid_request_error", "simulated invalid request", "invalid_value"
        )
    if fault == "timeout":
        await asyncio.sleep(timeout_s)
        return error_response(flavour, 504, "timeout", "simulated timeout", "timeout")
    if fault == "reset":

        async def broken() -> AsyncIterator[bytes]:
            yield b'{"partial": '
            raise Drop

        return DroppableStream(broken(), media_type="application/json")
    return None
