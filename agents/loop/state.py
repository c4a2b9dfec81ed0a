"""The agent loop's decisions, free of I/O: what one event does to a request's conversation and
what happens next.

A request's state is one ``podium.agent.State`` row (schemas/agent_state.avsc) on the agent's
compacted state topic. The agent stage reads it, applies one event with the functions here,
and emits the new row together with whatever the event set off, so the runtime's commit order
makes the row durable before the event that caused it is committed::

    request        -> start()            -> a model turn
    model turn     -> apply_turn()       -> tool calls sent / approvals asked | the answer
    tool result    -> absorb_result()    -> wait for the turn's other calls | the next turn
    decision       -> absorb_decision()  -> the approved call sent | a denial the model reads

Every event has an id (``request``, ``result:<call>``, ``decision:<call>``) kept in the row
once taken in, so an event delivered twice (a crash before its offset was committed, a
redelivered tool record) changes nothing: a turn that is written is never paid for again.
Before each model turn :func:`limit_reached` says whether the request must end instead, with
a degraded answer and the reason recorded, never silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents.gateway.providers.protocol import ToolCall
from agents.loop.records import (
    CUT_NOTE_CHARS,
    Step,
    cut_result,
    message,
    response_of,
    tool_error_result,
    tool_message,
)
from streams.errors import PermanentError
from streams.runtime import Record

__all__ = [
    "Ask",
    "Limits",
    "Send",
    "ToolInfo",
    "Turn",
    "TurnOutcome",
    "UnknownCall",
    "absorb_decision",
    "absorb_result",
    "apply_turn",
    "finish",
    "limit_reached",
    "overdue",
    "resend",
    "start",
    "waiting",
]


class UnknownCall(PermanentError):
    """A result or decision for a call this agent never asked for (dead-lettered with this reason)."""

    dead_letter_reason = "unknown_call"


@dataclass(frozen=True)
class Limits:
    """When a request must end. Confluent's streaming agents default to 10 iterations and 3
    consecutive failures; podium takes the same defaults."""

    max_steps: int = 10  # model turns
    max_consecutive_tool_failures: int = 3
    approval_timeout_s: float = 300.0  # no decision by then is a denial
    tool_timeout_s: float = 60.0  # no result by then is a failed call
    max_cost_usd: float | None = None  # per request, on top of the gateway's own cost cap
    max_result_chars: int = 16_000  # a tool result is cut to this before the model reads it
    # A call's arguments longer than this are refused (and kept cut): a tool record stays small.
    max_argument_chars: int = 64_000
    # Calls past this many in one turn are refused: a request's state stays well under its topic's
    # limit (turns x calls x (arguments + result)).
    max_calls_per_turn: int = 8

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.max_consecutive_tool_failures < 1:
            raise ValueError("max_steps and max_consecutive_tool_failures must be at least 1")


@dataclass(frozen=True)
class ToolInfo:
    """What the loop needs to know of a tool to route a call to it."""

    name: str
    topic: str
    side_effect: bool = False
    requires_approval: bool = False


@dataclass(frozen=True)
class Turn:
    """One model turn as the gateway returned it."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    model: str  # provider/model
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    ms: float = 0.0


@dataclass(frozen=True)
class Send:
    """A tool call record to publish on the tool's topic."""

    topic: str
    call_id: str
    tool: str
    arguments: str


@dataclass(frozen=True)
class Ask:
    """An approval request to publish: the call waits for a person."""

    call_id: str
    tool: str
    arguments: str
    expires_ms: int


@dataclass(frozen=True)
class TurnOutcome:
    state: Record
    sends: tuple[Send, ...] = ()
    asks: tuple[Ask, ...] = ()
    replies: tuple[Record, ...] = ()  # results the agent gives itself (a call of an unknown tool)
    answer: str | None = None  # set when the model answered instead of calling tools


def start(
    request: Record, agent: str, now: int, deadline_ms: int, traceparent: str = "", span_parent: str = ""
) -> Record:
    """The state of a new request: the person's question, with the context the caller vouches for.
    ``traceparent`` names the request's invoke_agent span, ``span_parent`` what it hangs from."""
    context = request.get("context") or {}
    question = request["body"]
    if context:
        question += "\n\nContext: " + " ".join(f"{k}={v}" for k, v in sorted(context.items()))
    return {
        "request_id": request["request_id"],
        "agent": agent,
        "tenant": request.get("tenant", ""),
        "status": "thinking",
        "version": 1,
        "turn": 0,
        "started_ms": now,
        "deadline_ms": deadline_ms,
        "cost_usd": 0.0,
        "consecutive_failures": 0,
        "messages": [message("user", question)],
        "pending": [],
        "steps": [],
        "absorbed": ["request"],
        "answer": "",
        "reason": "",
        "traceparent": traceparent,
        "agent_span_parent": span_parent,
    }


