"""A window of one symbol's ticks and news, told in a few sentences and shown as an HTML page.

:func:`summarize_window` is a fixed template, not a model: the same window always reads the
same. Its words come from thresholds named here:

* the change from open to close is "flat" below ``FLAT_PCT`` (0.05%) either way, "sharply"
  from ``SHARP_PCT`` (2%);
* volatility is the sample standard deviation of log returns per step, a step being from one
  tick to the next (:meth:`WindowView.from_ticks`) or from one chart point to the next (a
  window of the market pipeline keeps the last price of each of 60 slices): "calm" below
  ``CALM_BELOW`` (0.1% per step), "volatile" from ``VOLATILE_FROM`` (0.5%), "choppy" between.
  The thresholds suit steps a few seconds apart (the sample feed ticks every 5 s at about
  0.25%, so it reads "choppy");
* the net signal is the sum of strengths, up positive and down negative; within
  ``NET_BAND`` (0.1) of zero it is neutral, and the price is then said to follow no news.

Prices are shown to two decimals, percentages to two, strengths to two, volume whole.
"""

from __future__ import annotations

import html
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from agents.market.chart import utc_clock
from agents.market.signals import Direction, Signal

__all__ = [
    "CALM_BELOW",
    "FLAT_PCT",
    "NET_BAND",
    "SHARP_PCT",
    "VOLATILE_FROM",
    "NewsSignal",
    "WindowSignal",
    "WindowView",
    "report_html",
    "summarize_window",
]

FLAT_PCT = 0.05
SHARP_PCT = 2.0
CALM_BELOW = 0.001
VOLATILE_FROM = 0.005
NET_BAND = 0.1


