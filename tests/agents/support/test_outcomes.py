"""The demo's summary arithmetic, from decoded terminal records."""

from agents.support.outcomes import load_tickets, outcome_of, summarize


def step(stage: str, ms: float, model: str = "", cost: float = 0.0) -> dict[str, object]:
    return {"stage": stage, "latency_ms": ms, "model": model, "cost_usd": cost}


def test_the_bundled_tickets_cover_every_route() -> None:
    tickets = load_tickets()
    assert len(tickets) >= 50
    assert {t.expect_route for t in tickets} == {"rag", "direct", "cache", "rejected"}
    first_wave = {t.body for t in tickets if t.wave == 1}
    assert all(t.body in first_wave for t in tickets if t.expect_route == "cache")


def test_summary_counts_and_percentiles() -> None:
    answered = {
        "route": "rag",
        "answer": "a",
        "latency_ms": 100.0,
        "cost_usd": 0.5,
        "degraded": False,
        "steps": [
            step("classify", 2),
            {**step("generate", 50, "p/big", 0.5), "tier": "simple", "cost_if_largest_usd": 2.0},
        ],
    }
    rejected = {"reasons": ["threat"], "latency_ms": 10.0, "cost_usd": 0.0, "steps": [step("classify", 4)]}
    letter = {"error_type": "undecodable", "error_message": "not Avro"}
    outcomes = [
        outcome_of("a", "support.responses", answered, 0, 100),
        outcome_of("b", "support.rejected", rejected, 0, 10),
        outcome_of("c", "support.requests.dlq", letter, 1000, 1003),
    ]
    s = summarize(outcomes, elapsed_s=2.0)
    assert s.throughput == 1.5 and s.total_cost_usd == 0.5 and s.degraded == 0
    assert s.by_topic == {"support.responses": 1, "support.rejected": 1, "support.requests.dlq": 1}
    assert s.by_route == {"rag": 1, "rejected": 1, "(dead letter)": 1}
    assert s.stage_ms["classify"] == (3.0, 3.9, 2) and s.stage_ms["generate"] == (50, 50, 1)
    assert s.cost_by_model == {"p/big": 0.5}
    assert outcomes[2].text == "undecodable: not Avro" and outcomes[2].latency_ms == 3
    assert s.end_to_end_ms[0] == 55.0  # of answered and rejected requests, not dead letters
    assert s.tiers == {"simple": 1} and s.saving_usd == 1.5
