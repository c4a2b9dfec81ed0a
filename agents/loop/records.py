"""The records the agent loop writes, and how they read: a request's steps, its messages and
their neutral shape for the gateway, tool results that report a failure, the response, and a
tool result cut to size. Shapes only; what an event does to a request is :mod:`agents.loop.state`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agents.loop.tools import ToolOutcome
from streams.runtime import Record

__all__ = [
    "CUT_NOTE_CHARS",
    "Step",
    "arguments_preview",
    "conversation",
    "cut_result",
    "message",
    "response_of",
    "tool_error_result",
    "tool_message",
    "unknown_outcome",
]


@dataclass(frozen=True)
class Step:
    """One ``podium.agent.Step``: what happened to a request, for its response and the demo."""

    kind: str
    turn: int
    name: str
    at_ms: int
    call_id: str = ""
    detail: str = ""
    is_error: bool = False
    ms: float = 0.0
    cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0

    def record(self) -> Record:
        return {
            "kind": self.kind,
            "turn": self.turn,
            "name": self.name,
            "call_id": self.call_id,
            "detail": self.detail[:500],
            "is_error": self.is_error,
            "ms": round(self.ms, 3),
            "cost_usd": self.cost_usd,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "at_ms": self.at_ms,
        }


def message(role: str, content: str = "", **fields: Any) -> Record:
    return {
        "role": role,
        "content": content,
        "tool_calls": fields.get("tool_calls", []),
        "tool_call_id": fields.get("tool_call_id", ""),
        "name": fields.get("name", ""),
        "is_error": fields.get("is_error", False),
    }


def tool_message(pending: Record, content: str, is_error: bool) -> Record:
    return message(
        "tool", content, tool_call_id=pending["model_call_id"], name=pending["tool"], is_error=is_error
    )


def response_of(done: Record, now: int) -> Record:
    """The ``podium.agent.Response`` of a request that is done."""
    degraded = bool(done["reason"])
    return {
        "request_id": done["request_id"],
        "agent": done["agent"],
        "tenant": done["tenant"],
        "answer": done["answer"],
        "status": "degraded" if degraded else "answered",
        "reason": done["reason"],
        "turns": done["turn"],
        "cost_usd": round(done["cost_usd"], 10),
        "steps": done["steps"],
        "at_ms": now,
    }


CUT_NOTE_CHARS = 200


def cut_result(content: str, limit: int) -> str:
    """A tool's result as the model reads it: at most ``limit`` characters and a note saying so."""
    if len(content) <= limit:
        return content
    return (
        content[:limit]
        + f"\n[cut: the tool returned {len(content):,} characters; the first {limit:,} are kept]"
    )


def conversation(state: Record) -> list[dict[str, Any]]:
    """The messages in the gateway's neutral shape, each turn's tool results in the order of
    its calls (they arrive in any order; providers and replays should see one order)."""
    out: list[dict[str, Any]] = []
    order: dict[str, int] = {}
    results: list[Record] = []

    def flush() -> None:
        out.extend(_neutral(m) for m in sorted(results, key=lambda m: order.get(m["tool_call_id"], 0)))
        results.clear()

    for message in state["messages"]:
        if message["role"] == "tool":
            results.append(message)
            continue
        flush()
        out.append(_neutral(message))
        order = {c["id"]: i for i, c in enumerate(message["tool_calls"])}
    flush()
    return out


def _neutral(message: Record) -> dict[str, Any]:
    if message["role"] == "tool":
        return {
            "role": "tool",
            "tool_call_id": message["tool_call_id"],
            "name": message["name"],
            "content": message["content"],
            "is_error": message["is_error"],
        }
    if message["role"] == "assistant" and message["tool_calls"]:
        return {"role": "assistant", "content": message["content"], "tool_calls": list(message["tool_calls"])}
    return {"role": message["role"], "content": message["content"]}


def tool_error_result(call: Record, error_type: str, content: str, source: str, now: int) -> Record:
    """A ``podium.agent.ToolResult`` that reports a failure instead of a tool's answer."""
    return {
        "request_id": call["request_id"],
        "call_id": call["call_id"],
        "tool": call["tool"],
        "turn": call.get("turn", 0),
        "content": content,
        "is_error": True,
        "error_type": error_type,
        "source": source,
        "ms": 0.0,
        "at_ms": now,
    }


def arguments_preview(arguments: str) -> str:
    """Arguments on one line for a person (the approval summary, the demo's steps)."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return arguments[:200]
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())[:200]
    return json.dumps(value)[:200]


def unknown_outcome(what: str) -> ToolOutcome:
    """A side effect that may or may not have happened: the model must check, not call again."""
    return ToolOutcome(
        f"unknown_outcome: {what}; whether it took effect is unknown: check before calling it again",
        True,
        "unknown_outcome",
    )
