"""What a client sends too much of, or too slowly, gets a 4xx (or, having sent nothing, a closed
connection) from a real uvicorn server over real sockets, and the server goes on serving others.

The deadlines are short here so that the tests wait little; nothing asserts how long anything
took, only what each client got."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn

from streams.config import Settings
from streams.ingress.auth import Authenticator
from streams.ingress.http import Entry, create_app
from streams.ingress.server import ClientLimits, server_config
from streams.kafka.admin import TopicAdmin
from streams.kafka.connection import Cluster
from streams.runtime.project import Project

REQUESTS = "support.requests"
ENDS = ("support.responses", "support.rejected")
LIMITS = ClientLimits(
    max_header_bytes=8 * 1024, head_timeout_s=1.0, body_timeout_s=1.0, keep_alive_s=1, shutdown_s=5
)
GUARD_S = 30.0  # a test that hangs fails instead: the server must answer or close long before


@asynccontextmanager
async def server(config: uvicorn.Config) -> AsyncIterator[tuple[str, int]]:
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        await asyncio.sleep(0.02)
        if task.done():
            await task
    port = srv.servers[0].sockets[0].getsockname()[1]
    try:
        yield "127.0.0.1", port
    finally:
        srv.should_exit = True
        await task


@pytest.fixture
async def gateway(broker_settings: Settings, cluster: Cluster) -> AsyncIterator[tuple[str, int]]:
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": cluster.bootstrap}))
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog.select([REQUESTS, *ENDS]))
    app = create_app(
        project,
        [Entry("support", REQUESTS, ENDS)],
        cluster=cluster,
        auth=Authenticator.open(),
        max_body_bytes=64 * 1024,
    )
    async with server(server_config(app, host="127.0.0.1", port=0, limits=LIMITS)) as address:
        yield address


async def answer(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), GUARD_S)


async def still_serving(address: tuple[str, int]) -> None:
    host, port = address
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=GUARD_S) as client:
        assert (await client.get("/healthz")).json() == {"ok": True}
        accepted = await client.post(
            "/v1/support/requests", json={"body": "still here?"}, params={"wait_s": 0}
        )
        assert accepted.status_code == 202, accepted.text


def head(path: str = "/v1/support/requests", *lines: str) -> bytes:
    return (
        f"POST {path}?wait_s=0 HTTP/1.1\r\nhost: gateway\r\n" + "".join(f"{x}\r\n" for x in lines)
    ).encode()


@pytest.mark.parametrize("complete", [True, False])
async def test_huge_headers_are_a_4xx_and_the_connection_closes(
    gateway: tuple[str, int], complete: bool
) -> None:
    reader, writer = await asyncio.open_connection(*gateway)
    lines = [f"x-padding-{i}: {'a' * 1000}" for i in range(16)]  # 16 KiB, twice the limit
    # Complete, the head is parsed whole in one read: the header limit's 431. Incomplete, it
    # outgrows h11's buffer while the server waits for the rest: uvicorn's 400.
    writer.write(head("/v1/support/requests", *lines) + (b"\r\n" if complete else b""))
    await writer.drain()
    got = await answer(reader)
    writer.close()
    assert got.startswith(b"HTTP/1.1 431 " if complete else b"HTTP/1.1 400 "), got[:200]
    await still_serving(gateway)


async def test_headers_trickled_slowly_get_a_408_while_others_are_served(gateway: tuple[str, int]) -> None:
    slow = [await asyncio.open_connection(*gateway) for _ in range(20)]

    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(head())
        for i in range(int(GUARD_S * 10)):  # a header line a tenth of a second, never the blank line
            await asyncio.sleep(0.1)
            if writer.is_closing():
                return
            try:
                writer.write(f"x-slow-{i}: 1\r\n".encode())
                await writer.drain()
            except ConnectionError:
                return  # closed by the server: what this test wants

    trickling = [asyncio.create_task(trickle(w)) for _, w in slow]
    await still_serving(gateway)  # while twenty clients hold connections open
    answers = await asyncio.gather(*(answer(r) for r, _ in slow))
    for task in trickling:
        task.cancel()
    for _, writer in slow:
        writer.close()
    for got in answers:
        assert got.startswith(b"HTTP/1.1 408 "), got[:200]
        assert b"took too long" in got
    await still_serving(gateway)


async def test_a_body_trickled_slowly_gets_a_408(gateway: tuple[str, int]) -> None:
    body = json.dumps({"body": "slow " * 100}).encode()
    reader, writer = await asyncio.open_connection(*gateway)
    writer.write(
        head("/v1/support/requests", "content-type: application/json", f"content-length: {len(body)}")
    )
    writer.write(b"\r\n" + body[:10])
    await writer.drain()

    async def trickle() -> None:
        for byte in body[10:-1]:  # never the last byte
            await asyncio.sleep(0.1)
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                return

    trickling = asyncio.create_task(trickle())
    await still_serving(gateway)
    got = await answer(reader)
    trickling.cancel()
    writer.close()
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert b"request body took too long" in got
    await still_serving(gateway)


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(gateway: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*gateway)
    assert await answer(reader) == b""
    writer.close()


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_the_limit_is_a_413_before_it_is_read_whole(
    gateway: tuple[str, int], chunked: bool
) -> None:
    reader, writer = await asyncio.open_connection(*gateway)
    if chunked:  # no length given: counted as it arrives
        writer.write(
            head("/v1/support/requests", "content-type: application/json", "transfer-encoding: chunked")
        )
        writer.write(b"\r\n")
        chunk = b'{"body": "' + b"a" * 32 * 1024
        for _ in range(4):
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    else:  # the length says it all: answered before a byte of the body is sent
        writer.write(
            head("/v1/support/requests", "content-type: application/json", "content-length: 100000000")
        )
        writer.write(b"\r\n")
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), GUARD_S)
    writer.close()
    assert status.startswith(b"HTTP/1.1 413 "), status
    await still_serving(gateway)


async def test_deep_nesting_is_a_400(gateway: tuple[str, int]) -> None:
    host, port = gateway
    deep = '{"body": "x", "subject": ' + "[" * 5_000 + "]" * 5_000 + "}"
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=GUARD_S) as client:
        refused = await client.post(
            "/v1/support/requests", content=deep, headers={"content-type": "application/json"}
        )
        assert refused.status_code == 400, refused.text
    await still_serving(gateway)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="head_timeout_s must be positive"):
        ClientLimits(head_timeout_s=0)
