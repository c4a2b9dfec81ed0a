"""The agent loop's decisions, without Kafka or a model."""

from __future__ import annotations

import pytest

from agents.gateway.providers.protocol import ToolCall
from agents.loop.records import conversation, cut_result, response_of
from agents.loop.state import (
    Limits,
    ToolInfo,
    Turn,
    UnknownCall,
    absorb_decision,
    absorb_result,
    apply_turn,
    finish,
    limit_reached,
    overdue,
    resend,
    start,
    waiting,
)
from streams.runtime import Record

TOOLS = {
    "lookup": ToolInfo("lookup", "a.tool.lookup"),
    "search": ToolInfo("search", "a.tool.search"),
    "refund": ToolInfo("refund", "a.tool.refund", side_effect=True, requires_approval=True),
}
LIMITS = Limits(max_steps=3, max_consecutive_tool_failures=2, approval_timeout_s=10, tool_timeout_s=5)


def _request() -> Record:
    return {
        "request_id": "r1",
        "tenant": "acme",
        "body": "I was charged twice",
        "context": {"account": "A-1"},
    }


def _turn(*calls: tuple[str, str], text: str = "", cost: float = 0.001) -> Turn:
    return Turn(
        text=text,
        tool_calls=tuple(ToolCall(f"m{i}", name, args) for i, (name, args) in enumerate(calls)),
        model="sim/gpt",
        tokens_in=10,
        tokens_out=5,
        cost_usd=cost,
    )


def _result(call_id: str, content: str = "ok", error_type: str = "") -> Record:
    return {
        "request_id": "r1",
        "call_id": call_id,
        "tool": "x",
        "turn": 1,
        "content": content,
        "is_error": bool(error_type),
        "error_type": error_type,
        "source": "tool",
        "ms": 1.0,
        "at_ms": 0,
    }


def _after_first_turn() -> Record:
    state = start(_request(), "a", now=1_000, deadline_ms=0)
    return apply_turn(
        state, _turn(("lookup", '{"account": "A-1"}'), ("search", "{}")), TOOLS, LIMITS, 1_000
    ).state


def test_a_new_request_carries_the_callers_context_into_the_question() -> None:
    state = start(_request(), "a", now=5, deadline_ms=99)
    assert state["messages"][0]["content"] == "I was charged twice\n\nContext: account=A-1"
    assert (state["turn"], state["status"], state["deadline_ms"], state["absorbed"]) == (
        0,
        "thinking",
        99,
        ["request"],
    )


def test_a_turn_with_parallel_calls_sends_each_to_its_tools_topic_and_waits() -> None:
    state = start(_request(), "a", now=1_000, deadline_ms=0)
    outcome = apply_turn(
        state, _turn(("lookup", '{"account": "A-1"}'), ("search", "{}")), TOOLS, LIMITS, 1_000
    )
    assert [(s.topic, s.call_id) for s in outcome.sends] == [
        ("a.tool.lookup", "r1.1.0"),
        ("a.tool.search", "r1.1.1"),
    ]
    written = outcome.state
    assert written["turn"] == 1 and written["status"] == "waiting_tools" and waiting(written)
    assert written["cost_usd"] == pytest.approx(0.001)
    assert written["version"] == state["version"] + 1
    assert [p["model_call_id"] for p in written["pending"]] == ["m0", "m1"]
    assert [s["kind"] for s in written["steps"]] == ["model_turn", "tool_call", "tool_call"]
    assert outcome.answer is None and not outcome.asks and not outcome.replies


def test_a_turn_without_calls_is_the_answer() -> None:
    state = start(_request(), "a", now=1_000, deadline_ms=0)
    outcome = apply_turn(state, _turn(text="Refunded."), TOOLS, LIMITS, 1_000)
    assert outcome.answer == "Refunded." and not waiting(outcome.state)


def test_a_call_of_an_unknown_tool_is_answered_by_the_agent_with_an_error_through_the_results_topic() -> None:
    state = start(_request(), "a", now=1_000, deadline_ms=0)
    outcome = apply_turn(state, _turn(("delete_everything", "{}")), TOOLS, LIMITS, 1_000)
    assert not outcome.sends
    (reply,) = outcome.replies
    assert reply["call_id"] == "r1.1.0" and reply["is_error"] and reply["error_type"] == "unknown_tool"
    assert "lookup, refund, search" in reply["content"]
    taken = absorb_result(outcome.state, reply, LIMITS, 1_001)
    assert taken is not None and taken["consecutive_failures"] == 1 and not waiting(taken)


def test_a_call_that_needs_approval_waits_for_a_decision_with_its_expiry() -> None:
    state = start(_request(), "a", now=1_000, deadline_ms=0)
    outcome = apply_turn(
        state, _turn(("refund", '{"invoice": "I-2"}'), ("lookup", "{}")), TOOLS, LIMITS, 1_000
    )
    (ask,) = outcome.asks
    assert (ask.call_id, ask.tool, ask.expires_ms) == ("r1.1.0", "refund", 11_000)
    assert [s.tool for s in outcome.sends] == ["lookup"]
    assert outcome.state["status"] == "waiting_approval"
    with pytest.raises(UnknownCall, match="no one has approved"):
        absorb_result(outcome.state, _result("r1.1.0"), LIMITS, 1_001)


