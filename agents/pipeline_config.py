"""``pipelines.yaml``: the quality gates of the content pipeline and the windows of the market
pipeline, read once into frozen objects. A missing file means the defaults; a bad value fails
at start naming the file and the key."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from agents.content.review import Thresholds
from agents.market.stages import MarketConfig
from streams.errors import ConfigError

__all__ = ["PipelineConfig", "load_pipeline_config"]


@dataclass(frozen=True)
class PipelineConfig:
    content: Thresholds = field(default_factory=Thresholds)
    market: MarketConfig = field(default_factory=MarketConfig)


def load_pipeline_config(path: Path) -> PipelineConfig:
    if not path.exists():
        return PipelineConfig()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    _known(path, "", raw, {"content", "market"})
    content = raw.get("content") or {}
    _known(path, "content.", content, {"thresholds", "max_revisions", "join_timeout_s"})
    thresholds = content.get("thresholds") or {}
    _known(path, "content.thresholds.", thresholds, {"factcheck", "style"})
    market = raw.get("market") or {}
    _known(path, "market.", market, {f.name for f in fields(MarketConfig)})
    base, defaults = Thresholds(), MarketConfig()
    try:
        gates = Thresholds(
            factcheck=float(thresholds.get("factcheck", base.factcheck)),
            style=float(thresholds.get("style", base.style)),
            max_revisions=int(content.get("max_revisions", base.max_revisions)),
            join_timeout_s=float(content.get("join_timeout_s", base.join_timeout_s)),
        )
        windows = MarketConfig(
            window_s=float(market.get("window_s", defaults.window_s)),
            grace_s=float(market.get("grace_s", defaults.grace_s)),
            points=int(market.get("points", defaults.points)),
            idle_close_s=float(market.get("idle_close_s", defaults.idle_close_s)),
            idle_clock_rate=float(market.get("idle_clock_rate", defaults.idle_clock_rate)),
            checkpoint_interval_s=float(market.get("checkpoint_interval_s", defaults.checkpoint_interval_s)),
        )
        windows.window_config()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return PipelineConfig(gates, windows)


def _known(path: Path, prefix: str, section: Any, allowed: set[str]) -> None:
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {prefix.rstrip('.') or 'the file'} must be a mapping")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(allowed))})")
