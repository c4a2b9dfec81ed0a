"""The market pipeline's stages::

    market.news  -> signals -> market.signals --+
    market.ticks ------------------------------+-> windows -> market.windows -> summarize -> market.reports

``signals`` asks the gateway's ``signals`` policy for per-symbol signals in each news item
(keyed by symbol, so they meet the symbol's ticks in the same partition); ``windows`` is a
windowed join (a :class:`~streams.runtime.window_join.WindowStage`, see :mod:`agents.market.windows` for the
grace period); ``summarize`` asks the ``summarize`` policy for the report's sentences and draws an
SVG chart per symbol and window, carried in the record. Offline both policies name local models
(:mod:`agents.market.prompts`); a reply a stage cannot use is replaced by the local model's
answer, and the record says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.gateway.gateway import BudgetSpent, CallPolicy, GatewayError, GatewayResult, ModelGateway
from agents.gateway.providers.protocol import ChatRequest
from agents.gateway.resource import GatewayResource, shared_or_own
from agents.market.chart import Marker, price_chart_svg
from agents.market.prompts import (
    MARKET_MODELS,
    ReplyUnusable,
    read_signals,
    signals_prompt,
    summary_prompt,
)
from agents.market.signals import DEFAULT_ALIASES, extract_signals, find_symbols
from agents.market.summary import WindowSignal, WindowView, summarize_window
from agents.market.windows import TickWindows, WindowConfig
from streams.runtime import Emit, Record, SharedResource, Stage, StageContext, StageEnv, WindowStage

__all__ = ["MarketConfig", "MarketServices", "market_stages", "window_view"]

NEWS = "market.news"
TICKS = "market.ticks"
SIGNALS = "market.signals"
UNMATCHED = "market.news.unmatched"
WINDOWS = "market.windows"
WINDOW_STATE = "market.windows.state"
REPORTS = "market.reports"
ASK_LIMIT_S = 20.0  # of the stages' 30 s handler timeout: the rest is for the local fallback


@dataclass(frozen=True)
class MarketConfig:
    window_s: float = 120.0
    grace_s: float = 10.0
    points: int = 60
    idle_close_s: float = 2.0
    idle_clock_rate: float = 1.0  # event time per wall-clock second while idle (a replay: its speed)
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


class MarketServices(SharedResource):
    """The signals and summarize stages' hold on the process's model gateway (shared with the
    other pipelines, see :mod:`agents.gateway.resource`) and their policies."""

    def __init__(self, models: Path, gateway: GatewayResource | None = None) -> None:
        super().__init__()
        self.models = models
        self._shared_gateway = shared_or_own(gateway, models, MARKET_MODELS)
        self._gateway: ModelGateway | None = None
        self.policies: dict[str, CallPolicy] = {}

    async def _open(self, env: StageEnv) -> None:
        await self._shared_gateway.open(env)  # config errors first
        try:
            config = self._shared_gateway.config
            self.policies = {stage: config.policy(stage) for stage in ("signals", "summarize")}
        except BaseException:
            await self._shared_gateway.close()  # not counted as open: close() would not reach it
            raise
        self._gateway = self._shared_gateway.gateway

    async def _close(self) -> None:
        gateway, self._gateway = self._gateway, None
        if gateway is not None:
            await self._shared_gateway.close()  # the last user closes the gateway itself

    @property
    def gateway(self) -> ModelGateway:
        assert self._gateway is not None, "market services are not open"
        return self._gateway

    async def ask(self, stage: str, messages: list[dict[str, str]], ctx: StageContext) -> GatewayResult:
        assert self._gateway is not None, "market services are not open"
        request = ChatRequest(model="", messages=messages, max_tokens=400)
        # Routes stop in time for the local fallback to answer within the stage's timeout.
        remaining = ctx.remaining_s()
        limit = ASK_LIMIT_S if remaining is None else min(remaining - 1.0, ASK_LIMIT_S)
        result = await self._gateway.complete(
            request, self.policies[stage], time.monotonic() + limit, tenant=ctx.headers.tenant
        )
        ctx.add_cost(result.cost_usd)
        return result


@dataclass
class MarketStages:
    services: MarketServices = field(repr=False)

    async def signals(self, item: Record, ctx: StageContext) -> list[Emit]:
        tagged = list(dict.fromkeys(s.strip().upper() for s in item["symbols"] if s.strip()))
        allowed = tagged or find_symbols(f"{item['title']}\n{item['summary']}", DEFAULT_ALIASES)
        if not allowed:
            return [Emit(UNMATCHED, item)]
        prompt = signals_prompt(item["title"], item["summary"], allowed)
        try:
            result = await self.services.ask("signals", prompt, ctx)
            model = f"{result.route.provider}/{result.route.model}"
            found = read_signals(result.completion.text, allowed)
        except (GatewayError, BudgetSpent, ReplyUnusable) as exc:
            # A model's bad answer or every route down: the lexicon still reads the item.
            model = f"local/local-lexicon (fallback: {exc})"[:300]
            found = extract_signals(item["title"], item["summary"], allowed)
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
                    "model": model,
                },
                key=s.symbol,
            )
            for s in found
        ]

    async def summarize(self, window: Record, ctx: StageContext) -> Emit:
        view = window_view(window)
        prompt = summary_prompt(view)
        try:
            result = await self.services.ask("summarize", prompt, ctx)
            model = f"{result.route.provider}/{result.route.model}"
            summary = result.completion.text.strip()
            if view.symbol not in summary:
                raise ReplyUnusable(f"the reply does not name {view.symbol}")
        except (GatewayError, BudgetSpent, ReplyUnusable) as exc:
            model = f"local/local-summary (fallback: {exc})"[:300]
            summary = summarize_window(view)
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
                "summary": summary,
                "chart_svg": chart,
                "change_pct": window["change_pct"],
                "ticks": window["ticks"],
                "signals": window["signals"],
                "model": model,
            },
        )


def window_view(window: Record) -> WindowView:
    """The summary's view of a window record (a window without ticks has no prices: zeros)."""
    return WindowView(
        window["symbol"],
        window["start_ms"],
        window["end_ms"],
        window["open"] or 0.0,
        window["high"] or 0.0,
        window["low"] or 0.0,
        window["close"] or 0.0,
        window["volume"],
        window["ticks"],
        window["volatility"] or 0.0,
        tuple(WindowSignal.from_record(s) for s in window["signals"]),
    )


def market_stages(
    config: MarketConfig | None = None,
    models: Path = Path("models.yaml"),
    gateway: GatewayResource | None = None,
) -> list[Any]:
    """The three stages; ``models`` is the models.yaml with the signals and summarize policies.
    ``gateway``: the process's model gateway over ``models``, shared with the other pipelines
    (default: one of the pipeline's own, without API keys)."""
    config = config or MarketConfig()
    windows = config.window_config()
    stages = MarketStages(MarketServices(models, gateway))
    shared = (stages.services,)
    return [
        Stage("signals", NEWS, (SIGNALS, UNMATCHED), stages.signals, resources=shared),
        WindowStage(
            "windows",
            consumes=TICKS,
            joins=SIGNALS,
            produces=(WINDOWS,),
            state_topic=WINDOW_STATE,
            new_state=lambda snapshot: TickWindows(windows, snapshot),
            checkpoint_interval_s=config.checkpoint_interval_s,
            idle_close_s=config.idle_close_s,
            idle_clock_rate=config.idle_clock_rate,
        ),
        Stage("summarize", WINDOWS, (REPORTS,), stages.summarize, resources=shared),
    ]
