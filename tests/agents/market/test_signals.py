"""The lexicon reader: each sample headline reads the way a person would read it, negation
flips a phrase, names find symbols when the feed tagged none, and plain text stays neutral."""

import json
from pathlib import Path
from typing import Any

import pytest

from agents.market.signals import DEFAULT_ALIASES, NEUTRAL_BAND, extract_signals, find_symbols

DATA = Path(__file__).resolve().parents[3] / "agents" / "data" / "market"

# id -> (symbol, direction, the phrase that should drive it)
EXPECTED = {
    "n1": ("ACME", "up", "beats estimates"),
    "n2": ("GLBX", "down", "cuts guidance"),
    "n3": ("INTC", "up", "buyback"),
    "n4": ("GLBX", "down", "probe"),
    "n5": ("ACME", "down", "executive departure"),
    "n6": ("UMBR", "up", "wins contract"),
    "n7": ("INTC", "down", "recall"),
    "n8": ("UMBR", "up", "upgrade"),
}


def _news() -> list[dict[str, Any]]:
    lines = (DATA / "news.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_every_titled_sample_line_has_an_expectation() -> None:
    assert sorted(item["id"] for item in _news() if item.get("title")) == sorted(EXPECTED)


@pytest.mark.parametrize("item", [i for i in _news() if i.get("title")], ids=lambda i: str(i["id"]))
def test_each_sample_headline_reads_sensibly(item: dict[str, Any]) -> None:
    symbol, direction, phrase = EXPECTED[item["id"]]
    [signal] = extract_signals(item["title"], item.get("summary", ""), item.get("symbols", []))
    assert (signal.symbol, signal.direction) == (symbol, direction)
    assert phrase in signal.rationale
    assert NEUTRAL_BAND / 2 < signal.strength <= 1.0


def test_an_untitled_untagged_item_names_no_symbol() -> None:
    assert extract_signals("", "an entry without a title", []) == []


def test_rationale_lists_the_phrases_with_their_signs_in_text_order() -> None:
    [signal] = extract_signals("Acme beats estimates and raises full-year guidance", "", ["ACME"])
    assert signal.rationale == "beats estimates (+), raises guidance (+)"
    assert signal.direction == "up"


@pytest.mark.parametrize(
    ("plain", "negated"),
    [
        ("Acme expects to cut guidance", "Acme does not expect to cut guidance"),
        ("Layoffs planned at Globex", "No layoffs planned at Globex"),
        ("Initech will beat estimates", "Initech won't beat estimates"),
        ("Umbrella wins the contract", "Umbrella fails to win the contract"),
    ],
)
def test_negation_flips_a_phrase_at_reduced_weight(plain: str, negated: str) -> None:
    [before] = extract_signals(plain, "", ["X"])
    [after] = extract_signals(negated, "", ["X"])
    assert before.direction != "neutral" and after.direction != "neutral"
    assert before.direction != after.direction
    assert after.strength < before.strength
    assert "[negated]" in after.rationale and "[negated]" not in before.rationale


def test_negation_stops_at_a_clause_boundary() -> None:
    [signal] = extract_signals("Globex denies wrongdoing; regulator opens probe", "", ["GLBX"])
    assert signal.direction == "down"
    assert signal.rationale == "probe (-)"


def test_a_summary_repeating_the_title_counts_once() -> None:
    title = "ACME beats quarterly revenue estimates on cloud demand"
    [alone] = extract_signals(title, "", ["ACME"])
    [twice] = extract_signals(title, title + ".", ["ACME"])
    assert twice == alone


def test_strength_is_squashed_into_zero_to_one() -> None:
    text = "Acme beats estimates, raises guidance, posts record revenue, announces buyback and an upgrade"
    [signal] = extract_signals(text, "", ["ACME"])
    assert 0.99 < signal.strength <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "Acme to hold its annual meeting in May",
        "Globex beats estimates but cuts guidance",  # +1 and -1 cancel
    ],
)
def test_text_without_a_net_call_is_neutral(text: str) -> None:
    [signal] = extract_signals(text, "", ["ACME"])
    assert signal.direction == "neutral"
    assert signal.strength < 0.25


def test_neutral_text_says_nothing_matched() -> None:
    [signal] = extract_signals("Acme to hold its annual meeting in May", "", ["ACME"])
    assert (signal.strength, signal.rationale) == (0.0, "no lexicon phrases matched")


def test_aliases_find_symbols_when_the_feed_tagged_none() -> None:
    signals = extract_signals("Initech and Umbrella Corp form partnership", "", [])
    assert [(s.symbol, s.direction) for s in signals] == [("INTC", "up"), ("UMBR", "up")]


def test_alias_matching_is_case_insensitive_and_whole_words() -> None:
    assert find_symbols("GLOBEX and globex and Globex", DEFAULT_ALIASES) == ["GLBX"]
    assert find_symbols("Acmeville mayor opens Globexpo", DEFAULT_ALIASES) == []
    assert find_symbols("shares of INTC slid", DEFAULT_ALIASES) == ["INTC"]


def test_symbols_come_in_order_of_first_mention() -> None:
    assert find_symbols("Umbrella sues Acme; Acme responds", DEFAULT_ALIASES) == ["UMBR", "ACME"]


def test_tags_win_over_names_in_the_text() -> None:
    signals = extract_signals("Globex sues Acme", "", ["acme", "ACME", " "])
    assert [s.symbol for s in signals] == ["ACME"]


def test_custom_aliases_replace_the_defaults_and_empty_means_none() -> None:
    custom = {"Wayne Enterprises": "WAYN"}
    assert [s.symbol for s in extract_signals("Wayne  Enterprises recalls cars", "", [], custom)] == ["WAYN"]
    assert extract_signals("Acme recalls cars", "", [], custom) == []
    assert extract_signals("Acme recalls cars", "", [], {}) == []


def test_the_default_aliases_cover_every_symbol_in_the_sample_ticks() -> None:
    symbols = {json.loads(line)["symbol"] for line in (DATA / "ticks.jsonl").read_text().splitlines() if line}
    assert symbols <= set(DEFAULT_ALIASES.values())
