"""A local MCP server standing in for a team's docs service: one read-only tool, ``kb_search``,
over podium's shipped knowledge base (the search of :mod:`agents.billing.docs`).

Run it as ``python -m agents.billing.docs_server``; it speaks MCP over stdio (JSON-RPC on stdin
and stdout, logs on stderr), the way an agent host starts a tool server as a child process. It
is written with the official ``mcp`` SDK's server API (``MCPServer``, FastMCP before mcp 2).
The index is built before the server answers, so a broken knowledge base fails at start.
"""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.types import ToolAnnotations

from agents.billing.docs import DocSearch, HitCount, KnowledgeBase

__all__ = ["SERVER_NAME", "build_server", "main"]

SERVER_NAME = "podium-docs"

# Hints for the client (an agent host may run read-only tools without asking anyone).
KB_SEARCH = ToolAnnotations(
    title="Search the docs",
    read_only_hint=True,
    idempotent_hint=True,
    open_world_hint=False,  # the shipped knowledge base only, nothing on the network
)


def build_server(kb: KnowledgeBase) -> MCPServer:
    server: MCPServer = MCPServer(
        SERVER_NAME,
        instructions="Search the product docs and the FAQ; each hit has a title, a url and a snippet.",
    )

    @server.tool(annotations=KB_SEARCH)
    def kb_search(query: str, k: HitCount = 3) -> DocSearch:
        """Search the product docs and the FAQ: the best k passages, each with title, url and snippet."""
        return kb.search(query, k)

    return server


def main() -> None:
    build_server(KnowledgeBase()).run("stdio")


if __name__ == "__main__":
    main()
