"""Agents that plan and call tools, as stages on Kafka.

- :class:`Agent` declares one: its model policy, its tools, its :class:`Limits`;
  :func:`agent_stages` makes it stages (:mod:`~agents.loop.stages`): the agent stage takes model
  turns, one stage per tool runs its calls, every step written before the next one runs;
- :mod:`~agents.loop.state` holds the loop's decisions, free of I/O;
- tools: typed Python functions made tools (:func:`tool`) and the tools of MCP servers
  (:class:`McpToolbox`), each a :class:`Tool` whose :meth:`~Tool.run` turns a model's call into a
  :class:`ToolOutcome` and never raises for the tool's own failure. A :class:`Toolbox` is a
  group of tools that needs opening (a server).
"""

from agents.loop.agent import Agent
from agents.loop.mcp import McpToolbox
from agents.loop.stages import agent_stages
from agents.loop.state import Limits
from agents.loop.tools import Tool, Toolbox, ToolboxError, ToolError, ToolOutcome, tool

__all__ = [
    "Agent",
    "Limits",
    "McpToolbox",
    "Tool",
    "ToolError",
    "ToolOutcome",
    "Toolbox",
    "ToolboxError",
    "agent_stages",
    "tool",
]
