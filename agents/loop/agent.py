"""How an agent is declared: its model policy, its tools, its limits, and the topics it lives on.

::

    BILLING = Agent(
        name="billing",
        policy="billing",               # the `billing` entry of models.yaml's stages
        system="You help Lumen's customers with billing questions...",
        tools=(lookup_invoices, get_subscription, issue_refund, McpToolbox("docs_mcp", ...)),
        limits=Limits(max_steps=6, max_consecutive_tool_failures=3),
    )

Its topics are named from its name (``topics.yaml`` declares them): ``<name>.requests`` in,
``<name>.results`` (what tools returned), ``<name>.decisions`` and ``<name>.approvals`` (a person's
yes or no), ``<name>.state`` and ``<name>.ledger`` (compacted: the conversation, every call's
outcome), ``<name>.responses`` out, and one ``<name>.tool.<tool>`` per tool (an MCP server's tools
share ``<name>.tool.<server>``). Each tool topic has its own stage, so a slow tool never holds
up another and tools scale on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.loop.state import Limits
from agents.loop.tools import Tool, Toolbox

__all__ = ["Agent"]


@dataclass(frozen=True)
class Agent:
    name: str
    policy: str  # the gateway policy (models.yaml `stages:` entry) of its model turns
    system: str
    tools: tuple[Tool | Toolbox, ...]
    limits: Limits = field(default_factory=Limits)
    max_tokens: int = 1024
    # One model turn, all routes and retries included. Below the stage worker's 30 s drain: a
    # worker that loses a partition finishes its turns before the new owner reads the state.
    turn_timeout_s: float = 25.0
    # Requests whose turn one agent worker takes at once (each waits for its model a while).
    max_in_flight: int = 1024

    def __post_init__(self) -> None:
        if not self.tools:
            raise ValueError(f"agent {self.name}: give it at least one tool")
        names = [self.tool_stage(t) for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"agent {self.name}: two tools or toolboxes share a name: {sorted(names)}")

    @property
    def stage(self) -> str:
        """The agent stage's name (not the agent's: ``podium run <agent>`` runs the pipeline)."""
        return f"{self.name}-agent"

    @property
    def requests(self) -> str:
        return f"{self.name}.requests"

    @property
    def results(self) -> str:
        return f"{self.name}.results"

    @property
    def decisions(self) -> str:
        return f"{self.name}.decisions"

    @property
    def approvals(self) -> str:
        return f"{self.name}.approvals"

    @property
    def state(self) -> str:
        return f"{self.name}.state"

    @property
    def ledger(self) -> str:
        return f"{self.name}.ledger"

    @property
    def responses(self) -> str:
        return f"{self.name}.responses"

    def tool_topic(self, tool: Tool | Toolbox) -> str:
        return f"{self.name}.tool.{tool.name}"

    @staticmethod
    def tool_stage(tool: Tool | Toolbox) -> str:
        """The stage that runs a tool's (or a toolbox's) calls."""
        return tool.name.replace("_", "-")

    def tool_topics(self) -> tuple[str, ...]:
        return tuple(self.tool_topic(t) for t in self.tools)