class NewsSignal(Protocol):
    """A signal placed in time: what a window holds and the report's table lists."""

    @property
    def t_ms(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def strength(self) -> float: ...
    @property
    def rationale(self) -> str: ...


@dataclass(frozen=True)
class WindowSignal:
    """The plain :class:`NewsSignal`: a :class:`Signal` with the news item's time and title."""

    t_ms: int
    title: str
    symbol: str
    direction: Direction
    strength: float
    rationale: str

    @classmethod
    def of(cls, signal: Signal, t_ms: int, title: str) -> WindowSignal:
        return cls(t_ms, title, signal.symbol, signal.direction, signal.strength, signal.rationale)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> WindowSignal:
        """From a ``podium.market.Signal`` record (as windows and reports carry them)."""
        return cls(
            record["published_ms"],
            record["title"],
            record["symbol"],
            record["direction"],
            record["strength"],
            record["rationale"],
        )


@dataclass(frozen=True)
class WindowView:
    """One symbol's window. With ``ticks == 0`` the prices are 0.0 and mean nothing."""

    symbol: str
    start_ms: int
    end_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    ticks: int
    volatility: float  # stdev of log returns per step (see above); 0.0 with fewer than three steps
    signals: tuple[NewsSignal, ...] = ()

    @classmethod
    def from_ticks(
        cls,
        symbol: str,
        start_ms: int,
        end_ms: int,
        ticks: Sequence[tuple[int, float, float]],
        signals: Sequence[NewsSignal] = (),
    ) -> WindowView:
        """A view from ``(t_ms, price, volume)`` ticks in any order; prices <= 0 or not finite
        are dropped (a log return needs a positive price)."""
        kept = sorted((t, p, v) for t, p, v in ticks if math.isfinite(p) and p > 0)
        ordered = tuple(sorted(signals, key=lambda s: s.t_ms))
        if not kept:
            return cls(symbol, start_ms, end_ms, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, ordered)
        prices = [p for _, p, _ in kept]
        returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
        volatility = statistics.stdev(returns) if len(returns) >= 2 else 0.0
        volume = sum(v for _, _, v in kept if math.isfinite(v))
        return cls(
            symbol, start_ms, end_ms, prices[0], max(prices), min(prices), prices[-1],
            volume, len(kept), volatility, ordered,
        )  # fmt: skip


def _change_pct(view: WindowView) -> float:
    return (view.close - view.open) / view.open * 100 if view.open else 0.0


def _price_direction(pct: float) -> str:
    if abs(pct) < FLAT_PCT:
        return "flat"
    return "up" if pct > 0 else "down"


def _temper(volatility: float) -> str:
    if volatility < CALM_BELOW:
        return "calm"
    return "volatile" if volatility >= VOLATILE_FROM else "choppy"


def _net(signals: Sequence[NewsSignal]) -> float:
    sign = {"up": 1.0, "down": -1.0}
    return sum(sign.get(s.direction, 0.0) * s.strength for s in signals)


def _headline(signal: NewsSignal) -> str:
    return signal.title.strip().rstrip(".!?;:") or "(untitled)"


def _signals_sentence(signals: Sequence[NewsSignal]) -> str:
    if not signals:
        return "No news signals in this window."
    listed = "; ".join(f"{_headline(s)} ({s.direction}, strength {s.strength:.2f})" for s in signals)
    return f"{len(signals)} news signal{'' if len(signals) == 1 else 's'}: {listed}."


def _reaction_sentence(price: str, net: float) -> str:
    net_direction = "neutral" if abs(net) < NET_BAND else ("up" if net > 0 else "down")
    if net_direction == "neutral":
        return f"The news nets out neutral ({net:+.2f}), so the move follows no signal."
    if price == "flat":
        return f"The price held flat despite a net {net_direction} signal ({net:+.2f})."
    relation = "with" if price == net_direction else "against"
    return f"The price moved {relation} the net {net_direction} signal ({net:+.2f})."


def summarize_window(view: WindowView) -> str:
    """Two to four sentences: the move, the range and temper, the news, and whether they agree."""
    span = f"{utc_clock(view.start_ms)} and {utc_clock(view.end_ms)} UTC"
    signals = sorted(view.signals, key=lambda s: s.t_ms)
    if view.ticks == 0:
        return f"No ticks for {view.symbol} between {span}. {_signals_sentence(signals)}"
    pct = _change_pct(view)
    price = _price_direction(pct)
    if price == "flat":
        move = f"{view.symbol} was flat ({pct:+.2f}%) at {view.close:.2f} between {span}."
    else:
        verb = "rose" if price == "up" else "fell"
        adverb = " sharply" if abs(pct) >= SHARP_PCT else ""
        move = (
            f"{view.symbol} {verb}{adverb} {abs(pct):.2f}% from {view.open:.2f} to {view.close:.2f}"
            f" between {span}."
        )
    tick_word = "tick" if view.ticks == 1 else "ticks"
    trading = (
        f"It traded between {view.low:.2f} and {view.high:.2f} on volume {view.volume:,.0f} over"
        f" {view.ticks} {tick_word}; trading was {_temper(view.volatility)}"
        f" (volatility {view.volatility * 100:.2f}% per step)."
    )
    sentences = [move, trading, _signals_sentence(signals)]
    if signals:
        sentences.append(_reaction_sentence(price, _net(signals)))
    return " ".join(sentences)


_PAGE_STYLE = (
    "body{font-family:sans-serif;max-width:780px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:4px 6px;"
    "text-align:left;vertical-align:top}.up{color:#2e7d32}.down{color:#c62828}.neutral{color:#757575}"
)


def report_html(
    symbol: str,
    start_ms: int,
    end_ms: int,
    summary: str,
    chart_svg: str,
    signals: Sequence[NewsSignal],
) -> str:
    """A standalone page: heading, summary, the chart inline, a table of the signals.

    Every text is escaped except ``chart_svg``, which is inlined as it is: pass the output of
    :func:`agents.market.chart.price_chart_svg`, which escapes its own text.
    """
    esc = html.escape
    day = datetime.fromtimestamp(start_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    heading = f"{symbol} · {day} {utc_clock(start_ms)} to {utc_clock(end_ms)} UTC"
    rows = [
        f'<tr class="{esc(s.direction)}"><td>{utc_clock(s.t_ms)}</td><td>{esc(s.direction)}</td>'
        f"<td>{s.strength:.2f}</td><td>{esc(s.title)}</td><td>{esc(s.rationale)}</td></tr>"
        for s in sorted(signals, key=lambda s: s.t_ms)
    ]
    body = "\n".join(rows) or '<tr><td colspan="5">No news signals in this window.</td></tr>'
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(heading)}</title>
<style>{_PAGE_STYLE}</style>
</head>
<body>
<h1>{esc(heading)}</h1>
<p class="summary">{esc(summary)}</p>
<figure>
{chart_svg}
</figure>
<table class="signals">
<thead><tr><th>Time (UTC)</th><th>Direction</th><th>Strength</th><th>Headline</th><th>Rationale</th></tr>
</thead>
<tbody>
{body}
</tbody>
</table>
</body>
</html>
"""
