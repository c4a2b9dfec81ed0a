"""The providers over their default transport (httpx's API on an aiohttp connector): real calls
to the simulator, and servers that misbehave on purpose (hang, trickle, drop, refuse, garble)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport

from agents.gateway.errors import StreamBroken, Unreachable, may_have_billed
from agents.gateway.providers.http import AnthropicProvider, OpenAIProvider
from agents.gateway.providers.protocol import ChatRequest
from agents.gateway.providers.simulator import SimConfig, SimulatorServer, make_app
from agents.gateway.providers.transport import _environment_proxy, default_transport
from streams.errors import ConfigError

REQUEST = ChatRequest(
    model="sim-large", messages=[{"role": "user", "content": "How do I reset my password?"}]
)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with SimulatorServer(SimConfig(latency_ms=5, jitter_ms=1, timeout_s=3.0)) as url:
        yield url


@pytest.fixture(scope="module")
def slow_sim_url() -> Iterator[str]:
    """Streams 20 tokens a second: a stream is still running when a test leaves it."""
    with SimulatorServer(SimConfig(latency_ms=5, jitter_ms=0, tokens_per_s=20)) as url:
        yield url


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    await reader.readexactly(length)


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A TCP server on loopback whose every connection ``handler`` serves once it has read the
    request; its connections are closed, and handlers still running cancelled, at the end."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)  # type: ignore[arg-type]
        try:
            await _read_request(reader)
            await handler(reader, writer)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass  # the test is over, or the client left first
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then closed: a connection to it is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_the_default_transport_is_aiohttp_for_whole_answers_and_streams(sim_url: str) -> None:
    providers = [OpenAIProvider("o", sim_url + "/v1"), AnthropicProvider("a", sim_url)]
    try:
        for provider in providers:
            assert isinstance(provider._client._transport, AiohttpTransport)
            done = await provider.complete(REQUEST, timeout_s=5)
            pieces = [p async for p in provider.stream(REQUEST, timeout_s=5)]
            final = pieces[-1].final
            assert final is not None and final.text == done.text and done.text.startswith("[sim]")
            assert "".join(p.text for p in pieces[:-1]) == done.text and len(pieces) > 3
    finally:
        for provider in providers:
            await provider.aclose()


async def test_a_transport_the_caller_passes_is_used_instead(sim_url: str) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(
            200,
            json={
                "model": "m",
                "choices": [{"message": {"content": "mocked"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            },
        )

    mocked = OpenAIProvider("mock", "http://mock/v1", transport=httpx.MockTransport(answer))
    asgi = AnthropicProvider(
        "asgi", "http://sim", transport=httpx.ASGITransport(app=make_app(SimConfig(latency_ms=0)))
    )
    try:
        assert (await mocked.complete(REQUEST, timeout_s=5)).text == "mocked"
        assert seen == ["/v1/chat/completions"]
        done = await asgi.complete(REQUEST, timeout_s=5)
        pieces = [p async for p in asgi.stream(REQUEST, timeout_s=5)]
        assert pieces[-1].final is not None and pieces[-1].final.text == done.text
    finally:
        await mocked.aclose()
        await asgi.aclose()


async def test_a_refused_connection_is_unreachable_and_never_sent() -> None:
    provider = OpenAIProvider("down", f"http://127.0.0.1:{_free_port()}/v1")
    try:
        with pytest.raises(Unreachable) as caught:
            await provider.complete(REQUEST, timeout_s=2)
        assert not caught.value.sent and not may_have_billed(caught.value)
        assert "ClientConnectorError" in str(caught.value)
        with pytest.raises(StreamBroken) as broken:
            async for _ in provider.stream(REQUEST, timeout_s=2):
                pass
        assert not broken.value.sent and "stream not opened" in str(broken.value)
    finally:
        await provider.aclose()


async def test_a_call_that_hangs_times_out_and_may_have_billed() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    async with raw_server(hang) as url:
        provider = OpenAIProvider("hangs", url + "/v1")
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(Unreachable, match=r"no answer within 0\.30s") as caught:
                await provider.complete(REQUEST, timeout_s=0.3)
            assert asyncio.get_running_loop().time() - started < 1.5
            assert caught.value.sent and may_have_billed(caught.value)  # it was read: it may have run
            with pytest.raises(StreamBroken, match=r"stalled past 0\.30s"):
                async for _ in provider.stream(REQUEST, timeout_s=0.3):
                    pass
        finally:
            await provider.aclose()


async def test_an_answer_that_trickles_is_cut_at_the_callers_timeout() -> None:
    """Every gap is shorter than the timeout (so a read timeout alone would wait for ever):
    the call as a whole is still bounded by it."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n")
        for _ in range(1000):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with raw_server(trickle) as url:
        provider = OpenAIProvider("trickles", url + "/v1")
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(Unreachable, match=r"no answer within 0\.50s"):
                await provider.complete(REQUEST, timeout_s=0.5)
            assert asyncio.get_running_loop().time() - started < 1.5
        finally:
            await provider.aclose()


