"""``podium replay``: a topic range to a file or a topic, or through one stage as a what-if."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from streams.cli.base import (
    app,
    console,
    err,
    guard,
    load_project,
    run_async,
    select,
    stages_of,
    telemetry_for,
)


@app.command("replay")
def replay_cmd(
    topic: str,
    start: Annotated[str | None, typer.Option("--from", help="Offset, age (15m) or ISO time.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Offset, age or ISO time (exclusive).")] = None,
    request_id: Annotated[str | None, typer.Option("--request-id")] = None,
    trace_id: Annotated[str | None, typer.Option("--trace-id")] = None,
    dump: Annotated[Path | None, typer.Option("--dump", help="Write decoded records as JSON lines.")] = None,
    into: Annotated[str | None, typer.Option("--into", help="Re-publish the original bytes here.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore the checkpoint of an earlier run.")
    ] = False,
    stage: Annotated[
        str | None, typer.Option("--stage", help="What-if: run this stage's handler over the range.")
    ] = None,
    with_models: Annotated[
        Path | None, typer.Option("--with", help="What-if: the models.yaml to run the stage with.")
    ] = None,
    limit: Annotated[int, typer.Option(help="What-if: at most this many records.")] = 20,
) -> None:
    """Copy a range of a topic to a file or into a topic (new trace linked to the original).

    With --stage (and --with): run that stage's handler over the recorded inputs under another
    model configuration, publish nothing, and print old and new output side by side."""
    if stage is not None:
        _what_if(topic, start, end, request_id, trace_id, stage, with_models, limit)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from streams.operations.replay import Checkpoint, replay_range

    if (dump is None) == (into is None) and not dry_run:
        err.print("give exactly one of --dump FILE or --into TOPIC (or --dry-run)")
        raise typer.Exit(2)
    project = load_project()
    catalog = guard(lambda: project.catalog)
    selection = select(topic, start, end, request_id, trace_id)
    checkpoints = project.settings.home / "replay"
    resuming = not restart and Checkpoint(checkpoints, selection, into or "dump").path.exists()
    if resuming:
        err.print("resuming an interrupted replay (use --restart to begin again)")
    out = dump.open("a" if resuming else "w") if dump is not None and not dry_run else None

    async def go() -> int:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rec/s"),
            TimeRemainingColumn(),
            console=err,
        ) as bar:
            task = bar.add_task(f"replay {topic}", total=None, rate="-")

            def advance(done: int, total: int) -> None:
                speed = bar.tasks[0].speed
                bar.update(task, completed=done, total=total, rate=f"{speed:,.0f}" if speed else "-")

            return await replay_range(
                cluster=project.cluster(),
                catalog=catalog,
                codec=project.codec,
                selection=selection,
                checkpoints=checkpoints,
                into=into,
                dump=out,
                dry_run=dry_run,
                restart=restart,
                telemetry=telemetry_for(project, "podium-replay"),
                progress=advance,
            )

    try:
        count = run_async(go)
    finally:
        if out is not None:
            out.close()
    verb = "would send" if dry_run else ("sent" if into else "wrote")
    console.print(
        f"{verb} {count} record(s) from {topic}" + (f" to {into}" if into else f" to {dump}" if dump else "")
    )


def _what_if(
    topic: str,
    start: str | None,
    end: str | None,
    request_id: str | None,
    trace_id: str | None,
    stage_name: str,
    with_models: Path | None,
    limit: int,
) -> None:
    from streams.operations.whatif import Comparison, what_if

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    project = load_project()
    if with_models is not None:
        project = project.with_models_file(with_models)
    stages = stages_of(project, stage_name, dry_run=True)
    if len(stages) != 1:
        err.print(f"[red]error:[/] --stage names one stage, not the pipeline '{stage_name}'")
        raise typer.Exit(2)
    selection = select(topic, start, end, request_id, trace_id)

    async def go() -> list[Comparison]:
        return await what_if(
            cluster=project.cluster(),
            catalog=project.catalog,
            codec=project.codec,
            stage=stages[0],
            selection=selection,
            limit=limit,
        )

    try:
        comparisons = run_async(go)
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if not comparisons:
        console.print(f"no records of {topic} in that range")
        return
    config = with_models or project.settings.models_file
    table = Table(title=f"what if {stage_name} ran with {config} (nothing was published)")
    table.add_column("request", no_wrap=True, max_width=10)
    for side in ("old", "new"):
        table.add_column(f"{side} model", no_wrap=True, max_width=24, overflow="ellipsis")
        table.add_column(f"{side} ms", justify="right")
        table.add_column(f"{side} USD", justify="right")
        table.add_column(f"{side} output", max_width=40, overflow="fold")
    for c in comparisons:
        old = ("-", "-", "-", "(not found)")
        if c.old is not None:
            old = (c.old.model, f"{c.old.latency_ms:.0f}", f"{c.old.cost_usd:.6f}", c.old.text[:120])
        new = (c.new.model, f"{c.new.latency_ms:.0f}", f"{c.new.cost_usd:.6f}", c.new.text[:120])
        table.add_row(c.request_id[:10], *old, *new)
    console.print(table)
    pairs = [(c.old, c.new) for c in comparisons if c.old is not None]
    n = max(1, len(pairs))
    console.print(
        f"{len(comparisons)} inputs, {len(pairs)} with production's output: cost "
        f"${sum(o.cost_usd for o, _ in pairs):.6f} -> ${sum(w.cost_usd for _, w in pairs):.6f}; "
        f"mean stage time {sum(o.latency_ms for o, _ in pairs) / n:.0f} ms -> "
        f"{sum(w.latency_ms for _, w in pairs) / n:.0f} ms"
    )
