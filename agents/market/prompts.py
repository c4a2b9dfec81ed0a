"""What the market stages ask a model, and how its answers are read.

``signals`` and ``summarize`` call the model gateway like any stage, so a hosted model can do
the work when ``models.yaml`` names one. Offline, two local models behind the provider
interface answer the same prompts: ``local-lexicon`` (the finance phrase lexicon of
:mod:`agents.market.signals`) and ``local-summary`` (the template of
:mod:`agents.market.summary`). Neither is an LLM. Each prompt carries its facts as one JSON
line, which the local models read and a hosted model can quote.

A reply that cannot be used (not JSON, a symbol the item does not name, a direction that is
not up, down or neutral) raises :class:`ReplyUnusable`; the stage then answers with the local
model and records why (graceful degradation, never a dead letter for a model's bad answer).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from agents.market.signals import Signal, extract_signals
from agents.market.summary import WindowSignal, WindowView, summarize_window

__all__ = [
    "MARKET_MODELS",
    "ReplyUnusable",
    "answer_signals",
    "answer_summary",
    "read_signals",
    "signals_prompt",
    "summary_prompt",
]

SIGNALS_ASK = (
    "Read this news item for trading signals. Reply with JSON only, shaped "
    '{"signals": [{"symbol": "...", "direction": "up|down|neutral", "strength": 0.0-1.0, '
    '"rationale": "the phrases that drove it"}]}, one entry per symbol the item names.'
)
SUMMARY_ASK = (
    "Write two to four sentences for a market report on this symbol and time window: the move "
    "from open to close, the range, how choppy it was, the news signals, and whether the price "
    "moved with or against them. Use only these facts; no advice."
)
_FACTS = re.compile(r"^(News|Facts): (\{.*\})$", re.MULTILINE)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class ReplyUnusable(ValueError):
    """A model's reply the stage cannot use; it falls back to the local model."""


def signals_prompt(title: str, summary: str, symbols: Sequence[str]) -> list[dict[str, str]]:
    news = {"title": title, "summary": summary, "symbols": list(symbols)}
    return [{"role": "user", "content": f"{SIGNALS_ASK}\nNews: {json.dumps(news)}"}]


def summary_prompt(view: WindowView) -> list[dict[str, str]]:
    facts = {
        "symbol": view.symbol,
        "start_ms": view.start_ms,
        "end_ms": view.end_ms,
        "ticks": view.ticks,
        "open": view.open,
        "high": view.high,
        "low": view.low,
        "close": view.close,
        "volume": view.volume,
        "volatility": view.volatility,
        "signals": [
            {"published_ms": s.t_ms, "title": s.title, "symbol": s.symbol, "direction": s.direction,
             "strength": s.strength, "rationale": s.rationale}
            for s in view.signals
        ],
    }  # fmt: skip
    return [{"role": "user", "content": f"{SUMMARY_ASK}\nFacts: {json.dumps(facts)}"}]


def _facts(prompt: str) -> dict[str, Any]:
    found = _FACTS.search(prompt)
    if found is None:
        raise ReplyUnusable("the prompt carries no News: or Facts: line")
    facts: dict[str, Any] = json.loads(found.group(2))
    return facts


def answer_signals(prompt: str) -> str:
    """``local-lexicon``: the lexicon's reading of the news in the prompt, as JSON."""
    news = _facts(prompt)
    found = extract_signals(news["title"], news["summary"], news["symbols"])
    return json.dumps({"signals": [s.__dict__ for s in found]})


def answer_summary(prompt: str) -> str:
    """``local-summary``: the template's summary of the facts in the prompt."""
    f = _facts(prompt)
    signals = tuple(WindowSignal.from_record(s) for s in f["signals"])
    view = WindowView(
        f["symbol"], f["start_ms"], f["end_ms"], f["open"], f["high"], f["low"], f["close"], f["volume"],
        f["ticks"], f["volatility"], signals,
    )  # fmt: skip
    return summarize_window(view)


def read_signals(reply: str, allowed: Sequence[str]) -> list[Signal]:
    """The signals in a model's reply, for the symbols in ``allowed`` only."""
    found = _JSON_OBJECT.search(reply)
    if found is None:
        raise ReplyUnusable("the reply holds no JSON object")
    try:
        entries = json.loads(found.group(0))["signals"]
        signals = []
        for entry in entries:
            symbol = str(entry["symbol"]).strip().upper()
            direction = str(entry["direction"]).strip().lower()
            if symbol not in allowed:
                raise ReplyUnusable(f"the reply names {symbol}, which the item does not")
            if direction not in ("up", "down", "neutral"):
                raise ReplyUnusable(f"direction {direction!r} is not up, down or neutral")
            strength = min(1.0, max(0.0, float(entry["strength"])))
            signals.append(Signal(symbol, direction, strength, str(entry.get("rationale", ""))[:500]))  # type: ignore[arg-type]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ReplyUnusable):
            raise
        raise ReplyUnusable(f"the reply is not the JSON asked for: {exc}") from exc
    return signals


# What the local provider serves for this pipeline (registered where the gateway is built).
MARKET_MODELS = {"local-lexicon": answer_signals, "local-summary": answer_summary}
