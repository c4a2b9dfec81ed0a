import pytest

from agents.gateway.pricing import Price, PriceTable, Usage
from agents.gateway.tiers import Tier, TierLedger, choose_tier, complexity_score

TIERS = (Tier("simple", "small", 0.2), Tier("medium", "medium", 0.45), Tier("complex", "large", 1.0))


def test_simple_questions_score_low_and_reasoning_scores_high() -> None:
    simple = complexity_score("How do I reset my password?")
    hard = complexity_score(
        "Why does the sync fail after the upgrade? Explain the root cause step by step and compare "
        "the trade-offs of rolling back versus patching.\n1. logs\n2. config\n```\nERROR sync\n```",
        intent="technical",
    )
    assert simple < 0.2 < 0.45 < hard <= 1.0
    assert choose_tier(simple, TIERS).name == "simple" and choose_tier(hard, TIERS).name == "complex"
    assert choose_tier(0.3, TIERS).name == "medium"


def test_the_ledger_reports_shares_and_the_saving_against_always_large() -> None:
    prices = PriceTable({"small": Price(0.15, 0.6), "large": Price(3.0, 15.0)})
    ledger = TierLedger(prices, largest="large")
    usage = Usage(1000, 200)
    for _ in range(3):
        ledger.record(TIERS[0], usage, prices.cost("small", usage))
    ledger.record(TIERS[2], usage, prices.cost("large", usage))
    assert ledger.shares() == {"simple": 0.75, "complex": 0.25}
    assert ledger.cost_if_largest_usd == pytest.approx(4 * prices.cost("large", usage))
    assert ledger.saving_usd == pytest.approx(3 * (prices.cost("large", usage) - prices.cost("small", usage)))
