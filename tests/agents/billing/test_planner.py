"""The local planner turn by turn, over conversations built the way the agent loop builds them.

The calls it asks for run against the real stand-in billing system and the real docs search
(:func:`run`), so a planner that misreads their results fails here; error and denial results
are written by hand, as the loop's tool and approval stages would send them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import to_json

from agents.billing.accounts import RefundRefused, SampleBillingSystem
from agents.billing.docs import search_docs
from agents.billing.planner import MODEL, PLANNER_MODELS, plan_turn, question_kind
from agents.gateway.providers.local import LocalProvider, LocalTurn
from agents.gateway.providers.protocol import ChatRequest, ToolCall, ToolSpec

ALL_TOOLS = ("lookup_invoices", "get_subscription", "search_docs", "issue_refund")
TWICE = "I was charged twice this month, can you fix it?"
REFUND_POLICY = ('"Refund policy"', "https://docs.lumen.example/billing/refunds")


@pytest.fixture
def billing(tmp_path: Path) -> SampleBillingSystem:
    return SampleBillingSystem(tmp_path)


class Chat:
    """One request's conversation: the question with its context line, then each turn's
    assistant message and tool results."""

    def __init__(self, question: str, account: str | None = "A-1001", tools: tuple[str, ...] = ALL_TOOLS):
        context = f"\nContext: account={account}" if account else ""
        self.messages: list[dict[str, Any]] = [{"role": "user", "content": question + context}]
        self.tools = tuple(ToolSpec(name, f"the {name} tool") for name in tools)

    def request(self, tool_choice: str | None = None) -> ChatRequest:
        return ChatRequest(
            model=MODEL, messages=list(self.messages), tools=self.tools, tool_choice=tool_choice
        )

    def plan(self) -> LocalTurn:
        turn = plan_turn(self.request())
        calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls]
        self.messages.append({"role": "assistant", "content": turn.text, "tool_calls": calls})
        return turn

    def results(self, turn: LocalTurn, billing: SampleBillingSystem, errors: Mapping[str, str] = {}) -> None:
        """Each call's result: ``errors`` (tool name -> content) fail, the others run for real."""
        for call in turn.tool_calls:
            failed = call.name in errors
            content = errors[call.name] if failed else run(call, billing)
            self.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "name": call.name,
                    "content": content,
                    "is_error": failed,
                }
            )


def run(call: ToolCall, billing: SampleBillingSystem) -> str:
    """What a tool stage would answer: the function's return value as JSON. The idempotency key
    is the stage's call id, which names the request (the planner's ids are per conversation)."""
    arguments = json.loads(call.arguments)
    value: Any
    if call.name == "lookup_invoices":
        value = billing.lookup_invoices(**arguments)
    elif call.name == "get_subscription":
        value = billing.get_subscription(**arguments)
    elif call.name in ("search_docs", "kb_search"):
        value = search_docs(**arguments)
    elif call.name == "issue_refund":
        value = billing.issue_refund(**arguments, idempotency_key=f"req-1:{call.id}")
    else:
        raise AssertionError(f"the planner called {call.name}, which no test offers")
    return to_json(value).decode()


def calls(turn: LocalTurn) -> list[tuple[str, str, dict[str, Any]]]:
    assert turn.text == "", "a turn of calls carries no text"
    return [(c.id, c.name, json.loads(c.arguments)) for c in turn.tool_calls]


def answer(turn: LocalTurn) -> str:
    assert turn.tool_calls == (), f"expected an answer, got calls {turn.tool_calls}"
    assert turn.text
    return turn.text


def to_refund(chat: Chat, billing: SampleBillingSystem) -> LocalTurn:
    """Turns 1 and 2 of the double charge on A-1001, every tool working: the refund call."""
    chat.results(chat.plan(), billing)
    return chat.plan()


# -- a double charge, start to finish --------------------------------------------------------------
def test_turn_one_looks_up_the_account_and_searches_the_docs_in_parallel() -> None:
    assert calls(Chat(TWICE).plan()) == [
        ("plan-1-1", "lookup_invoices", {"account": "A-1001"}),
        ("plan-1-2", "get_subscription", {"account": "A-1001"}),
        ("plan-1-3", "search_docs", {"query": TWICE}),
    ]


