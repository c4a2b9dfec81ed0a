"""The support pipeline as the runtime receives it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from agents.support.demo import run_support_demo
from agents.support.services import SupportConfig
from agents.support.stages import support_stages
from streams import Project, Stage
from streams.runtime import Build, Pipeline

__all__ = ["SUPPORT"]


def _build(build: Build) -> list[Stage[Any]]:
    config = SupportConfig(models=build.settings.models_file, dry_run=build.dry_run)
    return support_stages(config, gateway=build.shared)


async def _demo(project: Project, console: Console, _folder: Path) -> int:
    return await run_support_demo(project, console)


SUPPORT = Pipeline(
    name="support",
    summary="classify, retrieve, generate, screen",
    build=_build,
    demo=_demo,
    served=True,
    try_it="""podium publish support.requests --json '{"body": "How do I reset my password?"}' --wait""",
)
