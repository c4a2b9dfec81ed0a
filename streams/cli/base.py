"""What every ``podium`` command shares: the root app, the consoles, the project built once from
the settings with the pipelines the entry point registered, and plain errors instead of
tracebacks (a :class:`~streams.errors.PodiumError` prints ``error: ...`` and exits 2)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import typer
from rich.console import Console

from streams.config import load_settings
from streams.errors import PodiumError
from streams.kafka.connection import Cluster
from streams.kafka.reading import Position, Selection, parse_position
from streams.runtime.pipeline import Pipelines
from streams.runtime.project import Project
from streams.runtime.stage import Stage
from streams.telemetry.otel import Telemetry

__all__ = [
    "app",
    "console",
    "err",
    "guard",
    "load_project",
    "position_of",
    "project_for",
    "register",
    "run_async",
    "select",
    "stages_of",
    "telemetry_for",
    "when",
]

app = typer.Typer(help="podium: a Kafka-native runtime for AI orchestration.", no_args_is_help=True)

# Piped output (CI logs, `| less`) gets a readable width instead of rich's 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except PodiumError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return guard(lambda: asyncio.run(main()))


class _Entry:
    """What the entry point handed to :func:`streams.cli.main`, set once before any command runs
    (the bare runtime, ``python -m streams.cli``, registers no pipeline)."""

    pipelines = Pipelines()


def register(pipelines: Pipelines) -> None:
    _Entry.pipelines = pipelines


def load_project() -> Project:
    return guard(lambda: Project(load_settings(), _Entry.pipelines))


def project_for(provider: str) -> Project:
    """The project with the models of ``--provider`` (a model setup the entry point registered)."""
    return guard(lambda: load_project().with_models(provider))


def stages_of(project: Project, targets: str | Sequence[str], dry_run: bool = False) -> list[Stage[Any]]:
    return guard(lambda: project.stages(targets, dry_run=dry_run))


def telemetry_for(
    project: Project, service: str, cluster: Cluster | None = None, **options: Any
) -> Telemetry:
    """The process's telemetry as the settings choose it (PODIUM_OTEL_EXPORTER); its spans go to
    ``cluster`` (else the project's, as the command's user)."""
    return guard(
        lambda: Telemetry.configure(
            project.settings.otel_exporter,
            service,
            cluster=cluster or project.cluster(),
            codec=project.codec,
            otlp_metrics=project.settings.otel_metrics_exporter == "otlp",
            **options,
        )
    )


def select(
    topic: str,
    start: str | None = None,
    end: str | None = None,
    request_id: str | None = None,
    trace_id: str | None = None,
) -> Selection:
    """A topic range from ``--from``/``--to`` positions and request or trace filters."""
    return guard(
        lambda: Selection(
            topic,
            start=position_of(start),
            end=position_of(end),
            request_id=request_id,
            trace_id=trace_id,
        )
    )


def position_of(text: str | None) -> Position | None:
    """``--since``/``--from`` as a position (an offset, a time, a duration ago); None when absent."""
    return guard(lambda: parse_position(text)) if text else None


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