def test_a_duplicate_charge_gets_one_refund_call_for_the_later_invoice(billing: SampleBillingSystem) -> None:
    assert calls(to_refund(Chat(TWICE), billing)) == [
        ("plan-2-1", "issue_refund", {"account": "A-1001", "invoice_id": "INV-5104", "amount_usd": 49.0})
    ]


def test_after_the_refund_the_answer_names_it_and_cites_the_doc(billing: SampleBillingSystem) -> None:
    chat = Chat(TWICE)
    chat.results(to_refund(chat, billing), billing)
    text = answer(chat.plan())
    (refund,) = billing.refunds()
    assert f"refund {refund.id}" in text
    assert "I refunded $49.00 for invoice INV-5104" in text
    assert "invoices INV-5103 (2026-11-15) and INV-5104 (2026-11-16)" in text
    assert all(part in text for part in REFUND_POLICY)
    assert billing.executions == {"req-1:plan-2-1": 1}


@pytest.mark.parametrize(
    ("denial", "why"),
    [
        (
            '{"error_type": "denied", "reason": "the card was already credited"}',
            "the card was already credited",
        ),
        ("denied: nobody decided in time", "denied: nobody decided in time"),
    ],
    ids=["json", "text"],
)
def test_a_denied_refund_is_answered_as_not_issued(
    billing: SampleBillingSystem, denial: str, why: str
) -> None:
    chat = Chat(TWICE)
    chat.results(to_refund(chat, billing), billing, errors={"issue_refund": denial})
    text = answer(chat.plan())
    assert text.startswith("No refund was issued: the refund of $49.00 for invoice INV-5104 was not approved")
    assert f"({why})" in text
    assert "A person from billing will follow up" in text
    assert billing.refunds() == []


# -- errors ----------------------------------------------------------------------------------------
def test_a_failed_call_is_made_once_more_with_a_new_id(billing: SampleBillingSystem) -> None:
    chat = Chat(TWICE)
    chat.results(chat.plan(), billing, errors={"get_subscription": "timeout after 5s"})
    assert calls(chat.plan()) == [("plan-2-1", "get_subscription", {"account": "A-1001"})]


def test_a_second_failure_is_left_out_and_named_in_the_answer(billing: SampleBillingSystem) -> None:
    chat = Chat(TWICE)
    for _ in range(2):
        chat.results(chat.plan(), billing, errors={"get_subscription": "timeout after 5s"})
    refund = chat.plan()
    assert [name for _, name, _ in calls(refund)] == ["issue_refund"]
    chat.results(refund, billing)
    text = answer(chat.plan())
    assert "I refunded $49.00 for invoice INV-5104" in text
    assert "I could not check the subscription (get_subscription failed: timeout after 5s)." in text


def test_without_the_invoices_nothing_is_refunded_and_the_answer_says_why(
    billing: SampleBillingSystem,
) -> None:
    chat = Chat(TWICE)
    for _ in range(2):
        chat.results(chat.plan(), billing, errors={"lookup_invoices": "billing system unavailable"})
    text = answer(chat.plan())
    assert (
        "I could not check the invoices of A-1001 (lookup_invoices failed: billing system unavailable)"
        in text
    )
    assert billing.calls == {}


def test_a_failed_refund_is_tried_once_more_then_answered_as_unconfirmed(
    billing: SampleBillingSystem,
) -> None:
    chat = Chat(TWICE)
    chat.results(to_refund(chat, billing), billing, errors={"issue_refund": "connection reset"})
    again = chat.plan()
    assert calls(again) == [
        ("plan-3-1", "issue_refund", {"account": "A-1001", "invoice_id": "INV-5104", "amount_usd": 49.0})
    ]
    chat.results(again, billing, errors={"issue_refund": "connection reset"})
    text = answer(chat.plan())
    assert "I could not confirm a refund of $49.00 for invoice INV-5104 (connection reset)" in text


