"""The billing agent as the runtime receives it (see :mod:`agents.billing.agent`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.runtime import Build, Pipeline

if TYPE_CHECKING:
    from rich.console import Console

    from streams import Project, Stage

__all__ = ["BILLING"]


def _build(build: Build) -> list[Stage[Any]]:
    # Imported when built: declaring the pipeline stays light (see agents/support/pipeline.py).
    from agents.billing.agent import billing_stages

    settings = build.settings
    return billing_stages(
        settings.models_file, settings.home / "billing", build.shared, dry_run=build.dry_run
    )


async def _demo(project: Project, console: Console, _folder: Path) -> int:
    from agents.billing.demo import run_billing_demo

    return await run_billing_demo(project, console)


BILLING = Pipeline(
    name="billing",
    summary="an agent: model turns, tool stages, approvals",
    build=_build,
    demo=_demo,
    served=True,
    try_it="""podium publish billing.requests --json '{"body": "I was charged twice this month", """
    """"context": {"account": "A-1001"}}' --wait   # then: podium approvals; podium approve <request-id>""",
)
