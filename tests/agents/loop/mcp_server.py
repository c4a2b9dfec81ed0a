"""A real MCP server for the toolbox tests, written with the SDK's server API (``MCPServer``, the
2.x name of FastMCP). Run it as a script::

    python tests/agents/loop/mcp_server.py stdio
    python tests/agents/loop/mcp_server.py http PORT      # streamable HTTP on 127.0.0.1:PORT/mcp

Its tools/list answers two tools a page, so a client that ignores ``nextCursor`` misses tools.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ListToolsResult, PaginatedRequestParams, ToolAnnotations

PAGE = 2

server = MCPServer("podium-test", log_level="WARNING")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
def delete_record(record_id: str) -> str:
    """Delete a record for good."""
    return f"deleted {record_id}"


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
def append_note(text: str) -> str:
    """Append a note (additive: nothing is overwritten)."""
    return f"noted {text}"


@server.tool()
def lookup(account: str) -> dict[str, Any]:
    """Look an account up: structured content."""
    return {"account": account, "balance": 42}


@server.tool()
def refuse(reason: str) -> str:
    """Always fails with the reason given, as an isError result."""
    raise ToolError(f"refused: {reason}")


@server.tool()
async def sleep(seconds: float, marker: str = "") -> str:
    """Sleep, then answer: a call the tests kill the server under. ``marker``: a file created
    once the call is at the server, so a test kills it then and not after a guessed pause."""
    if marker:
        await asyncio.to_thread(Path(marker).touch)
    await asyncio.sleep(seconds)
    return "slept"


@server.tool()
def idempotency_key(ctx: Context) -> str:
    """The idempotency key the call carried in its _meta."""
    meta = ctx.request_context.meta or {}
    return str(meta.get("podium/idempotency_key", ""))


@server.tool()
def pid() -> int:
    """The server's process id: a restarted server answers another."""
    return os.getpid()


@server.tool()
def crash() -> str:
    """Exit the server process at once, mid-call."""
    os._exit(3)


async def _list_in_pages(_ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
    tools = await server.list_tools()
    start = int(params.cursor) if params is not None and params.cursor else 0
    end = start + PAGE
    return ListToolsResult(tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None)


server._lowlevel_server.add_request_handler("tools/list", PaginatedRequestParams, _list_in_pages)


def main(argv: list[str]) -> None:
    if argv[:1] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(argv[1]))
    else:
        server.run("stdio")


if __name__ == "__main__":
    main(sys.argv[1:])
