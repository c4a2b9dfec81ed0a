"""``podium trace``, ``report`` and ``audit``: where a request went, and how a pipeline is doing."""

from __future__ import annotations

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
    position_of,
    run_async,
    stages_of,
)
from streams.kafka.reading import parse_position


@app.command("trace")
def trace_cmd(
    ident: Annotated[str, typer.Argument(help="A request id or a trace id (32 hex digits).")],
    since: Annotated[str, typer.Option("--since", help="How far back to look.")] = "1d",
) -> None:
    """A request's waterfall: every hop's start, duration, status, retries (model, tokens, cost)."""
    import re

    from streams.operations.traces import read_spans, waterfall, waterfall_table

    project = load_project()
    position = guard(lambda: parse_position(since))
    # Request ids podium makes are 32 hex digits too: look the identifier up as both.
    could_be_trace = re.fullmatch(r"[0-9a-f]{32}", ident) is not None
    spans = run_async(
        lambda: read_spans(
            project.cluster(),
            project.codec,
            since=position,
            trace_id=ident if could_be_trace else None,
            request_id=ident,
        )
    )
    if not spans:
        err.print(
            f"no spans for {ident} in podium.telemetry since {since} "
            "(workers export there when PODIUM_OTEL_EXPORTER=kafka, the default)"
        )
        raise typer.Exit(1)
    rows = waterfall(spans)
    console.print(f"trace {rows[0].trace_id}" + ("" if rows[0].trace_id == ident else f" (request {ident})"))
    console.print(waterfall_table(rows))


@app.command("report")
def report_cmd(
    pipeline: str,
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path("report.html"),
    since: Annotated[str, typer.Option("--since", help="Offset, age (15m) or ISO time.")] = "1h",
    until: Annotated[str | None, typer.Option("--until")] = None,
    baseline_since: Annotated[
        str | None,
        typer.Option(
            "--baseline-since", help="Compare with this window (ends at --baseline-until or at --since)."
        ),
    ] = None,
    baseline_until: Annotated[str | None, typer.Option("--baseline-until")] = None,
) -> None:
    """One self-contained HTML file: pipeline graph, latency, outcomes over time, cost, slowest traces."""
    from streams.contracts.headers import now_ms
    from streams.operations.audit import pipeline_topics, run_audit
    from streams.operations.report import render, summarize_spans
    from streams.operations.traces import read_window

    project = load_project()
    stages = stages_of(project, pipeline)
    input_topic, terminal = guard(lambda: pipeline_topics(stages, project.catalog))
    start = guard(lambda: parse_position(since))
    end = position_of(until)

    async def go() -> str:
        cluster = project.cluster()
        spans = await read_window(cluster, project.codec, start, end)
        audit = await run_audit(cluster, input_topic, terminal, since=start, now_ms=now_ms(), grace_ms=60_000)
        baseline = None
        if baseline_since:
            b_end = parse_position(baseline_until) if baseline_until else start
            baseline = summarize_spans(
                await read_window(cluster, project.codec, parse_position(baseline_since), b_end)
            )
        return render(
            pipeline=pipeline,
            stages=stages,
            summary=summarize_spans(spans),
            audit=audit,
            baseline=baseline,
            window=f"since {since}" + (f" until {until}" if until else ""),
        )

    document = run_async(go)
    out.write_text(document)
    console.print(f"wrote {out} ({len(document) // 1024} KiB); open it in a browser")


@app.command("audit")
def audit(
    pipeline: str,
    since: Annotated[str | None, typer.Option("--since", help="Offset, age (15m) or ISO time.")] = None,
    grace: Annotated[float, typer.Option("--grace", help="Seconds a request may still be in flight.")] = 60.0,
) -> None:
    """Every request that entered the pipeline ended exactly once? Exits 1 when any is missing."""
    from streams.contracts.headers import now_ms
    from streams.operations.audit import pipeline_topics, run_audit

    project = load_project()
    stages = stages_of(project, pipeline)
    input_topic, terminal = guard(lambda: pipeline_topics(stages, project.catalog))
    position = position_of(since)
    report = run_async(
        lambda: run_audit(
            project.cluster(),
            input_topic,
            terminal,
            since=position,
            now_ms=now_ms(),
            grace_ms=int(grace * 1000),
        )
    )
    table = Table("outcome", "requests")
    for topic, count in sorted(report.by_topic.items()):
        table.add_row(f"ended in {topic}", str(count))
    table.add_row("ended more than once", str(len(report.duplicated)))
    table.add_row("still in flight", str(len(report.in_flight)))
    table.add_row("[red]missing[/]" if report.missing else "missing", str(len(report.missing)))
    console.print(f"{report.entered} request(s) entered {input_topic}")
    console.print(table)
    for rid in report.missing[:20]:
        console.print(f"missing: {rid}")
    if report.missing:
        raise typer.Exit(1)
