"""What the planner reads from a chat request: the question, its context line, the outcomes."""

from __future__ import annotations

from typing import Any

from agents.billing.conversation import read_conversation, read_invoices, reason
from agents.gateway.providers.protocol import ChatRequest, ToolSpec


def _request(
    *messages: dict[str, Any], tools: tuple[str, ...] = (), tool_choice: str | None = None
) -> ChatRequest:
    specs = tuple(ToolSpec(t, t) for t in tools)
    return ChatRequest(model="local-planner", messages=list(messages), tools=specs, tool_choice=tool_choice)


def _user(content: str) -> dict[str, Any]:
    return {"role": "user", "content": content}


def _asked(call_id: str, name: str, arguments: str = "{}") -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": call_id, "name": name, "arguments": arguments}],
    }


def _result(call_id: str, content: str, is_error: bool = False) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "name": "", "content": content, "is_error": is_error}


def test_the_context_line_is_parsed_and_kept_out_of_the_question() -> None:
    read = read_conversation(_request(_user("Context: account=A-1002, Plan=pro\nWhy two charges?\n")))
    assert read.question == "Why two charges?"
    assert read.context == {"account": "A-1002", "plan": "pro"}
    assert (read.turn, read.outcomes, read.may_call) == (1, (), True)


def test_only_the_first_user_message_holds_the_question() -> None:
    read = read_conversation(
        _request(
            _user("I was charged twice\nContext: account=A-1001"),
            {"role": "assistant", "content": "Which month?"},
            _user("November\nContext: account=A-1003"),
        )
    )
    assert (read.question, read.context["account"], read.turn) == ("I was charged twice", "A-1001", 2)


def test_each_result_is_matched_to_its_call_and_the_last_turn_is_known() -> None:
    read = read_conversation(
        _request(
            _user("refund?"),
            _asked("c1", "lookup_invoices", '{"account": "A-1001"}'),
            _result("c1", "boom", is_error=True),
            _asked("c2", "lookup_invoices", "not json"),
            _result("c2", "[]"),
            tools=("lookup_invoices",),
            tool_choice="none",
        )
    )
    first, second = read.outcomes
    assert (first.call_id, first.tool, first.arguments, first.is_error) == (
        "c1",
        "lookup_invoices",  # the call's name, whatever the result message says
        {"account": "A-1001"},
        True,
    )
    assert second.arguments == {}  # broken arguments read as none
    assert read.last_calls == {"c2"} and read.turn == 3 and not read.may_call
    assert read.succeeded("lookup_invoices") is second and read.failures("lookup_invoices") == []
    assert read_invoices(second) == []


def test_a_result_that_is_not_the_tools_type_reads_as_none_and_an_error_gives_its_reason() -> None:
    read = read_conversation(
        _request(
            _user("q"),
            _asked("c1", "lookup_invoices"),
            _result("c1", '{"message": "no account", "code": 4}', is_error=True),
        )
    )
    (outcome,) = read.outcomes
    assert read_invoices(outcome) is None
    assert reason(outcome) == "no account"
    assert read.failures("lookup_invoices") == [outcome]
