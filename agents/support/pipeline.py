"""The support pipeline as the runtime receives it.

Declaring it imports nothing heavy: the stages (and the models they load) are imported when the
pipeline is built, so ``podium --help`` or ``podium tail`` do not pay for scikit-learn.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.runtime import Build, Pipeline

if TYPE_CHECKING:
    from rich.console import Console

    from streams import Project, Stage

__all__ = ["SUPPORT"]


def _build(build: Build) -> list[Stage[Any]]:
    from agents.support.services import SupportConfig
    from agents.support.stages import support_stages

    config = SupportConfig.from_settings(build.settings, dry_run=build.dry_run)
    return support_stages(config, gateway=build.shared)


async def _demo(project: Project, console: Console, _folder: Path) -> int:
    from agents.support.demo import run_support_demo

    return await run_support_demo(project, console)


SUPPORT = Pipeline(
    name="support",
    summary="classify, retrieve, generate, screen",
    build=_build,
    demo=_demo,
    served=True,
    try_it="""podium publish support.requests --json '{"body": "How do I reset my password?"}' --wait""",
)
