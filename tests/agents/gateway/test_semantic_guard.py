import json
from collections import Counter
from pathlib import Path

import pytest

from agents.gateway.semantic_guard import disagreement, terms

PAIRS = Path(__file__).parents[3] / "agents" / "data" / "gateway" / "semantic_pairs.jsonl"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I cancel my subscription?", "how can i cancel my subscription"),
        ("Where do I find my API key?", "where can I find my API key"),
        ("Why was I charged $49 on March 3?", "I was charged $49 on March 3, why?"),
        ("Why is my dashboard not loading?", "my dashboard is not loading, why?"),
        ("How do I upgrade to the Pro plan?", "how do I upgrade to the pro plan"),  # a name, uncapitalised
        ("How do I add 5 seats?", "How do I add five more seats?"),
    ],
)
def test_requests_that_may_share_an_answer(a: str, b: str) -> None:
    assert disagreement(a, b) is None


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("How do I add 3 seats?", "How do I add 5 seats?", "numbers differ: 3 vs 5"),
        ("Why was I charged $49?", "Why was I charged 99 dollars?", "numbers differ: 49 vs 99"),
        ("Was I charged twice?", "Was I charged three times?", "numbers differ: 2 vs 3"),
        ("Invoice for March?", "Invoice for April?", "numbers differ: march vs april"),
        ("Export 1,000 rows", "Export 1000 rows", None),
        ("Why is my invoice in euros?", "Why is my invoice not in euros?", "negation differs"),
        ("Why does it refresh hourly?", "Why doesn't it refresh hourly?", "negation differs"),
        ("Sign in with SSO", "Sign in without SSO", "negation differs"),
        ("I never got the email", "I got the email", "negation differs"),
        ("Why was A-1001 charged?", "Why was A-1006 charged?", "named things differ: a-1001 vs a-1006"),
        (
            "Send it to ap@acme.com",
            "Send it to billing@acme.com",
            "named things differ: ap@acme.com vs billing@acme.com",
        ),
        (
            "Embed on https://acme.com",
            "Embed on https://intranet.acme.com",
            "named things differ: https://acme.com vs https://intranet.acme.com",
        ),
        (
            'Key of project "Growth"?',
            'Key of project "Retention"?',
            "named things differ: growth vs retention",
        ),
        (
            "Does the Pro plan include SSO?",
            "Does the Business plan include SSO?",
            "named things differ: pro vs business",
        ),
        ("Export as csv?", "Export as PDF?", "named things differ: csv vs pdf"),
        (
            "Can I be billed monthly instead of yearly?",
            "Can I be billed yearly instead of monthly?",
            "direction differs: year to month vs month to year",
        ),
        (
            "Upgrade from Starter to Pro",
            "Upgrade from the Pro plan to Starter",
            "direction differs: starter to pro vs pro to starter",
        ),
        ("Switch from monthly to yearly", "Switch to yearly instead of monthly", None),
        (
            "How do I cancel my subscription?",
            "How do I cancel an invoice?",
            "subject differs: subscription vs invoice",
        ),
        ("How do I add a seat?", "How do I remove a seat?", "subject differs: add vs remove"),
        (
            "How do I reset my password?",
            "How do I reset my password on mobile?",
            "subject differs: nothing vs mobile",
        ),
    ],
)
def test_each_reason(a: str, b: str, reason: str | None) -> None:
    assert disagreement(a, b) == reason
    if reason is not None:  # symmetric up to the order of the sides
        assert disagreement(b, a) is not None


def test_sentence_start_is_not_a_name_but_an_acronym_is() -> None:
    found = terms("Dashboards are slow. Exports fail too. SSO works")
    assert found.names == {"sso"}
    assert set(found.words) >= {"dashboard", "export"}
    assert terms("May I export in May?").numbers == {"may"}


def test_a_word_similarity_lets_synonyms_agree() -> None:
    def similar(a: str, b: str) -> float:
        return 1.0 if {a, b} == {"copy", "duplicate"} else 0.0

    assert disagreement("How do I copy a dashboard?", "How do I duplicate a dashboard?") is not None
    assert disagreement("How do I copy a dashboard?", "How do I duplicate a dashboard?", similar) is None


def test_the_shipped_pairs() -> None:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    assert all(set(r) == {"kind", "split", "a", "b", "differs"} for r in rows)
    kinds = Counter(r["kind"] for r in rows)
    assert (
        kinds["paraphrase"] >= 60 and kinds["near_miss"] >= 60 and set(kinds) == {"paraphrase", "near_miss"}
    )
    assert Counter((r["kind"], r["split"]) for r in rows).keys() == {
        (k, s) for k in ("paraphrase", "near_miss") for s in ("tune", "heldout")
    }
    assert all(r["a"].strip() and r["b"].strip() and r["a"] != r["b"] for r in rows)
    assert len({(r["a"], r["b"]) for r in rows}) == len(rows)
    differs = {"numbers", "negation", "named", "subject", "order"}
    assert all((r["differs"] in differs) == (r["kind"] == "near_miss") for r in rows)
