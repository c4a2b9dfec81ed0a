"""What the billing planner reads from a chat request: the question and its context line, the
tools offered, and every earlier tool call with its result (:class:`Conversation`), and the
results read back as the billing tools' types. Reading only; the rules are in
:mod:`agents.billing.planner`.

Results are the tools' return values as JSON text. ``{"result": x}`` is read as ``x``, since
MCP wraps a result that is not an object that way; a result that does not parse as the tool's
type reads as ``None`` (the planner says it could not read it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from agents.billing.accounts import Invoice, Subscription
from agents.billing.docs import DocSearch
from agents.gateway.providers.protocol import ChatRequest

__all__ = [
    "DOCS_TOOLS",
    "UNKNOWN_OUTCOME",
    "Conversation",
    "Outcome",
    "question_kind",
    "read_conversation",
    "read_docs",
    "read_invoices",
    "read_subscription",
    "reason",
    "result_of",
]

# A how-to is asked of the docs service (its MCP server) first, a billing problem of the
# in-process search the agent cites beside the invoices; either falls back to the other.
DOCS_TOOLS = {"docs": ("kb_search", "search_docs"), "billing": ("search_docs", "kb_search")}

_CONTEXT = re.compile(r"^\s*context:(.*)$", re.IGNORECASE)
# A denial is an error result that says so (the approval step's error_type "denied" counts).
_DENIED = re.compile(r"\bden(ied|ial|y)\b|not approved", re.IGNORECASE)
# The loop's tool stage starts the content of a side-effect call it cannot vouch for (started
# before its worker stopped, timed out, its MCP server gone) with this: the effect may have happened.
UNKNOWN_OUTCOME = "unknown_outcome:"
_INVOICES = TypeAdapter(list[Invoice])


@dataclass(frozen=True)
class Outcome:
    """One tool call of an earlier turn and its result."""

    call_id: str
    tool: str
    arguments: Mapping[str, Any]
    content: str
    is_error: bool

    @property
    def unknown(self) -> bool:
        """The call may or may not have taken effect: final, since a retry could do it twice."""
        return self.is_error and self.content.lstrip().startswith(UNKNOWN_OUTCOME)

    @property
    def denied(self) -> bool:
        return self.is_error and not self.unknown and bool(_DENIED.search(self.content))


@dataclass(frozen=True)
class Conversation:
    """What the planner reads from a request."""

    question: str
    context: Mapping[str, str]
    turn: int  # the turn being planned: 1 before any tool call
    offered: frozenset[str]
    may_call: bool
    outcomes: tuple[Outcome, ...]  # every result so far, in order
    last_calls: frozenset[str]  # the ids the previous turn asked for

    def attempts(self, tool: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.tool == tool]

    def succeeded(self, tool: str | None) -> Outcome | None:
        return next((o for o in reversed(self.attempts(tool)) if not o.is_error), None) if tool else None

    def failures(self, tool: str | None) -> list[Outcome]:
        """The tool's errors if it never succeeded (by the time the planner answers, a failed
        tool has had its last attempt): what the answer says could not be checked."""
        if tool is None or self.succeeded(tool):
            return []
        return [o for o in self.attempts(tool) if o.is_error]

    @property
    def docs_tool(self) -> str | None:
        return next((t for t in DOCS_TOOLS[question_kind(self.question)] if t in self.offered), None)


_PROBLEM = re.compile(r"charged\s+twice|double|duplicat|refund|overcharg", re.IGNORECASE)
_HOW_TO = re.compile(r"\bhow (do|can|to|does|should)\b|\bwhere (do|can|is)\b", re.IGNORECASE)
_BILLING = re.compile(r"\binvoice|\bbill|\bcharg", re.IGNORECASE)


def question_kind(question: str) -> Literal["billing", "docs"]:
    """``billing`` for a problem with the account's charges, ``docs`` for a how-to. A named
    problem wins over how-to phrasing ("how do I get a refund for a double charge")."""
    if _PROBLEM.search(question):
        return "billing"
    if _HOW_TO.search(question):
        return "docs"
    return "billing" if _BILLING.search(question) else "docs"


def read_conversation(request: ChatRequest) -> Conversation:
    question = ""
    context: dict[str, str] = {}
    asked_for: dict[str, tuple[str, Mapping[str, Any]]] = {}
    outcomes: list[Outcome] = []
    last_calls: frozenset[str] = frozenset()
    turns, read_user = 0, False
    for message in request.messages:
        role = message.get("role")
        if role == "user" and not read_user:
            question, context = _question_and_context(str(message.get("content") or ""))
            read_user = True
        elif role == "assistant":
            turns += 1
            asked = message.get("tool_calls") or ()
            for call in asked:
                asked_for[call["id"]] = (call["name"], _arguments(call.get("arguments", "{}")))
            last_calls = frozenset(c["id"] for c in asked)
        elif role == "tool":
            call_id = str(message.get("tool_call_id", ""))
            name, arguments = asked_for.get(call_id, (str(message.get("name", "")), {}))
            content = str(message.get("content") or "")
            outcomes.append(Outcome(call_id, name, arguments, content, bool(message.get("is_error"))))
    return Conversation(
        question=question,
        context=context,
        turn=turns + 1,
        offered=frozenset(t.name for t in request.tools),
        may_call=request.tool_choice != "none",
        outcomes=tuple(outcomes),
        last_calls=last_calls,
    )


def _question_and_context(content: str) -> tuple[str, dict[str, str]]:
    lines, context = [], {}
    for line in content.splitlines():
        found = _CONTEXT.match(line)
        if found is None:
            lines.append(line)
            continue
        for pair in re.split(r"[\s,;]+", found.group(1).strip()):
            key, sep, value = pair.partition("=")
            if sep and key:
                context[key.lower()] = value
    return "\n".join(lines).strip(), context


def _arguments(text: str) -> Mapping[str, Any]:
    parsed = _json(text)
    return parsed if isinstance(parsed, dict) else {}


# -- the results, read as the tools' types ---------------------------------------------------------
def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def result_of(outcome: Outcome | None) -> Any:
    """The result's JSON; ``{"result": x}`` is unwrapped, as MCP wraps a result that is not an object."""
    value = _json(outcome.content) if outcome else None
    if isinstance(value, dict) and set(value) == {"result"}:
        return value["result"]
    return value


def read_invoices(outcome: Outcome | None) -> list[Invoice] | None:
    try:
        return _INVOICES.validate_python(result_of(outcome)) if outcome else None
    except ValidationError:
        return None


def read_subscription(outcome: Outcome | None) -> Subscription | None:
    try:
        return Subscription.model_validate(result_of(outcome)) if outcome else None
    except ValidationError:
        return None


def read_docs(outcome: Outcome | None) -> DocSearch | None:
    try:
        return DocSearch.model_validate(result_of(outcome)) if outcome else None
    except ValidationError:
        return None


def reason(outcome: Outcome) -> str:
    """Why a call failed: a JSON error's reason or message, else the text itself."""
    value = result_of(outcome)
    if isinstance(value, dict):
        for key in ("reason", "message", "error"):
            if value.get(key):
                return str(value[key])
    return outcome.content.strip() or "no reason given"
