"""The support pipeline's decisions, without I/O."""

from agents.support.routing import (
    Budget,
    answer_key,
    cited_numbers,
    degraded_answer,
    plan_retrieval,
    route_ticket,
)


def test_routes() -> None:
    assert route_ticket("how_to", 0.9).route == "rag"
    assert route_ticket("feedback", 0.9).route == "direct"
    unsure = route_ticket("cancellation", 0.3)
    assert unsure.route == "rag" and "unsure" in unsure.reason
    assert route_ticket("billing", 0.9, cached=True).route == "cache"
    blocked = route_ticket("billing", 0.9, blocked_because=["threat"], cached=True)
    assert blocked.route == "rejected" and blocked.reason == "threat"  # blocking wins over the cache


def test_the_cache_key_ignores_case_and_spacing_but_not_scope() -> None:
    assert answer_key("How do I  reset\nmy password?") == answer_key("how do i reset my password?")
    assert answer_key("q", "run-1") != answer_key("q", "run-2")


def test_budget_arithmetic() -> None:
    assert Budget(None).allows(100) and not Budget(None).spent and Budget(None).cap(5) == 5
    b = Budget(1.5)
    assert b.allows(1.5) and not b.allows(1.6) and b.cap(5, reserve_s=1.0) == 0.5 and b.cap(0.2) == 0.2
    assert Budget(-0.1).spent and Budget(-0.1).cap(5) == 0.0


def test_the_dense_half_is_skipped_when_the_budget_is_short() -> None:
    full = plan_retrieval(Budget(6.0))
    assert full.mode == "hybrid" and full.reason == "" and full.timeout_s == 1.0
    assert plan_retrieval(Budget(None)).mode == "hybrid"
    short = plan_retrieval(Budget(1.2))
    assert short.mode == "bm25" and "1.20s left" in short.reason and short.timeout_s < 1.0


def test_citations_are_read_in_order_and_out_of_range_markers_dropped() -> None:
    assert cited_numbers("a [2] b [1] c [2] d [7] [0]", sources=3) == [2, 1]


def test_a_degraded_answer_links_what_retrieval_found() -> None:
    assert "agent will follow up" in degraded_answer([])
    text = degraded_answer([("Reset a password", "https://d/pw")])
    assert "Reset a password (https://d/pw) [1]" in text
