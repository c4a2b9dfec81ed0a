"""The content pipeline as the runtime receives it, with its ``content:`` section of
``pipelines.yaml`` (the quality gates)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.content.review import Thresholds
from streams.runtime import Build, Pipeline, Section

if TYPE_CHECKING:
    from rich.console import Console

    from streams import Project, Stage

__all__ = ["CONTENT", "parse_gates"]


def parse_gates(section: Section) -> Thresholds:
    section.known({"thresholds", "max_revisions", "join_timeout_s"})
    thresholds = section.child("thresholds")
    thresholds.known({"factcheck", "style"})
    base = Thresholds()
    try:
        return Thresholds(
            factcheck=float(thresholds.values.get("factcheck", base.factcheck)),
            style=float(thresholds.values.get("style", base.style)),
            max_revisions=int(section.values.get("max_revisions", base.max_revisions)),
            join_timeout_s=float(section.values.get("join_timeout_s", base.join_timeout_s)),
        )
    except (TypeError, ValueError) as exc:
        raise section.fail(exc) from exc


def _build(build: Build) -> list[Stage[Any]]:
    # Imported when built: declaring the pipeline stays light (see agents/support/pipeline.py).
    from agents.content.services import ContentConfig
    from agents.content.stages import content_stages

    config = ContentConfig(models=build.settings.models_file, thresholds=build.section, dry_run=build.dry_run)
    return content_stages(config, build.shared)


async def _demo(project: Project, console: Console, folder: Path) -> int:
    from agents.content.demo import run_content_demo

    return await run_content_demo(project, console, folder)


CONTENT = Pipeline(
    name="content",
    summary="draft, factcheck | style, join, seo",
    build=_build,
    parse=parse_gates,
    demo=_demo,
    try_it="""podium publish content.briefs --json '{"topic": "Exporting dashboards", """
    """"points": ["CSV exports are capped at 1,000,000 rows per tile."]}' --wait""",
)