def test_results_are_taken_in_once_and_the_turn_ends_when_the_last_arrives() -> None:
    state = _after_first_turn()
    one = absorb_result(state, _result("r1.1.1", "docs"), LIMITS, 1_100)
    assert one is not None and waiting(one) and one["status"] == "waiting_tools"
    assert absorb_result(one, _result("r1.1.1", "docs again"), LIMITS, 1_200) is None
    both = absorb_result(one, _result("r1.1.0", "invoices"), LIMITS, 1_300)
    assert both is not None and not waiting(both) and both["status"] == "thinking"
    assert both["absorbed"] == ["request", "result:r1.1.1", "result:r1.1.0"]


def test_a_result_for_a_call_never_asked_for_is_refused_with_the_reason() -> None:
    with pytest.raises(UnknownCall, match=r"r1\.7\.0, which request r1 is not waiting for"):
        absorb_result(_after_first_turn(), _result("r1.7.0"), LIMITS, 1_100)


def test_tool_results_reach_the_model_in_the_order_of_the_calls_whatever_order_they_arrived_in() -> None:
    state = _after_first_turn()
    state = absorb_result(state, _result("r1.1.1", "second"), LIMITS, 1_100) or state
    state = absorb_result(state, _result("r1.1.0", "first"), LIMITS, 1_200) or state
    messages = conversation(state)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in messages[2:]] == ["m0", "m1"]
    assert messages[1]["tool_calls"][0] == {"id": "m0", "name": "lookup", "arguments": '{"account": "A-1"}'}


def test_consecutive_failures_count_until_a_success_and_end_the_request_at_the_limit() -> None:
    state = _after_first_turn()
    state = absorb_result(state, _result("r1.1.0", "boom", "failed"), LIMITS, 1_100) or state
    assert state["consecutive_failures"] == 0  # counted when the turn's calls have all settled
    state = absorb_result(state, _result("r1.1.1", "ok"), LIMITS, 1_100) or state
    assert state["consecutive_failures"] == 0  # a failure, then a success
    state = apply_turn(state, _turn(("lookup", "{}"), ("search", "{}")), TOOLS, LIMITS, 1_200).state
    state = absorb_result(state, _result("r1.2.0", "bad args", "invalid_arguments"), LIMITS, 1_300) or state
    state = absorb_result(state, _result("r1.2.1", "slow", "timeout"), LIMITS, 1_300) or state
    assert limit_reached(state, LIMITS, 1_400) == (
        "consecutive_tool_failures: 2 tool calls failed in a row (limit 2)"
    )


def test_limits_max_steps_cost_and_deadline() -> None:
    state = start(_request(), "a", now=0, deadline_ms=10_000)
    assert limit_reached(state, LIMITS, 1) is None
    assert limit_reached({**state, "turn": 3}, LIMITS, 1) == "max_steps: 3 model turns made (limit 3)"
    dear = Limits(max_cost_usd=0.01)
    assert limit_reached({**state, "cost_usd": 0.02}, dear, 1).startswith("budget_exhausted")  # type: ignore[union-attr]
    assert limit_reached(state, LIMITS, 12_500) == "deadline: the request's time budget ended 2.5s ago"


def test_an_approval_sends_the_call_and_a_denial_becomes_a_result_the_model_reads() -> None:
    state = start(_request(), "a", now=1_000, deadline_ms=0)
    waiting_state = apply_turn(state, _turn(("refund", '{"invoice": "I-2"}')), TOOLS, LIMITS, 1_000).state
    decision = {
        "request_id": "r1",
        "call_id": "r1.1.0",
        "approved": True,
        "reason": "",
        "by": "ana",
        "at_ms": 2,
    }
    approved = absorb_decision(waiting_state, decision, TOOLS, LIMITS, 2_000)
    assert approved is not None
    approved_state, sends = approved
    assert [(s.topic, s.call_id) for s in sends] == [("a.tool.refund", "r1.1.0")]
    assert approved_state["status"] == "waiting_tools" and approved_state["pending"][0]["sent_ms"] == 2_000
    # Its result is due a tool's time after the approval, not by the approval's own deadline.
    assert approved_state["pending"][0]["expires_ms"] == 2_000 + 5_000
    assert absorb_decision(approved_state, {**decision, "approved": False}, TOOLS, LIMITS, 2_100) is None

    denial = {**decision, "approved": False, "reason": "no answer within 10s", "by": "timeout"}
    denied = absorb_decision(waiting_state, denial, TOOLS, LIMITS, 2_000)
    assert denied is not None
    denied_state, sends = denied
    assert sends == () and not waiting(denied_state) and denied_state["consecutive_failures"] == 0
    assert denied_state["messages"][-1]["content"] == (
        "denied by timeout: no answer within 10s; the action was not taken"
    )