def _written(state: Record, **changes: Any) -> Record:
    return {**state, **changes, "version": state["version"] + 1}


def waiting(state: Record) -> bool:
    """Whether a call of the current turn has no result yet."""
    return any(p["status"] != "done" for p in state["pending"])


def limit_reached(state: Record, limits: Limits, now: int) -> str | None:
    """Why the request must end before another model turn, or None."""
    if state["consecutive_failures"] >= limits.max_consecutive_tool_failures:
        return (
            f"consecutive_tool_failures: {state['consecutive_failures']} tool calls failed in a row "
            f"(limit {limits.max_consecutive_tool_failures})"
        )
    if state["turn"] >= limits.max_steps:
        return f"max_steps: {state['turn']} model turns made (limit {limits.max_steps})"
    if limits.max_cost_usd is not None and state["cost_usd"] >= limits.max_cost_usd:
        return f"budget_exhausted: ${state['cost_usd']:.6f} spent of ${limits.max_cost_usd:g}"
    if state["deadline_ms"] and now >= state["deadline_ms"]:
        return f"deadline: the request's time budget ended {(now - state['deadline_ms']) / 1000:.1f}s ago"
    return None


def apply_turn(
    state: Record, turn: Turn, tools: Mapping[str, ToolInfo], limits: Limits, now: int
) -> TurnOutcome:
    """Write a model turn into the state and say what it sets off. A call of a tool the agent
    does not have gets an error result the model reads (and counts as a failure)."""
    number = state["turn"] + 1
    step = Step(
        "model_turn",
        number,
        turn.model,
        now,
        detail=f"{len(turn.tool_calls)} tool calls" if turn.tool_calls else turn.text[:200],
        ms=turn.ms,
        cost_usd=turn.cost_usd,
        tokens_in=turn.tokens_in,
        tokens_out=turn.tokens_out,
    )
    calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls]
    messages = [*state["messages"], message("assistant", turn.text, tool_calls=calls)]
    steps = [*state["steps"], step.record()]
    cost = state["cost_usd"] + turn.cost_usd
    if not turn.tool_calls:
        written = _written(state, turn=number, messages=messages, steps=steps, cost_usd=cost, pending=[])
        return TurnOutcome(written, answer=turn.text)
    pending, sends, asks, replies = [], [], [], []
    for index, call in enumerate(turn.tool_calls):
        call_id = f"{state['request_id']}.{number}.{index}"
        info = tools.get(call.name)
        row = {
            "call_id": call_id,
            "model_call_id": call.id,
            "tool": call.name,
            "arguments": call.arguments,
            "status": "sent",
            "sent_ms": now,
            "expires_ms": now + int(limits.tool_timeout_s * 1000),
            "outcome": "",
        }
        steps.append(Step("tool_call", number, call.name, now, call_id, call.arguments).record())
        call_record = {
            "request_id": state["request_id"],
            "call_id": call_id,
            "tool": call.name,
            "turn": number,
        }
        if index >= limits.max_calls_per_turn:
            error = (
                f"call {index + 1} of this turn: this agent runs at most {limits.max_calls_per_turn} a turn"
            )
            replies.append(tool_error_result(call_record, "too_many_calls", error, "agent", now))
            pending.append(row)
            continue
        if len(call.arguments) > limits.max_argument_chars:
            # Answered by the agent: the record would be too large for the tool's topic or stage.
            size = len(call.arguments)
            row["arguments"] = calls[index]["arguments"] = call.arguments[: limits.max_argument_chars]
            error = (
                f"arguments of {size:,} characters; this agent sends a tool at most "
                f"{limits.max_argument_chars:,}"
            )
            replies.append(tool_error_result(call_record, "arguments_too_long", error, "agent", now))
            pending.append(row)
            continue
        pending.append(row)
        if info is None:
            # Answered by the agent itself, through the results topic like any other result, so
            # the next turn is still set off by an event that follows this written turn.
            known = ", ".join(sorted(tools)) or "none"
            error = f"unknown tool {call.name!r}: this agent's tools are {known}"
            replies.append(tool_error_result(call_record, "unknown_tool", error, "agent", now))
        elif info.requires_approval:
            expires = now + int(limits.approval_timeout_s * 1000)
            if state["deadline_ms"]:
                # An approval given after the request's time is up could not be acted on.
                expires = min(expires, state["deadline_ms"])
            pending[-1] = {**row, "status": "awaiting_approval", "expires_ms": expires}
            asks.append(Ask(call_id, call.name, call.arguments, expires))
            steps.append(Step("approval_requested", number, call.name, now, call_id, call.arguments).record())
        else:
            sends.append(Send(info.topic, call_id, call.name, call.arguments))
    status = "waiting_approval" if asks else "waiting_tools"
    written = _written(
        state,
        turn=number,
        status=status,
        messages=messages,
        steps=steps,
        cost_usd=cost,
        pending=pending,
    )
    return TurnOutcome(written, tuple(sends), tuple(asks), replies=tuple(replies))


