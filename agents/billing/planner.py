"""The ``local-planner`` model: rules over the billing tools, offline and deterministic.

It is a small program, not an LLM. Served by the local provider as a :class:`ToolModel`, it reads
what a hosted model would get (the tools offered, the conversation so far) and decides the next
turn, so the billing agent's loop runs end to end with no provider. The rules, in order:

1. The first user message holds the question and a context line the agent adds
   (``Context: account=A-1001``, ``key=value`` pairs).
2. A billing question (charged twice, double, duplicate, refund, invoice, bill) for an account:
   turn 1 calls ``lookup_invoices`` and ``get_subscription`` and searches the docs with the
   question, in parallel. A how-to ("how do I add a VAT number to my invoices", unless it names
   a problem such as a refund) or any other question only searches the docs. The docs search
   is ``search_docs`` if offered, else the docs MCP server's ``kb_search``.
3. A call whose result is an error is made again once, with a new id; a second error and the
   planner goes on without that tool and says what it could not check. An ``unknown_outcome:``
   result is never made again: the call may have taken effect, and a new id is a new
   idempotency key, so a retry could refund twice.
4. Two paid invoices for the same period and amount: one call of ``issue_refund`` for the later
   one, its whole amount. The idempotency key is not the model's to choose: the tool stage
   passes its own call id.
5. A refund result: the answer names the refund, the amount and the invoice. A denied refund
   (an error result that says so): no refund was issued, why, and that a person will follow up.
   A refund of unknown outcome: it could not be confirmed either way, and a person will check.
   No duplicate: the answer lists the charges found. Each answer cites the doc found first.
6. Only offered tools are called; a needed one missing, no calls allowed
   (``tool_choice="none"``) or no account in the context, and the planner answers saying so.

Call ids are ``plan-<turn>-<n>``, unique within one conversation only: whoever runs the calls
keys side effects on ids of its own that include the request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.billing.accounts import DuplicateCharge, Invoice, find_duplicate_charges
from agents.billing.conversation import (
    Conversation,
    question_kind,
    read_conversation,
    read_docs,
    read_invoices,
    read_subscription,
    reason,
    result_of,
)
from agents.gateway.providers.local import LocalTurn, ToolModel
from agents.gateway.providers.protocol import ChatRequest, ToolCall

__all__ = ["MODEL", "PLANNER_MODELS", "plan", "plan_turn", "question_kind"]


MODEL = "local-planner"
INVOICES, SUBSCRIPTION, REFUND = "lookup_invoices", "get_subscription", "issue_refund"
MAX_ATTEMPTS = 2  # a failed call is made once more, then the planner goes on without it


# -- the decisions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Call:
    tool: str
    arguments: Mapping[str, Any]


def plan(conversation: Conversation) -> LocalTurn:
    steps = (_billing if question_kind(conversation.question) == "billing" else _docs)(conversation)
    if isinstance(steps, str):
        return LocalTurn(text=steps)
    if not conversation.may_call:
        names = ", ".join(sorted({c.tool for c in steps}))
        return LocalTurn(
            text=f"I could not finish: the next step was to call {names}, and no more calls are allowed."
        )
    return LocalTurn(
        tool_calls=tuple(
            ToolCall(f"plan-{conversation.turn}-{n}", c.tool, json.dumps(dict(c.arguments)))
            for n, c in enumerate(steps, start=1)
        )
    )


def plan_turn(request: ChatRequest) -> LocalTurn:
    return plan(read_conversation(request))


def _retries(conversation: Conversation) -> list[_Call]:
    """The previous turn's failed calls that have an attempt left (a denial is an answer, and
    an unknown outcome is final: the call may have taken effect)."""
    return [
        _Call(o.tool, o.arguments)
        for o in conversation.outcomes
        if o.call_id in conversation.last_calls
        and o.is_error
        and not o.unknown
        and not (o.tool == REFUND and o.denied)
        and len([a for a in conversation.attempts(o.tool) if a.is_error]) < MAX_ATTEMPTS
        and conversation.succeeded(o.tool) is None
    ]


def _docs(conversation: Conversation) -> list[_Call] | str:
    tool = conversation.docs_tool
    if tool is None:
        return "I cannot answer from the docs: no docs search (search_docs or kb_search) is offered to me."
    if not conversation.outcomes:
        return [_Call(tool, {"query": conversation.question})]
    return _retries(conversation) or _docs_answer(conversation)


def _billing(conversation: Conversation) -> list[_Call] | str:
    account = conversation.context.get("account")
    if not account:
        return "Which account is this about? I need its id (like A-1001) to look at the charges."
    if INVOICES not in conversation.offered:
        return (
            f"I cannot look at the charges of {account}: the {INVOICES} tool is not offered to me. "
            "A person will follow up."
        )
    if not conversation.outcomes:
        calls = [_Call(INVOICES, {"account": account})]
        if SUBSCRIPTION in conversation.offered:
            calls.append(_Call(SUBSCRIPTION, {"account": account}))
        if conversation.docs_tool:
            calls.append(_Call(conversation.docs_tool, {"query": conversation.question}))
        return calls
    retries = _retries(conversation)
    if retries:
        return retries
    if conversation.attempts(REFUND):
        return _refund_answer(conversation, account)
    invoices = read_invoices(conversation.succeeded(INVOICES))
    if invoices is None:
        failed = conversation.failures(INVOICES)
        why = f"{INVOICES} failed: {reason(failed[-1])}" if failed else "I could not read its result"
        return (
            f"I could not check the invoices of {account} ({why}), so I cannot say whether you were "
            f"charged twice. A person will follow up.{_unchecked(conversation)}"
        )
    duplicates = find_duplicate_charges(invoices)
    if not duplicates:
        return _charges_answer(conversation, account, invoices)
    if REFUND not in conversation.offered:
        return (
            f"{_duplicate_line(account, duplicates[0])} I cannot refund it myself (the {REFUND} tool "
            f"is not offered to me); a person will follow up.{_cite(conversation)}{_unchecked(conversation)}"
        )
    duplicate = duplicates[0].duplicate
    return [
        _Call(REFUND, {"account": account, "invoice_id": duplicate.id, "amount_usd": duplicate.amount_usd})
    ]


# -- the answers -----------------------------------------------------------------------------------
def _usd(amount: float) -> str:
    return f"${amount:,.2f}"


def _cite(conversation: Conversation) -> str:
    docs = read_docs(conversation.succeeded(conversation.docs_tool))
    if docs is None or not docs.hits:
        return ""
    return f' See "{docs.hits[0].title}" ({docs.hits[0].url}).'


def _unchecked(conversation: Conversation) -> str:
    """What else could not be checked (the subscription, the docs): tools that failed every
    attempt, or were not offered. Without the invoices there is no answer to add this to."""
    notes = []
    for tool, what in ((SUBSCRIPTION, "the subscription"), (conversation.docs_tool, "the docs")):
        failed = conversation.failures(tool)
        if failed:
            notes.append(f"{what} ({tool} failed: {reason(failed[-1])})")
    if SUBSCRIPTION not in conversation.offered:
        notes.append(f"the subscription ({SUBSCRIPTION} is not offered)")
    if conversation.docs_tool is None:
        notes.append("the docs (no docs search is offered)")
    return f" I could not check {'; '.join(notes)}." if notes else ""


def _duplicate_line(account: str, charge: DuplicateCharge) -> str:
    first, second = charge.original, charge.duplicate
    return (
        f"Account {account} was charged twice for {first.period}: invoices {first.id} "
        f"({first.charged_on}) and {second.id} ({second.charged_on}), {_usd(second.amount_usd)} each."
    )


def _refund_answer(conversation: Conversation, account: str) -> str:
    outcome = conversation.attempts(REFUND)[-1]
    invoice, amount = outcome.arguments.get("invoice_id", "?"), float(outcome.arguments.get("amount_usd", 0))
    tail = f"{_cite(conversation)}{_unchecked(conversation)}"
    if outcome.unknown:
        return (
            f"I could not confirm whether the refund of {_usd(amount)} for invoice {invoice} was "
            f"issued ({reason(outcome)}). A person from billing will check it and follow up with you.{tail}"
        )
    if outcome.denied:
        return (
            f"No refund was issued: the refund of {_usd(amount)} for invoice {invoice} was not "
            f"approved ({reason(outcome)}). A person from billing will follow up with you.{tail}"
        )
    if outcome.is_error:
        return (
            f"I could not confirm a refund of {_usd(amount)} for invoice {invoice} ({reason(outcome)}). "
            f"A person from billing will follow up with you.{tail}"
        )
    refund = result_of(outcome)
    refund = refund if isinstance(refund, dict) else {}
    found = find_duplicate_charges(read_invoices(conversation.succeeded(INVOICES)) or [])
    opening = _duplicate_line(account, found[0]) + " " if found else ""
    return (
        f"{opening}I refunded {_usd(float(refund.get('amount_usd', amount)))} for invoice "
        f"{refund.get('invoice_id', invoice)}: refund {refund.get('id', '(no id returned)')}.{tail}"
    )


def _charges_answer(conversation: Conversation, account: str, invoices: Sequence[Invoice]) -> str:
    lines = [f"I found no duplicate charge on account {account}. Its invoices:"]
    lines += [
        f"- {i.id}: {_usd(i.amount_usd)} for {i.period}, charged {i.charged_on}, {i.status}" for i in invoices
    ]
    lines += [f"{i.id} failed, so nothing was charged for it." for i in invoices if i.status == "failed"]
    subscription = read_subscription(conversation.succeeded(SUBSCRIPTION))
    if subscription is not None:
        renews = f"renews on {subscription.renews_on}" if subscription.renews_on else "does not renew"
        lines.append(
            f"The subscription: {subscription.plan} at {_usd(subscription.price_usd)}, "
            f"{subscription.status}, {renews}."
        )
    return "\n".join(lines) + _cite(conversation) + _unchecked(conversation)


def _docs_answer(conversation: Conversation) -> str:
    tool = conversation.docs_tool
    failed = conversation.failures(tool)
    if failed:
        return f"I could not search the docs ({tool} failed: {reason(failed[-1])}), so I have no answer."
    docs = read_docs(conversation.succeeded(tool))
    if docs is None:
        return "I could not read what the docs search returned, so I have no answer from it."
    if not docs.hits:
        return "I found nothing in the docs about that."
    best = docs.hits[0]
    return f'From the docs, "{best.title}": {best.snippet} ({best.url})'


PLANNER_MODELS = {MODEL: ToolModel(turn=plan_turn)}
