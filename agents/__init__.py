"""The stages of podium's pipelines, by name, and the pipelines they form."""

from typing import Any

from agents.passthrough import FINISH, STAMP
from streams.stage import Stage

__all__ = ["PIPELINES", "STAGES"]

STAGES: dict[str, Stage[Any]] = {stage.name: stage for stage in (STAMP, FINISH)}
PIPELINES: dict[str, tuple[str, ...]] = {"demo": ("stamp", "finish")}
