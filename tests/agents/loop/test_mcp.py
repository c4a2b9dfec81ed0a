"""The tools of a real MCP server (tests/agents/loop/mcp_server.py, a process each test starts)
over stdio and streamable HTTP: listing, calls, errors, and a server that dies mid-call."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from mcp.types import CallToolResult, ImageContent, ListToolsResult, TextContent, ToolAnnotations

from agents.loop import McpToolbox, Tool, ToolboxError, ToolOutcome
from agents.loop.mcp import _Connection, outcome_of, side_effect_of
from streams.errors import ConfigError

SERVER = Path(__file__).with_name("mcp_server.py")
STDIO = (sys.executable, str(SERVER), "stdio")
EVERY_TOOL = {
    "add",
    "delete_record",
    "append_note",
    "lookup",
    "refuse",
    "sleep",
    "idempotency_key",
    "pid",
    "crash",
}


@pytest.mark.parametrize(
    ("annotations", "side_effect"),
    [
        (None, False),
        (ToolAnnotations(), False),
        (ToolAnnotations(read_only_hint=True), False),
        (ToolAnnotations(read_only_hint=False), True),
        (ToolAnnotations(destructive_hint=True), True),
        (ToolAnnotations(read_only_hint=False, destructive_hint=False), True),
        (ToolAnnotations(destructive_hint=False), False),
    ],
)
def test_side_effect_follows_the_servers_hints(
    annotations: ToolAnnotations | None, side_effect: bool
) -> None:
    assert side_effect_of(annotations) is side_effect


def test_a_result_reads_as_its_structured_content_or_its_text() -> None:
    two_texts = [TextContent(text="first"), TextContent(text="second")]
    assert outcome_of(CallToolResult(content=two_texts)) == ToolOutcome("first\nsecond")
    structured = CallToolResult(content=[TextContent(text="{...}")], structured_content={"n": 1})
    assert outcome_of(structured) == ToolOutcome('{"n":1}')
    image = ImageContent(data="aGk=", mime_type="image/png")
    assert outcome_of(CallToolResult(content=[TextContent(text="see"), image])) == ToolOutcome(
        "see\n[image image/png]"
    )
    failed = CallToolResult(content=[TextContent(text="no such invoice")], is_error=True)
    assert outcome_of(failed) == ToolOutcome("no such invoice", is_error=True, error_type="failed")
    assert outcome_of(CallToolResult(content=[], is_error=True)).content == (
        "the tool reported an error without a message"
    )


class CutClient:
    """Stands in for the SDK's client the way its transports fail: the transport's task group
    cancels the task holding the session and its exit raises the group of what went wrong, while
    a request in flight may never hear of it."""

    def __init__(self) -> None:
        self.holder: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CutClient:
        self.holder = asyncio.current_task()  # type: ignore[assignment]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        raise ExceptionGroup("unhandled errors in a TaskGroup", [ConnectionResetError("peer reset")])

    async def list_tools(self, cursor: str | None = None) -> ListToolsResult:
        return ListToolsResult(tools=[])

    async def call_tool(self, *args: object, **kwargs: object) -> CallToolResult:
        await asyncio.Event().wait()  # never answered
        raise AssertionError("unreachable")

    def cut(self) -> None:
        assert self.holder is not None
        self.holder.cancel()


async def test_a_call_hears_of_a_connection_that_ends_under_it_even_if_its_request_never_does() -> None:
    client = CutClient()
    connection = _Connection("MCP server 'cut' (fake)", lambda: client)  # type: ignore[arg-type, return-value]
    await connection.ready()
    calling = asyncio.create_task(connection.call("add", {}, "call-1"))
    await asyncio.sleep(0.05)
    client.cut()
    assert await asyncio.wait_for(calling, 2) == ToolOutcome(
        "MCP server 'cut' (fake) is unavailable: ConnectionResetError: peer reset; the next call reconnects",
        is_error=True,
        error_type="unavailable",
    )
    await connection.stop()
    assert tasks_of("cut") == []


def test_a_toolbox_takes_a_command_or_a_url() -> None:
    with pytest.raises(ConfigError, match="either command"):
        McpToolbox("both", command=STDIO, url="http://127.0.0.1:1/mcp")
    with pytest.raises(ConfigError, match="either command"):
        McpToolbox("neither")
    with pytest.raises(ConfigError, match="env is for a command"):
        McpToolbox("web", url="http://127.0.0.1:1/mcp", env={"A": "1"})


def test_its_tools_are_there_only_once_open() -> None:
    with pytest.raises(ToolboxError, match="open"):
        McpToolbox("closed", command=STDIO).tools()


@pytest.fixture(scope="module")
async def stdio_box() -> AsyncIterator[McpToolbox]:
    async with McpToolbox("test", command=STDIO, requires_approval=frozenset({"delete_record"})) as box:
        yield box


def by_name(box: McpToolbox) -> dict[str, Tool]:
    return {tool.name: tool for tool in box.tools()}


async def call(box: McpToolbox, name: str, arguments: str = "{}", key: str = "call-1") -> ToolOutcome:
    return await by_name(box)[name].run(arguments, idempotency_key=key)


async def test_every_page_of_the_listing_becomes_a_tool(stdio_box: McpToolbox) -> None:
    tools = by_name(stdio_box)
    assert set(tools) == EVERY_TOOL  # two tools a page: the cursor was followed to the end
    add = tools["add"]
    assert add.description == "Add two integers."
    assert add.parameters["properties"] == {
        "a": {"title": "A", "type": "integer"},
        "b": {"title": "B", "type": "integer"},
    }
    assert add.spec().parameters == add.parameters  # the server's inputSchema, as it gave it


async def test_side_effect_and_approval_come_from_the_hints_and_the_toolbox(stdio_box: McpToolbox) -> None:
    tools = by_name(stdio_box)
    assert {name for name, tool in tools.items() if tool.side_effect} == {"delete_record", "append_note"}
    assert {name for name, tool in tools.items() if tool.requires_approval} == {"delete_record"}


async def test_a_call_answers_the_servers_result_as_json(stdio_box: McpToolbox) -> None:
    assert await call(stdio_box, "add", '{"a": 2, "b": 3}') == ToolOutcome('{"result":5}')
    assert await call(stdio_box, "lookup", '{"account": "A-1"}') == ToolOutcome(
        '{"account":"A-1","balance":42}'
    )


async def test_an_is_error_result_is_a_failure_the_model_reads(stdio_box: McpToolbox) -> None:
    outcome = await call(stdio_box, "refuse", '{"reason": "closed account"}')
    assert outcome.is_error and outcome.error_type == "failed"
    assert "refused: closed account" in outcome.content


@pytest.mark.parametrize(
    ("arguments", "content"),
    [
        (
            '{"a": "two"}',
            "invalid arguments: arguments: 'b' is a required property; a: 'two' is not of type 'integer'",
        ),
        ('{"a": 1,', "invalid arguments: arguments: not valid JSON (Expecting"),
        ("[1, 2]", "invalid arguments: arguments: expected a JSON object"),
    ],
)
async def test_arguments_that_do_not_fit_the_schema_are_told_before_the_call(
    stdio_box: McpToolbox, arguments: str, content: str
) -> None:
    outcome = await call(stdio_box, "add", arguments)
    assert outcome.error_type == "invalid_arguments"
    assert outcome.content.startswith(content)


async def test_the_idempotency_key_reaches_the_server(stdio_box: McpToolbox) -> None:
    assert await call(stdio_box, "idempotency_key", key="call-7") == ToolOutcome('{"result":"call-7"}')


async def test_a_call_past_its_timeout_times_out_and_the_connection_stays(stdio_box: McpToolbox) -> None:
    hurried = replace(by_name(stdio_box)["sleep"], timeout_s=0.3)
    outcome = await hurried.run('{"seconds": 5}', idempotency_key="call-1")
    assert outcome == ToolOutcome("sleep did not finish within 0.3 s", is_error=True, error_type="timeout")
    assert await call(stdio_box, "add", '{"a": 1, "b": 1}') == ToolOutcome('{"result":2}')


async def server_pid(box: McpToolbox) -> int:
    outcome = await call(box, "pid")
    assert not outcome.is_error, outcome
    return int(json.loads(outcome.content)["result"])


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def sleep_at_the_server(marker: Path) -> str:
    """The arguments of a long ``sleep`` that creates ``marker`` once it is at the server."""
    return json.dumps({"seconds": 10, "marker": str(marker)})


async def at_the_server(marker: Path, sleeping: asyncio.Task[ToolOutcome], within_s: float = 20) -> None:
    """Waits until the server created ``marker`` (the call is there), failing at once if the
    call ended first and after ``within_s`` if it never arrives."""
    deadline = time.monotonic() + within_s
    while not await asyncio.to_thread(marker.exists):
        if sleeping.done():
            raise AssertionError(f"the call ended before it reached the server: {sleeping.result()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the call did not reach the server within {within_s} s")
        await asyncio.sleep(0.02)


def tasks_of(name: str) -> list[str]:
    """The tasks a toolbox of that name left running (its connection's, its calls')."""
    return [task.get_name() for task in asyncio.all_tasks() if f"MCP server {name!r}" in task.get_name()]


async def test_a_stdio_server_killed_mid_call_is_unavailable_then_restarted(tmp_path: Path) -> None:
    async with McpToolbox("killed", command=STDIO) as box:
        first = await server_pid(box)
        marker = tmp_path / "at-the-server"
        sleeping = asyncio.create_task(call(box, "sleep", sleep_at_the_server(marker)))
        await at_the_server(marker, sleeping)
        os.kill(first, signal.SIGKILL)
        started = time.monotonic()
        outcome = await sleeping
        assert time.monotonic() - started < 2  # told at once, not at the timeout
        assert outcome.is_error and outcome.error_type == "unavailable"
        assert "MCP server 'killed'" in outcome.content and "closed mid-call" in outcome.content
        second = await server_pid(box)  # the next call started a new process
        assert second != first
    assert gone(first) and gone(second)
    assert tasks_of("killed") == []


async def test_a_stdio_server_that_exits_mid_call_is_unavailable_then_restarted() -> None:
    async with McpToolbox("exits", command=STDIO) as box:
        first = await server_pid(box)
        outcome = await call(box, "crash")
        assert outcome.error_type == "unavailable" and "MCP server 'exits'" in outcome.content
        assert await call(box, "add", '{"a": 1, "b": 2}') == ToolOutcome('{"result":3}')
        assert await server_pid(box) != first
    assert tasks_of("exits") == []


async def test_a_call_after_close_is_unavailable() -> None:
    box = McpToolbox("short", command=STDIO)
    await box.open()
    add = by_name(box)["add"]
    pid = await server_pid(box)
    await box.close()
    outcome = await add.run('{"a": 1, "b": 2}', idempotency_key="call-1")
    assert outcome == ToolOutcome(f"MCP server 'short' ({' '.join(STDIO)}) is closed", True, "unavailable")
    assert gone(pid) and tasks_of("short") == []


async def test_a_call_in_flight_when_the_toolbox_closes_is_unavailable(tmp_path: Path) -> None:
    box = McpToolbox("closing", command=STDIO)
    await box.open()
    marker = tmp_path / "at-the-server"
    sleeping = asyncio.create_task(call(box, "sleep", sleep_at_the_server(marker)))
    await at_the_server(marker, sleeping)
    await box.close()
    assert await sleeping == ToolOutcome(
        f"MCP server 'closing' ({' '.join(STDIO)}) is unavailable: the toolbox closed the connection",
        is_error=True,
        error_type="unavailable",
    )
    assert tasks_of("closing") == []


async def test_a_server_that_does_not_start_fails_the_open_naming_it() -> None:
    with pytest.raises(
        ToolboxError, match=r"MCP server 'missing' \(/nonexistent/server\).*FileNotFoundError"
    ):
        await McpToolbox("missing", command=["/nonexistent/server"]).open()
    assert tasks_of("missing") == []


async def test_approval_for_a_tool_the_server_lacks_fails_the_open() -> None:
    box = McpToolbox("typo", command=STDIO, requires_approval=frozenset({"delete_recrod"}))
    with pytest.raises(ConfigError, match="has no tool delete_recrod"):
        await box.open()
    assert tasks_of("typo") == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpServer:
    """The test server over streamable HTTP on a fixed port, so it can be killed and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(SERVER), "http", str(self.port)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # uvicorn accepts once the app is up
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the test server exited with {self.process.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError(f"the test server did not listen on {self.port} within 20 s")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    server = HttpServer()
    server.start()
    yield server
    server.kill()


async def test_over_http_the_tools_are_listed_and_called(http_server: HttpServer) -> None:
    async with McpToolbox("web", url=http_server.url) as box:
        assert set(by_name(box)) == EVERY_TOOL
        assert by_name(box)["delete_record"].side_effect
        assert await call(box, "add", '{"a": 4, "b": 5}') == ToolOutcome('{"result":9}')
        assert (await call(box, "refuse", '{"reason": "no"}')).error_type == "failed"
    assert tasks_of("web") == []


async def test_an_http_server_killed_mid_call_is_unavailable_until_it_is_back(
    http_server: HttpServer, tmp_path: Path
) -> None:
    async with McpToolbox("web", url=http_server.url, timeout_s=5) as box:
        marker = tmp_path / "at-the-server"
        sleeping = asyncio.create_task(call(box, "sleep", sleep_at_the_server(marker)))
        await at_the_server(marker, sleeping)
        await asyncio.to_thread(http_server.kill)
        outcome = await sleeping
        assert (
            outcome.error_type == "unavailable" and f"MCP server 'web' ({http_server.url})" in outcome.content
        )
        down = await call(box, "add", '{"a": 1, "b": 2}')  # its one reconnect finds nobody
        assert down.error_type == "unavailable" and "ConnectError" in down.content
        await asyncio.to_thread(http_server.start)
        assert await call(box, "add", '{"a": 1, "b": 2}') == ToolOutcome('{"result":3}')
    assert tasks_of("web") == []


async def test_a_url_nobody_answers_fails_the_open() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    with pytest.raises(ToolboxError, match=r"MCP server 'web'.*ConnectError"):
        await McpToolbox("web", url=url).open()