def test_the_end_keeps_a_small_done_row_and_the_response_has_every_step() -> None:
    state = _after_first_turn()
    state = absorb_result(state, _result("r1.1.0", "two charges of $20"), LIMITS, 1_100) or state
    state = absorb_result(state, _result("r1.1.1", "boom", "failed"), LIMITS, 1_100) or state
    done, response = finish(state, None, "max_steps: 3 model turns made (limit 3)", 2_000, "result:r1.1.1")
    assert done["status"] == "done" and done["messages"] == [] and done["version"] > state["version"]
    assert done["absorbed"] == ["result:r1.1.1"] and response_of(done, 2_000) == response
    assert response["status"] == "degraded" and response["reason"].startswith("max_steps")
    assert response["answer"].startswith("I could not finish this request (max steps).")
    assert "- lookup: two charges of $20" in response["answer"] and "boom" not in response["answer"]
    assert [s["kind"] for s in response["steps"]][-2:] == ["limit", "answer"]
    assert absorb_result(done, _result("r1.1.0"), LIMITS, 3_000) is None

    _, answered = finish(state, "Refunded $20.", "", 2_000, "result:r1.1.1")
    assert (answered["status"], answered["reason"], answered["answer"]) == ("answered", "", "Refunded $20.")


def test_overdue_calls_and_decisions() -> None:
    state = start(_request(), "a", now=1_000, deadline_ms=0)
    state = apply_turn(state, _turn(("refund", "{}"), ("lookup", "{}")), TOOLS, LIMITS, 1_000).state
    assert overdue(state, 5_999) == ([], [])
    late_results, late_decisions = overdue(state, 11_000)
    assert [p["call_id"] for p in late_results] == ["r1.1.1"]
    assert [p["call_id"] for p in late_decisions] == ["r1.1.0"]


def test_a_long_result_is_cut_before_the_model_reads_it() -> None:
    state = _after_first_turn()
    taken = absorb_result(state, _result("r1.1.0", "x" * 20_000), Limits(max_result_chars=100), 1_100)
    assert taken is not None
    content = taken["messages"][-1]["content"]
    # A result that no tool stage cut (they cut at the limit) is cut here, with room for their note.
    assert content.startswith("x" * 300) and content.endswith(
        "[cut: the tool returned 20,000 characters; the first 300 are kept]"
    )
    once = cut_result("y" * 5_000, 100)
    assert cut_result(once, 300) == once  # a result cut by its tool stage is not cut again


def test_a_waiting_request_sends_again_what_it_may_have_lost() -> None:
    state = start(_request(), "a", now=1_000, deadline_ms=0)
    state = apply_turn(
        state, _turn(("refund", "{}"), ("lookup", "{}"), ("search", "{}")), TOOLS, LIMITS, 1_000
    ).state
    state = absorb_result(state, _result("r1.1.2", "found"), LIMITS, 1_100) or state
    sends, asks = resend(state, TOOLS)
    assert [(s.topic, s.call_id) for s in sends] == [("a.tool.lookup", "r1.1.1")]
    assert [a.call_id for a in asks] == ["r1.1.0"]


def test_the_failure_count_does_not_depend_on_the_order_results_arrive_in() -> None:
    counts = set()
    for order in (("r1.1.0", "r1.1.1"), ("r1.1.1", "r1.1.0")):
        state = _after_first_turn()
        results = {"r1.1.0": _result("r1.1.0", "boom", "failed"), "r1.1.1": _result("r1.1.1", "ok")}
        for call_id in order:
            state = absorb_result(state, results[call_id], LIMITS, 1_100) or state
        counts.add(state["consecutive_failures"])
    assert counts == {0}  # in call order: a failure, then a success


def test_an_error_without_a_type_is_a_failure_and_a_denial_is_not() -> None:
    state = _after_first_turn()
    untyped = {**_result("r1.1.0", "boom"), "is_error": True}
    state = absorb_result(state, untyped, LIMITS, 1_100) or state
    state = absorb_result(state, _result("r1.1.1", "also", "failed"), LIMITS, 1_100) or state
    assert state["consecutive_failures"] == 2


def test_calls_past_the_turns_limit_are_refused_by_the_agent() -> None:
    state = start(_request(), "a", now=1_000, deadline_ms=0)
    many = _turn(*[("lookup", "{}")] * 10)
    outcome = apply_turn(state, many, TOOLS, Limits(max_calls_per_turn=8), 1_000)
    assert len(outcome.sends) == 8
    assert [r["error_type"] for r in outcome.replies] == ["too_many_calls", "too_many_calls"]


def test_an_approval_expires_no_later_than_the_request() -> None:
    state = start(_request(), "a", now=1_000, deadline_ms=4_000)
    outcome = apply_turn(state, _turn(("refund", "{}")), TOOLS, LIMITS, 1_000)
    assert outcome.asks[0].expires_ms == 4_000  # not 1_000 + the 10 s approval timeout