@pytest.mark.parametrize(
    "unknown",
    [
        "unknown_outcome: issue_refund was started for this call before its worker stopped; it is not "
        "run again (it has side effects), so whether it took effect is unknown: check before retrying",
        "unknown_outcome: issue_refund timed out after 10s; whether it took effect is unknown",
    ],
    ids=["worker-stopped", "timeout"],
)
def test_a_refund_of_unknown_outcome_is_never_retried_and_left_to_a_person(
    billing: SampleBillingSystem, unknown: str
) -> None:
    """The refund ran (its worker stopped before it replied): a retry would carry a new call id,
    a new idempotency key, so only the billing system's own check would stop a second refund."""
    chat = Chat(TWICE)
    first = to_refund(chat, billing)
    run(first.tool_calls[0], billing)
    chat.results(first, billing, errors={"issue_refund": unknown})
    text = answer(chat.plan())
    assert text.startswith(
        "I could not confirm whether the refund of $49.00 for invoice INV-5104 was issued (unknown_outcome: "
    )
    assert "A person from billing will check it and follow up with you." in text
    assert "No refund was issued" not in text
    assert billing.executions == {"req-1:plan-2-1": 1}


def test_a_read_of_unknown_outcome_is_not_retried_either(billing: SampleBillingSystem) -> None:
    chat = Chat(TWICE)
    unknown = "unknown_outcome: get_subscription's MCP server went away during the call"
    chat.results(chat.plan(), billing, errors={"get_subscription": unknown})
    assert [name for _, name, _ in calls(chat.plan())] == ["issue_refund"]


def test_a_retry_after_a_lost_reply_cannot_refund_twice(billing: SampleBillingSystem) -> None:
    """The refund ran but its reply was lost: the retry has a new call id (a new idempotency
    key), and the billing system refuses a second refund of the invoice."""
    chat = Chat(TWICE)
    first = to_refund(chat, billing)
    run(first.tool_calls[0], billing)
    chat.results(first, billing, errors={"issue_refund": "timeout: no reply"})
    retry = chat.plan()
    (call,) = retry.tool_calls
    with pytest.raises(RefundRefused, match="already refunded") as refused:
        run(call, billing)
    chat.results(retry, billing, errors={"issue_refund": str(refused.value)})
    text = answer(chat.plan())
    assert "I could not confirm a refund" in text and "already refunded" in text
    assert sum(billing.executions.values()) == 1


# -- no duplicate, how-to, missing tools -----------------------------------------------------------
def test_no_duplicate_explains_the_charges_and_cites_the_doc(billing: SampleBillingSystem) -> None:
    question = "I think I was charged twice in November"
    chat = Chat(question, account="A-1004")
    chat.results(chat.plan(), billing)
    text = answer(chat.plan())
    assert text.startswith("I found no duplicate charge on account A-1004.")
    assert "- INV-5402: $49.00 for 2026-11, charged 2026-11-20, failed" in text
    assert "- INV-5403: $49.00 for 2026-11, charged 2026-11-23, paid" in text
    assert "INV-5402 failed, so nothing was charged for it." in text
    assert "The subscription: Pro monthly at $49.00, active, renews on 2026-12-20." in text
    best = search_docs(question).hits[0]
    assert f'See "{best.title}" ({best.url}).' in text
    assert billing.calls == {}


def test_a_cancelled_subscription_is_said_not_to_renew(billing: SampleBillingSystem) -> None:
    chat = Chat("Why was I billed in September?", account="A-1003")
    chat.results(chat.plan(), billing)
    assert "Starter monthly at $19.00, cancelled, does not renew." in answer(chat.plan())


def test_a_how_to_question_only_searches_the_docs_and_answers_from_the_best_hit(
    billing: SampleBillingSystem,
) -> None:
    question = "How do I add a VAT number to my invoices?"
    chat = Chat(question)
    turn = chat.plan()
    assert calls(turn) == [("plan-1-1", "search_docs", {"query": question})]
    chat.results(turn, billing)
    text = answer(chat.plan())
    assert text.startswith('From the docs, "Adding a VAT number or tax ID": Add your VAT number')
    assert text.endswith("(https://docs.lumen.example/billing/vat-tax-id)")


def test_the_mcp_servers_search_is_used_when_search_docs_is_not_offered(billing: SampleBillingSystem) -> None:
    chat = Chat(TWICE, tools=("lookup_invoices", "get_subscription", "kb_search", "issue_refund"))
    turn = chat.plan()
    assert calls(turn)[2] == ("plan-1-3", "kb_search", {"query": TWICE})
    chat.results(turn, billing)
    chat.results(chat.plan(), billing)
    assert all(part in answer(chat.plan()) for part in REFUND_POLICY)


