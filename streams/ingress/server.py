"""What a client may send the HTTP gateway, and how slowly: the server ``podium serve`` runs.

A client that sends too much or too slowly gets a 4xx (or, having sent nothing, a closed
connection), and the server goes on serving everyone else:

1. Headers: at most ``max_header_bytes`` in all. h11 (``h11_max_incomplete_event_size``) stops
   a head that grows past it while incomplete (uvicorn's 400, connection closed), but a head
   that arrives in one read (up to 256 KiB) is parsed whole without that check: such a request
   is answered 431 before the application sees it.
2. The request head (request line and headers) must be complete ``head_timeout_s`` after the
   connection opened, or after the previous response on a kept-alive connection: a client
   trickling its headers (slowloris) gets a 408 and the connection closed. uvicorn has no such
   deadline: its ``timeout_keep_alive`` runs only between requests and stops at the first byte of
   the next one, and a new connection has none at all.
3. The body must be complete ``body_timeout_s`` after the head: a trickled body gets a 408 too
   (a deadline for the whole body, not an idle timeout that each trickled byte would reset).
4. A kept-alive connection idle for ``keep_alive_s`` is closed (``timeout_keep_alive``).
   Stopping, the server waits at most ``shutdown_s`` for requests in flight
   (``timeout_graceful_shutdown``), then cancels them: Ctrl-C is not held by a client.
5. Body sizes are the routes' own (FastAPI's ``max_body_size``, set in :mod:`.http`): checked
   against Content-Length before a byte of the body is read, and counted as it arrives.

Not used: uvicorn's ``limit_concurrency`` answers 503 past its limit, and at this gateway 503
means that Kafka did not acknowledge, and nothing else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn

__all__ = ["ClientLimits", "server_config"]


@dataclass(frozen=True)
class ClientLimits:
    max_header_bytes: int = 32 * 1024  # nginx's default (4 x 8k buffers): room for a bearer token
    head_timeout_s: float = 10.0
    body_timeout_s: float = 60.0  # the largest body (3 x 8 MiB) at about 3 Mbit/s
    keep_alive_s: int = 5  # uvicorn's default
    shutdown_s: int = 35  # the longest wait a request asks for (wait_s, at most 30 s), and some

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "head_timeout_s", "body_timeout_s", "keep_alive_s", "shutdown_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def server_config(app: Any, *, host: str, port: int, limits: ClientLimits = ClientLimits()) -> uvicorn.Config:
    """The uvicorn configuration of the gateway: h11 with the head and body deadlines above."""
    import uvicorn  # here, not at import: the CLI imports this module for its defaults

    return uvicorn.Config(
        _HeaderLimit(app, limits.max_header_bytes),
        host=host,
        port=port,
        log_level="warning",
        http=_deadline_protocol(limits.head_timeout_s, limits.body_timeout_s),
        h11_max_incomplete_event_size=limits.max_header_bytes,
        timeout_keep_alive=limits.keep_alive_s,
        timeout_graceful_shutdown=limits.shutdown_s,
    )


class _HeaderLimit:
    """ASGI: a request whose headers exceed the limit is answered 431, the application not called."""

    def __init__(self, app: Any, max_header_bytes: int) -> None:
        self._app = app
        self._max = max_header_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])  # ": ", CRLF
            if size > self._max:
                text = f"the headers are {size:,} bytes; at most {self._max:,}".encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 431,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(text)).encode()),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": text})
                return
        await self._app(scope, receive, send)


def _timeout_response(what: str) -> bytes:
    text = f"the request {what} took too long to arrive: send it whole, at once".encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\ncontent-length: " + str(len(text)).encode() + b"\r\n\r\n" + text
    )


def _deadline_protocol(head_timeout_s: float, body_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline for each request's head and for its body (uvicorn
    makes one per connection from the class it is given: the class holds the limits)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    timeouts = {"head": head_timeout_s, "body": body_timeout_s}

    class DeadlineProtocol(H11Protocol):
        _waiting_for: str | None = None
        _timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._watch()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def handle_events(self) -> None:
            super().handle_events()  # also runs when a response completes and the next cycle starts
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._arm(None)
            super().connection_lost(exc)

        def _watch(self) -> None:
            """Which part of a request the connection waits for now: its head, its body, or
            neither (the application has it all, or the connection is done)."""
            state = self.conn.their_state
            self._arm("head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None)

        def _arm(self, what: str | None) -> None:
            if what == self._waiting_for:
                return  # the deadline runs from when this part began, not from the last byte
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._waiting_for = what
            if what is not None and not self.transport.is_closing():
                self._timer = self.loop.call_later(timeouts[what], self._too_slow, what)

        def _too_slow(self, what: str) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            cycle = self.cycle if what == "body" else None
            started = bool(self.conn.trailing_data[0]) if what == "head" else True
            if cycle is not None and not cycle.response_complete:
                # The application waits for the rest of the body: it now reads a disconnect,
                # and what it sends is dropped (uvicorn's own rule for a client gone).
                cycle.disconnected = True
                cycle.message_event.set()
            if started and (cycle is None or not cycle.response_started):
                self.transport.write(_timeout_response(what))
            # Nothing sent yet on this connection (a browser's spare one): closed without a word.
            self.transport.close()

    return DeadlineProtocol