async def test_a_connection_dropped_after_the_request_may_have_billed() -> None:
    """aiohttp's ServerDisconnectedError reaches httpx as a ConnectTimeout (httpx-aiohttp's
    mapping): the provider reads the cause, so the call is not taken for one never sent."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return  # closes the connection without an answer

    async with raw_server(drop) as url:
        provider = OpenAIProvider("drops", url + "/v1")
        try:
            with pytest.raises(Unreachable) as caught:
                await provider.complete(REQUEST, timeout_s=2)
            assert caught.value.sent and may_have_billed(caught.value)
            assert "ServerDisconnectedError" in str(caught.value)
            with pytest.raises(StreamBroken) as broken:
                async for _ in provider.stream(REQUEST, timeout_s=2):
                    pass
            assert broken.value.sent and "stream cut: ServerDisconnectedError" in str(broken.value)
        finally:
            await provider.aclose()


async def test_a_garbled_answer_is_unreachable_not_an_aiohttp_error() -> None:
    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async with raw_server(garble) as url:
        provider = OpenAIProvider("garbles", url + "/v1")
        try:
            with pytest.raises(Unreachable) as caught:
                await provider.complete(REQUEST, timeout_s=2)
            assert caught.value.sent and "ClientResponseError" in str(caught.value)
        finally:
            await provider.aclose()


async def test_a_stream_dropped_midway_is_broken_and_bills_what_it_used(sim_url: str) -> None:
    provider = OpenAIProvider("sim", sim_url + "/v1")
    received: list[str] = []
    try:
        with pytest.raises(StreamBroken, match="stream cut") as caught:
            async for piece in provider.stream(REQUEST, timeout_s=5, headers={"x-sim-fault": "cut_stream"}):
                received.append(piece.text)
        assert received and caught.value.sent and may_have_billed(caught.value)
        assert caught.value.partial_usage is not None and caught.value.partial_usage.output_tokens >= 1
    finally:
        await provider.aclose()


@pytest.mark.parametrize("leave", ["close", "cancel"])
async def test_a_stream_left_midway_frees_its_connection(slow_sim_url: str, leave: str) -> None:
    """One connection in the pool: unless the stream left mid-way gives it back, the next call
    waits for it until its timeout and fails."""
    url = slow_sim_url + "/v1"
    provider = OpenAIProvider("sim", url, transport=default_transport(url, connections=1))
    try:
        first_piece = asyncio.Event()

        async def read() -> None:
            async for _ in provider.stream(REQUEST, timeout_s=10):
                first_piece.set()
                if leave == "close":
                    return

        reader = asyncio.create_task(read())
        await asyncio.wait_for(first_piece.wait(), 5)
        if leave == "cancel":
            reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        for _ in range(3):  # each call gets the one connection back
            done = await provider.complete(REQUEST, timeout_s=1)
            assert done.text.startswith("[sim]")
    finally:
        await provider.aclose()


async def test_one_connection_bounds_calls_at_once(slow_sim_url: str) -> None:
    """A second call waits for the only connection; one that cannot get it within its timeout
    was never sent."""
    url = slow_sim_url + "/v1"
    provider = OpenAIProvider("sim", url, transport=default_transport(url, connections=1))
    try:
        streaming = provider.stream(REQUEST, timeout_s=10)
        await anext(streaming)  # holds the connection, mid-stream
        with pytest.raises(Unreachable) as caught:
            await provider.complete(REQUEST, timeout_s=0.3)
        assert not caught.value.sent
        await streaming.aclose()
        assert (await provider.complete(REQUEST, timeout_s=2)).text.startswith("[sim]")
    finally:
        await provider.aclose()


def test_the_proxy_comes_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert _environment_proxy("https://api.openai.com/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    proxy = _environment_proxy("https://api.openai.com/v1")
    assert proxy is not None and str(proxy.url) == "http://proxy.internal:3128"
    assert _environment_proxy("http://127.0.0.1:8900/v1") is None  # NO_PROXY, and no HTTP_PROXY
    monkeypatch.setenv("HTTPS_PROXY", "socks5://proxy.internal:1080")
    with pytest.raises(ConfigError, match=r"socks5://proxy\.internal:1080"):
        _environment_proxy("https://api.anthropic.com")
