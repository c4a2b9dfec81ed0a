"""The stages of podium's pipelines, by pipeline name.

A pipeline is built from the settings at the entry point (``podium run``, ``podium demo``):
its stages may share resources (models, a gateway) that their workers open and close.
"""

from collections.abc import Callable
from typing import Any

from agents.content.services import ContentConfig
from agents.content.stages import content_stages
from agents.market.stages import market_stages
from agents.passthrough import FINISH, STAMP
from agents.pipeline_config import load_pipeline_config
from agents.support.services import SupportConfig
from agents.support.stages import support_stages
from streams.config import Settings
from streams.stage import Stage

__all__ = ["PIPELINES", "build_pipeline"]


def _support(settings: Settings, dry_run: bool) -> list[Stage[Any]]:
    return support_stages(SupportConfig(models=settings.models_file, dry_run=dry_run))


def _content(settings: Settings, dry_run: bool) -> list[Stage[Any]]:
    gates = load_pipeline_config(settings.pipelines_file).content
    return content_stages(ContentConfig(models=settings.models_file, thresholds=gates, dry_run=dry_run))


def _market(settings: Settings, _dry_run: bool) -> list[Any]:
    return market_stages(load_pipeline_config(settings.pipelines_file).market, settings.models_file)


# A factory per pipeline: settings -> stages. ``dry_run`` stages publish nothing of their own
# beside what their handlers return (for `podium replay --stage --with`).
PIPELINES: dict[str, Callable[[Settings, bool], list[Stage[Any]]]] = {
    "demo": lambda _settings, _dry_run: [STAMP, FINISH],
    "support": _support,
    "content": _content,
    # The windows stage is a WindowStage (a windowed join), the others are Stages.
    "market": _market,
}


def build_pipeline(name: str, settings: Settings, dry_run: bool = False) -> list[Stage[Any]]:
    return PIPELINES[name](settings, dry_run)
