"""The docs MCP server as a real child process over stdio, driven by the mcp SDK's client."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mcp import ClientSession, StdioServerParameters, stdio_client

REPO = Path(__file__).resolve().parents[3]
SERVER = "agents.billing.docs_server"


@asynccontextmanager
async def docs_server(log: Path) -> AsyncIterator[ClientSession]:
    """A session with a fresh server process (a context manager, not a fixture: anyio's scopes
    must close in the task that opened them, and pytest-asyncio tears fixtures down in another)."""
    server = StdioServerParameters(command=sys.executable, args=["-m", SERVER], cwd=REPO)
    # The server logs on stderr; a file keeps it out of the test's output and readable on failure.
    with log.open("w") as errlog:
        async with (
            asyncio.timeout(60),
            stdio_client(server, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


# One process for every check: each start costs seconds (the SDK, bm25s, the index).
async def test_the_server_over_stdio_lists_its_search_and_answers_from_the_shipped_kb(tmp_path: Path) -> None:
    async with docs_server(tmp_path / "server.log") as session:
        listed = await session.list_tools()
        found = await session.call_tool("kb_search", {"query": "I was charged twice", "k": 2})
        refused = await session.call_tool("kb_search", {"query": "refund", "k": 50})

    (tool,) = listed.tools
    assert tool.name == "kb_search"
    assert tool.annotations is not None and tool.annotations.read_only_hint is True
    assert tool.input_schema["required"] == ["query"]
    assert tool.input_schema["properties"]["k"]["default"] == 3
    assert tool.input_schema["properties"]["k"]["maximum"] == 10

    assert found.is_error is False and found.structured_content is not None
    hits = found.structured_content["hits"]
    assert len(hits) == 2
    assert hits[0]["title"] == "Refund policy"
    assert hits[0]["url"] == "https://docs.lumen.example/billing/refunds"
    assert "Duplicate or erroneous charges" in hits[0]["snippet"]

    assert refused.is_error is True  # k above the schema's maximum
