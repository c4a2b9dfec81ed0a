import json

import pytest

from agents.market.prompts import (
    ReplyUnusable,
    answer_signals,
    answer_summary,
    read_signals,
    signals_prompt,
    summary_prompt,
)
from agents.market.signals import Signal, extract_signals
from agents.market.summary import WindowSignal, WindowView, summarize_window

T0 = 1_795_599_960_000


def test_the_local_lexicon_answers_the_prompt_as_the_lexicon_reads_the_item() -> None:
    prompt = signals_prompt("Globex cuts full-year guidance", "Shipping costs rise.", ["GLBX"])
    [message] = prompt
    assert "Reply with JSON only" in message["content"]
    reply = answer_signals(message["content"])
    assert read_signals(reply, ["GLBX"]) == extract_signals(
        "Globex cuts full-year guidance", "Shipping costs rise.", ["GLBX"]
    )


def test_a_hosted_reply_is_read_with_its_strength_clamped() -> None:
    reply = 'Sure! {"signals": [{"symbol": "acme", "direction": "UP", "strength": 1.7, "rationale": "beat"}]}'
    assert read_signals(reply, ["ACME"]) == [Signal("ACME", "up", 1.0, "beat")]


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("lorem ipsum dolor", "no JSON object"),
        ('{"signals": [{"symbol": "ACME", "direction": "sideways", "strength": 0.5}]}', "not up, down"),
        ('{"signals": [{"symbol": "EVIL", "direction": "up", "strength": 0.5}]}', "does not"),
        ('{"signals": [{"symbol": "ACME"}]}', "not the JSON asked for"),
        ('{"signals": [}', "not the JSON asked for"),
    ],
)
def test_an_unusable_reply_says_why(reply: str, why: str) -> None:
    with pytest.raises(ReplyUnusable, match=why):
        read_signals(reply, ["ACME"])


def test_the_local_summary_is_the_template_over_the_facts_in_the_prompt() -> None:
    signal = WindowSignal(T0 + 5_000, "ACME beats estimates", "ACME", "up", 0.8, "beats estimates (+)")
    view = WindowView("ACME", T0, T0 + 120_000, 100.0, 103.0, 99.0, 102.0, 50.0, 24, 0.002, (signal,))
    [message] = summary_prompt(view)
    facts = json.loads(message["content"].split("Facts: ", 1)[1])
    assert facts["close"] == 102.0 and facts["signals"][0]["title"] == "ACME beats estimates"
    assert answer_summary(message["content"]) == summarize_window(view)
