"""The HTTP transport under the model providers' httpx clients, and what its failures mean.

The providers speak httpx's API; underneath, by default, an aiohttp connector does the I/O
(``httpx-aiohttp``'s ``AiohttpTransport``). httpcore's pool spent most of a worker's CPU with
hundreds of calls in flight: at 500 in flight and 1 s of latency, 12.6 ms of client CPU per call
and 71 calls/s, against 0.67 ms and 400 calls/s over aiohttp (issue 15; bench/gateway_overhead.py
measures both beside the gateway). One connector serves all of a provider's calls: it keeps its
idle connections per host in a queue, so unlike httpcore's pool (which the providers split into
16 small ones) it does not slow down as it grows, and several did not measure faster.

How httpx's settings reach aiohttp (``AiohttpTransport.handle_async_request``): the connect
timeout becomes aiohttp's ``sock_connect``, the read timeout ``sock_read`` (the wait for the
answer's head and every gap between its chunks), the pool timeout ``connect`` (the wait for a
free connection plus connecting); the write timeout has no aiohttp counterpart and nothing
bounds a call as a whole, which is why the providers also bound a whole answer, and a stream's
head, with the caller's timeout themselves (:func:`call_timeout` keeps the wait for a
connection inside that bound). ``max_connections``
bounds the connector (the connections open at once, to every host) and ``keepalive_expiry``
how long an idle one is kept.

httpx-aiohttp maps every aiohttp ``ClientConnectionError`` to ``httpx.ConnectTimeout``: a
refused connection and a pool wait, which never sent the request, but also a server that
dropped or reset the connection after reading it. :func:`never_sent` therefore decides from
aiohttp's own error, which the mapped one carries as its ``__cause__``; an aiohttp error it does
not map (a malformed answer: ``ClientResponseError``) reaches the providers as it is, and they
translate it the same way.
"""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from streams.errors import ConfigError

__all__ = [
    "CONNECTIONS",
    "KEEPALIVE_S",
    "TRANSPORT_ERRORS",
    "call_timeout",
    "default_transport",
    "never_sent",
    "timed_out",
]

# Connections one provider keeps open at once (a call waits for a free one beyond that, within
# its timeout): above the in-flight limits podium's workers use (500 for the gateway bench).
CONNECTIONS = 1024
# An idle connection is closed after this long: below the 5 s most servers keep one open
# (uvicorn's default), so a call rarely picks a connection the server is closing.
KEEPALIVE_S = 4.0

# What a failed call can raise below the provider: httpx's own errors (from any transport),
# aiohttp's errors httpx-aiohttp leaves unmapped, and the bound the provider itself sets.
TRANSPORT_ERRORS = (httpx.TransportError, aiohttp.ClientError, TimeoutError)


def default_transport(base_url: str, connections: int = CONNECTIONS) -> httpx.AsyncBaseTransport:
    """One aiohttp connector for a provider: ``connections`` at most, the certificates httpx
    would check (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` honoured), and the proxy the environment
    names for ``base_url`` (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``), read
    once here: aiohttp's own ``trust_env`` would look it up in a thread on every call."""
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=KEEPALIVE_S
    )
    return AiohttpTransport(limits=limits, proxy=_environment_proxy(base_url))


def call_timeout(timeout_s: float) -> httpx.Timeout:
    """httpx's timeouts for a call the provider bounds by ``timeout_s`` as a whole: each phase
    within it, and the wait for a connection ending a little before it, so a call that got none
    fails as never sent rather than as timed out (which may have billed). aiohttp rounds a
    deadline more than 5 s away up to a whole second: beyond that the wait ends 1 s early."""
    pool = timeout_s * 0.9 if timeout_s * 0.9 <= 5 else timeout_s - 1.0
    return httpx.Timeout(timeout_s, pool=pool)


def _environment_proxy(base_url: str) -> httpx.Proxy | None:
    """The proxy httpx's own transport would take from the environment for ``base_url``."""
    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(parts.scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    if urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(
            f"the proxy {url!r} from the environment is not http:// or https://: the model "
            f"providers' transport (aiohttp) reaches {base_url} through those only"
        )
    return httpx.Proxy(url)


def never_sent(exc: BaseException) -> bool:
    """Whether a failed call certainly never left this process: no connection was made (refused,
    no route, a DNS or TLS failure, or no free connection within the timeout). A connection
    dropped, reset or timed out once it carried the request may have run the model."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if isinstance(cause, aiohttp.ClientError):
        return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def timed_out(exc: BaseException) -> bool:
    """Whether a failed call ran out of its time (rather than losing its connection)."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if isinstance(cause, aiohttp.ClientError):
        return isinstance(cause, aiohttp.ServerTimeoutError)
    return isinstance(exc, httpx.TimeoutException | TimeoutError)