def test_a_how_to_asks_the_docs_mcp_server_and_a_billing_problem_the_in_process_search() -> None:
    chat = Chat("How do I cancel?", tools=("search_docs", "kb_search"))
    assert [name for _, name, _ in calls(chat.plan())] == ["kb_search"]
    billing = Chat(TWICE, tools=("lookup_invoices", "get_subscription", "search_docs", "kb_search"))
    assert [name for _, name, _ in calls(billing.plan())][2] == "search_docs"


def test_a_result_wrapped_the_mcp_way_is_read(billing: SampleBillingSystem) -> None:
    chat = Chat(TWICE)
    turn = chat.plan()
    wrapped = json.dumps({"result": json.loads(run(turn.tool_calls[0], billing))})
    chat.results(turn, billing)
    chat.messages[2]["content"] = wrapped  # the lookup_invoices result
    assert [name for _, name, _ in calls(chat.plan())] == ["issue_refund"]


def test_without_lookup_invoices_the_planner_says_so_and_calls_nothing() -> None:
    text = answer(Chat(TWICE, tools=("get_subscription", "search_docs", "issue_refund")).plan())
    assert "the lookup_invoices tool is not offered to me" in text


def test_without_get_subscription_the_rest_runs_and_the_answer_says_so(billing: SampleBillingSystem) -> None:
    chat = Chat(TWICE, tools=("lookup_invoices", "search_docs", "issue_refund"))
    turn = chat.plan()
    assert [name for _, name, _ in calls(turn)] == ["lookup_invoices", "search_docs"]
    chat.results(turn, billing)
    chat.results(chat.plan(), billing)
    assert "I could not check the subscription (get_subscription is not offered)." in answer(chat.plan())


def test_a_duplicate_without_issue_refund_is_reported_for_a_person(billing: SampleBillingSystem) -> None:
    chat = Chat(TWICE, tools=("lookup_invoices", "get_subscription", "search_docs"))
    chat.results(chat.plan(), billing)
    text = answer(chat.plan())
    assert text.startswith("Account A-1001 was charged twice for 2026-11: invoices INV-5103")
    assert "I cannot refund it myself (the issue_refund tool is not offered to me)" in text


def test_a_how_to_without_a_docs_search_says_so() -> None:
    text = answer(Chat("How do I cancel?", tools=("lookup_invoices",)).plan())
    assert "no docs search (search_docs or kb_search) is offered" in text


def test_a_billing_question_without_an_account_asks_for_it() -> None:
    assert "I need its id (like A-1001)" in answer(Chat(TWICE, account=None).plan())


def test_when_no_calls_are_allowed_the_planner_answers() -> None:
    text = answer(plan_turn(Chat(TWICE).request(tool_choice="none")))
    assert "no more calls are allowed" in text


# -- the model -------------------------------------------------------------------------------------
def test_the_same_conversation_gets_the_same_turn(billing: SampleBillingSystem) -> None:
    chat = Chat(TWICE)
    chat.results(chat.plan(), billing)
    assert plan_turn(chat.request()) == plan_turn(chat.request())


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("I was charged twice", "billing"),
        ("Why is there a double charge on my card?", "billing"),
        ("How do I get a refund for a duplicate payment?", "billing"),
        ("Can you explain my last invoice?", "billing"),
        ("Why was I billed in September?", "billing"),
        ("How do I add a VAT number to my invoices?", "docs"),
        ("Where can I change the timezone?", "docs"),
        ("Can I invite a guest to my workspace?", "docs"),
    ],
)
def test_question_kind(question: str, kind: str) -> None:
    assert question_kind(question) == kind


async def test_the_local_provider_serves_the_planner_by_name() -> None:
    provider = LocalProvider(models=PLANNER_MODELS)
    completion = await provider.complete(Chat(TWICE).request(), timeout_s=5)
    assert completion.model == "local-planner"
    assert completion.finish_reason == "tool_calls"
    assert [c.name for c in completion.tool_calls] == ["lookup_invoices", "get_subscription", "search_docs"]
