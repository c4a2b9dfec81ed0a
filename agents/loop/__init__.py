"""The agent loop's tools: typed Python functions made tools (:func:`tool`) and the tools of MCP
servers (:class:`McpToolbox`), each a :class:`Tool` whose :meth:`~Tool.run` turns a model's call
into a :class:`ToolOutcome` and never raises for the tool's own failure. A :class:`Toolbox` is a
group of tools that needs opening (a server)."""

from agents.loop.mcp import McpToolbox
from agents.loop.tools import Tool, Toolbox, ToolboxError, ToolError, ToolOutcome, tool

__all__ = ["McpToolbox", "Tool", "ToolError", "ToolOutcome", "Toolbox", "ToolboxError", "tool"]
