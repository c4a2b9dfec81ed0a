"""``podium dlq``: dead letters, what failed, why, and sending it back."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from streams.cli.base import (
    app,
    console,
    load_project,
    position_of,
    run_async,
    when,
)

dlq_app = typer.Typer(help="Dead letters: what failed, why, and sending it back.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(since: Annotated[str | None, typer.Option("--since")] = None) -> None:
    """Dead letters per stage and error type: count, first and last seen."""
    from streams.operations.dlq import read_dead_letters, summarize

    project = load_project()
    position = position_of(since)
    letters = run_async(
        lambda: read_dead_letters(project.cluster(), project.catalog, project.codec, since=position)
    )
    table = Table("stage", "error type", "count", "first seen", "last seen")
    for group in summarize(letters):
        table.add_row(
            group.stage, group.error_type, str(group.count), when(group.first_ms), when(group.last_ms)
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    stage: Annotated[str | None, typer.Option("--stage")] = None,
    error_type: Annotated[str | None, typer.Option("--error-type")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
) -> None:
    """Dead letters with their reason, original coordinates and attempts."""
    from streams.operations.dlq import read_dead_letters

    project = load_project()
    letters = run_async(
        lambda: read_dead_letters(
            project.cluster(), project.catalog, project.codec, stage=stage, error_type=error_type
        )
    )
    for item in letters[-limit:]:
        letter = item.letter
        console.print(
            f"[bold]{letter['stage']}[/] {letter['error_type']} request={letter['request_id']} "
            f"from {letter['original_topic']}[{letter['original_partition']}]@{letter['original_offset']} "
            f"attempts={letter['attempts']} at {when(letter['dead_lettered_at_ms'])}"
        )
        console.print(f"  {letter['error_message']}", markup=False, highlight=False)
    console.print(
        f"{len(letters)} dead letter(s)" + (f", last {limit} shown" if len(letters) > limit else "")
    )


@dlq_app.command("redrive")
def dlq_redrive(
    stage: Annotated[str, typer.Option("--stage")],
    error_type: Annotated[str | None, typer.Option("--error-type")] = None,
    since: Annotated[str | None, typer.Option("--since")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Send dead letters back to their topic (once: a ledger remembers what was redriven)."""
    from streams.operations.dlq import read_dead_letters, redrive

    project = load_project()
    position = position_of(since)

    async def go() -> tuple[int, int]:
        letters = await read_dead_letters(
            project.cluster(),
            project.catalog,
            project.codec,
            stage=stage,
            error_type=error_type,
            since=position,
        )
        return await redrive(project.cluster(), project.catalog, project.codec, letters, dry_run=dry_run)

    sent, skipped = run_async(go)
    console.print(
        f"{'would redrive' if dry_run else 'redrove'} {sent} dead letter(s) of stage {stage}"
        + (f"; {skipped} already redriven before" if skipped else "")
    )