def _pending(state: Record, call_id: str, what: str) -> Record:
    for row in state["pending"]:
        if row["call_id"] == call_id:
            return dict(row)
    raise UnknownCall(
        f"{what} for call {call_id}, which request {state['request_id']} is not waiting for "
        f"(turn {state['turn']} waits for {', '.join(p['call_id'] for p in state['pending']) or 'nothing'})"
    )


def absorb_result(state: Record, result: Record, limits: Limits, now: int) -> Record | None:
    """The state with one tool result taken in, or None when it was taken in already."""
    event = f"result:{result['call_id']}"
    if state["status"] == "done" or event in state["absorbed"]:
        return None
    row = _pending(state, result["call_id"], "a result")
    if row["status"] == "awaiting_approval":
        raise UnknownCall(f"a result for call {row['call_id']}, which no one has approved yet")
    # A tool stage cut it already (and said so); a result from elsewhere is cut here.
    content = cut_result(result["content"], limits.max_result_chars + CUT_NOTE_CHARS)
    detail = (
        content[:300] if not result["is_error"] else f"{result.get('error_type') or 'error'}: {content[:280]}"
    )
    step = Step(
        "tool_result",
        state["turn"],
        row["tool"],
        now,
        row["call_id"],
        detail,
        bool(result["is_error"]),
        ms=float(result.get("ms", 0.0)),
    )
    outcome = "failed" if result["is_error"] else "ok"
    pending = _settled(state, row["call_id"], outcome)
    return _written(
        state,
        messages=[*state["messages"], tool_message(row, content, bool(result["is_error"]))],
        pending=pending,
        steps=[*state["steps"], step.record()],
        absorbed=[*state["absorbed"], event],
        consecutive_failures=_failures_after(state, pending),
        status=_status_after(state, row["call_id"]),
    )


def _settled(state: Record, call_id: str, outcome: str) -> list[Record]:
    return [
        {**p, "status": "done", "outcome": outcome} if p["call_id"] == call_id else p
        for p in state["pending"]
    ]


def _failures_after(state: Record, pending: list[Record]) -> int:
    """Tool failures in a row, counted once a turn's calls have all settled, in the order of the
    calls (their results arrive in any order, and the count must not depend on it). A denial is
    a person's decision, not a failure: it leaves the count as it was."""
    if any(p["status"] != "done" for p in pending):
        return int(state["consecutive_failures"])
    count = int(state["consecutive_failures"])
    for p in pending:
        if p.get("outcome") == "failed":
            count += 1
        elif p.get("outcome") == "ok":
            count = 0
    return count


def _status_after(state: Record, settled: str) -> str:
    left = [p for p in state["pending"] if p["call_id"] != settled and p["status"] != "done"]
    if any(p["status"] == "awaiting_approval" for p in left):
        return "waiting_approval"
    return "waiting_tools" if left else "thinking"


