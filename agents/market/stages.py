"""The market pipeline's stages::

    market.news  -> signals -> market.signals --+
    market.ticks ------------------------------+-> windows -> market.windows -> summarize -> market.reports

``signals`` reads each news item for per-symbol signals (keyed by symbol, so they meet the
symbol's ticks in the same partition); ``windows`` is a windowed join (a
:class:`~streams.windows.WindowStage`, see :mod:`agents.market.windows` for the grace period);
``summarize`` writes a summary and an SVG chart per symbol and window, carried in the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.market.chart import Marker, price_chart_svg
from agents.market.signals import extract_signals
from agents.market.summary import WindowSignal, WindowView, summarize_window
from agents.market.windows import TickWindows, WindowConfig
from streams.stage import Emit, Record, Stage, StageContext
from streams.windows import WindowStage

__all__ = ["MarketConfig", "market_stages", "window_view"]

NEWS = "market.news"
TICKS = "market.ticks"
SIGNALS = "market.signals"
UNMATCHED = "market.news.unmatched"
WINDOWS = "market.windows"
WINDOW_STATE = "market.windows.state"
REPORTS = "market.reports"
SIGNAL_MODEL = "local-lexicon (finance phrases, not an LLM)"
SUMMARY_MODEL = "local-template (not an LLM)"


@dataclass(frozen=True)
class MarketConfig:
    window_s: float = 120.0
    grace_s: float = 10.0
    points: int = 60
    idle_close_s: float = 2.0
    checkpoint_interval_s: float = 1.0

    def window_config(self) -> WindowConfig:
        """What the windows stage folds by (checks that the window divides into its points)."""
        return WindowConfig(
            TICKS,
            SIGNALS,
            size_ms=int(self.window_s * 1000),
            grace_ms=int(self.grace_s * 1000),
            points=self.points,
        )


async def signals(item: Record, ctx: StageContext) -> list[Emit]:
    found = extract_signals(item["title"], item["summary"], item["symbols"])
    if not found:
        return [Emit(UNMATCHED, item)]
    return [
        Emit(
            SIGNALS,
            {
                "symbol": s.symbol,
                "direction": s.direction,
                "strength": s.strength,
                "rationale": s.rationale,
                "item_id": item["item_id"],
                "title": item["title"],
                "published_ms": item["published_ms"],
                "model": SIGNAL_MODEL,
            },
            key=s.symbol,
        )
        for s in found
    ]


def window_view(window: Record) -> WindowView:
    marks = tuple(
        WindowSignal(
            s["published_ms"], s["title"], s["symbol"], s["direction"], s["strength"], s["rationale"]
        )
        for s in window["signals"]
    )
    if not window["ticks"]:
        return WindowView(
            window["symbol"], window["start_ms"], window["end_ms"], 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, marks
        )
    return WindowView(
        window["symbol"],
        window["start_ms"],
        window["end_ms"],
        window["open"],
        window["high"],
        window["low"],
        window["close"],
        window["volume"],
        window["ticks"],
        window["volatility"] or 0.0,
        marks,
    )


async def summarize(window: Record, ctx: StageContext) -> Emit:
    view = window_view(window)
    chart = price_chart_svg(
        [(p["t_ms"], p["price"]) for p in window["points"]],
        [Marker(s.t_ms, s.direction, f"{s.title} - {s.rationale}") for s in view.signals],
        title=f"{window['symbol']} price with news signals",
    )
    return Emit(
        REPORTS,
        {
            "symbol": window["symbol"],
            "start_ms": window["start_ms"],
            "end_ms": window["end_ms"],
            "summary": summarize_window(view),
            "chart_svg": chart,
            "change_pct": window["change_pct"],
            "ticks": window["ticks"],
            "signals": window["signals"],
            "model": SUMMARY_MODEL,
        },
    )


def market_stages(config: MarketConfig | None = None) -> list[Any]:
    config = config or MarketConfig()
    windows = config.window_config()
    return [
        Stage("signals", NEWS, (SIGNALS, UNMATCHED), signals),
        WindowStage(
            "windows",
            consumes=TICKS,
            joins=SIGNALS,
            produces=(WINDOWS,),
            state_topic=WINDOW_STATE,
            new_state=lambda snapshot: TickWindows(windows, snapshot),
            checkpoint_interval_s=config.checkpoint_interval_s,
            idle_close_s=config.idle_close_s,
        ),
        Stage("summarize", WINDOWS, (REPORTS,), summarize),
    ]
