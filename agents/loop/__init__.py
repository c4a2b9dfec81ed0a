"""The agent loop's tools: typed Python functions made tools (:func:`tool`), each a :class:`Tool`
whose :meth:`~Tool.run` turns a model's call into a :class:`ToolOutcome` and never raises for the
tool's own failure; a :class:`Toolbox` is a group of them that needs opening (a server)."""

from agents.loop.tools import Tool, Toolbox, ToolboxError, ToolError, ToolOutcome, tool

__all__ = ["Tool", "ToolError", "ToolOutcome", "Toolbox", "ToolboxError", "tool"]