def absorb_decision(
    state: Record, decision: Record, tools: Mapping[str, ToolInfo], limits: Limits, now: int
) -> tuple[Record, tuple[Send, ...]] | None:
    """The state with a person's (or the timeout's) decision taken in, and the call to send if
    it was approved; None when it was taken in already. A denial becomes the call's result: the
    model reads who denied it and why, and it does not count as a tool failure."""
    event = f"decision:{decision['call_id']}"
    if state["status"] == "done" or event in state["absorbed"]:
        return None
    row = _pending(state, decision["call_id"], "a decision")
    if row["status"] != "awaiting_approval":
        return None  # decided already under another event id (cannot happen today; harmless)
    by = decision.get("by") or "someone"
    reason = decision.get("reason") or ""
    verdict = "approved" if decision["approved"] else "denied"
    step = Step(
        "approval",
        state["turn"],
        row["tool"],
        now,
        row["call_id"],
        f"{verdict} by {by}" + (f": {reason}" if reason else ""),
        not decision["approved"],
    )
    changes: dict[str, Any] = {
        "absorbed": [*state["absorbed"], event],
        "steps": [*state["steps"], step.record()],
    }
    if decision["approved"]:
        info = tools.get(row["tool"])
        if info is None:
            raise UnknownCall(
                f"call {row['call_id']} was approved, but this agent no longer has {row['tool']!r}"
            )
        # Its result is due a tool's time from now, not by the approval's deadline.
        sent = {
            **row,
            "status": "sent",
            "sent_ms": now,
            "expires_ms": now + int(limits.tool_timeout_s * 1000),
        }
        pending = [sent if p["call_id"] == row["call_id"] else p for p in state["pending"]]
        status = (
            "waiting_approval"
            if any(p["status"] == "awaiting_approval" for p in pending)
            else "waiting_tools"
        )
        written = _written(state, pending=pending, status=status, **changes)
        return written, (Send(info.topic, row["call_id"], row["tool"], row["arguments"]),)
    denial = f"denied by {by}" + (f": {reason}" if reason else "") + "; the action was not taken"
    pending = _settled(state, row["call_id"], "denied")
    written = _written(
        state,
        messages=[*state["messages"], tool_message(row, denial, True)],
        pending=pending,
        status=_status_after(state, row["call_id"]),
        consecutive_failures=_failures_after(state, pending),
        **changes,
    )
    return written, ()


def finish(state: Record, answer: str | None, reason: str, now: int, event: str) -> tuple[Record, Record]:
    """The request's end, set off by ``event``: the ``done`` row (the messages dropped; the
    answer, the steps and that event kept, so the response can be sent again if the event is
    delivered again) and the response. ``answer`` None: ended by ``reason`` with what the tools
    found so far."""
    text = answer if answer is not None else _degraded_answer(state, reason)
    steps = [*state["steps"]]
    if reason:
        steps.append(Step("limit", state["turn"], state["agent"], now, detail=reason, is_error=True).record())
    steps.append(Step("answer", state["turn"], state["agent"], now, detail=text[:300]).record())
    done = _written(
        state,
        status="done",
        messages=[],
        pending=[],
        steps=steps,
        absorbed=[event],
        answer=text,
        reason=reason,
    )
    return done, response_of(done, now)


def resend(state: Record, tools: Mapping[str, ToolInfo]) -> tuple[tuple[Send, ...], tuple[Ask, ...]]:
    """What a waiting request sent and may have lost: its calls still without a result, its
    approvals still undecided. Sent again when an event it took in is delivered again (a worker
    died after the state was written but maybe before the rest was): tool stages answer a call
    they ran from the ledger, and a person sees one approval per call."""
    sends = tuple(
        Send(tools[p["tool"]].topic, p["call_id"], p["tool"], p["arguments"])
        for p in state["pending"]
        if p["status"] == "sent" and p["tool"] in tools
    )
    asks = tuple(
        Ask(p["call_id"], p["tool"], p["arguments"], p["expires_ms"])
        for p in state["pending"]
        if p["status"] == "awaiting_approval"
    )
    return sends, asks


def _degraded_answer(state: Record, reason: str) -> str:
    found = [
        f"- {m['name']}: {m['content'][:200]}"
        for m in state["messages"]
        if m["role"] == "tool" and not m["is_error"]
    ]
    head = f"I could not finish this request ({reason.split(':', 1)[0].replace('_', ' ')})."
    return head + ("\nWhat I found so far:\n" + "\n".join(found) if found else " Nothing was found yet.")


def overdue(state: Record, now: int) -> tuple[list[Record], list[Record]]:
    """The calls of a waiting state whose result (first list) or decision (second) is late."""
    late_results = [p for p in state["pending"] if p["status"] == "sent" and p["expires_ms"] <= now]
    late_decisions = [
        p for p in state["pending"] if p["status"] == "awaiting_approval" and p["expires_ms"] <= now
    ]
    return late_results, late_decisions
