"""The market pipeline as the runtime receives it, with its ``market:`` section of
``pipelines.yaml`` (the windows)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.runtime import Build, Pipeline, Section

if TYPE_CHECKING:
    from rich.console import Console

    from agents.market.stages import MarketConfig
    from streams import Project

__all__ = ["MARKET", "parse_windows"]


def parse_windows(section: Section) -> MarketConfig:
    from agents.market.stages import MarketConfig

    section.known({f.name for f in fields(MarketConfig)})
    defaults = MarketConfig()
    values = section.values
    try:
        windows = MarketConfig(
            window_s=float(values.get("window_s", defaults.window_s)),
            grace_s=float(values.get("grace_s", defaults.grace_s)),
            points=int(values.get("points", defaults.points)),
            idle_close_s=float(values.get("idle_close_s", defaults.idle_close_s)),
            idle_clock_rate=float(values.get("idle_clock_rate", defaults.idle_clock_rate)),
            checkpoint_interval_s=float(values.get("checkpoint_interval_s", defaults.checkpoint_interval_s)),
        )
        windows.window_config()
    except (TypeError, ValueError) as exc:
        raise section.fail(exc) from exc
    return windows


def _build(build: Build) -> list[Any]:
    from agents.market.stages import market_stages

    # The windows stage is a WindowStage (a windowed join), the others are Stages.
    return market_stages(build.section, build.settings.models_file, build.shared)


async def _demo(project: Project, console: Console, folder: Path) -> int:
    from agents.market.demo import run_market_demo

    return await run_market_demo(project, console, folder)


MARKET = Pipeline(
    name="market",
    summary="news and ticks in, signals, windowed join, summaries with charts",
    build=_build,
    parse=parse_windows,
    demo=_demo,
    # A recording replayed as it is meets the ingesters' de-duplication and the windows' late
    # rule after its first run; the market demo replays it shifted to now, as a new session.
    try_it="podium ingest prices --url <json or ws:// feed>    podium ingest news --url <rss>\n"
    "  podium demo --pipelines market   (the recorded feeds as a new session)",
)
