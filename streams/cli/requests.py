"""``podium publish`` and ``podium tail``: send requests in, watch records go by."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.base import (
    app,
    console,
    err,
    guard,
    load_project,
    run_async,
    select,
    telemetry_for,
    when,
)


@app.command("publish")
def publish(
    topic: str,
    record_json: Annotated[str | None, typer.Option("--json", help="One record as JSON.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="JSON lines, one record each.")] = None,
    budget: Annotated[
        float | None, typer.Option(help="Latency budget in seconds (default: the topic's budget).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow each request to its terminal topic; print it as JSON.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="How long --wait waits, in seconds.")] = 30.0,
) -> None:
    """Validate, encode and publish records; prints each request id (or, with --wait, where
    each request ended and the record it ended as)."""
    from streams.ingress.publish import Publisher
    from streams.kafka.follow import Follower
    from streams.kafka.readable import describe
    from streams.operations.audit import pipeline_topics

    if (record_json is None) == (file is None):
        err.print("give exactly one of --json or --file")
        raise typer.Exit(2)
    lines = [record_json] if record_json is not None else file.read_text().splitlines()  # type: ignore[union-attr]
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            err.print(f"[red]error:[/] record {number} is not JSON: {exc}")
            raise typer.Exit(2) from None
    project = load_project()
    terminal: list[str] = []
    if wait:
        stages = guard(lambda: project.pipeline_from(topic))
        if stages is None:
            err.print(
                f"[red]error:[/] no pipeline starts at {topic}, so there is no terminal topic to wait on"
            )
            raise typer.Exit(2)
        terminal = guard(lambda: pipeline_topics(stages, project.catalog))[1]

    async def go() -> int:
        # Ingress decides that the request is traced: its span is recorded and exported like the
        # workers' (PODIUM_OTEL_EXPORTER), so `podium trace` shows the whole journey.
        telemetry = telemetry_for(project, "podium-publish")
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(telemetry.shutdown)
            follower = (
                await stack.enter_async_context(Follower(project.cluster(), terminal)) if wait else None
            )
            pub = await stack.enter_async_context(
                Publisher(
                    cluster=project.cluster(),
                    catalog=project.catalog,
                    codec=project.codec,
                    telemetry=telemetry,
                )
            )
            ids = []
            for record in records:
                ids.append(await pub.publish(topic, record, budget_s=budget))
                if not wait:
                    print(ids[-1], flush=True)
            if follower is None:
                return 0
            arrived = await follower.collect(set(ids), timeout_s=timeout)
            for rid in ids:
                if rid in arrived:
                    print(json.dumps(describe(arrived[rid][0], project.catalog, project.codec)), flush=True)
            missing = [rid for rid in ids if rid not in arrived]
            for rid in missing:
                err.print(
                    f"[yellow]{rid}[/] reached none of {', '.join(terminal)} within {timeout:.0f}s: are "
                    f"the stages running (`podium up` or `podium run ...`)? `podium trace {rid}` shows "
                    "how far it got"
                )
            return 1 if missing else 0

    raise typer.Exit(run_async(go))


@app.command("tail")
def tail(
    topic: str,
    from_beginning: Annotated[bool, typer.Option("--from-beginning")] = False,
    request_id: Annotated[str | None, typer.Option("--request-id")] = None,
    trace_id: Annotated[str | None, typer.Option("--trace-id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Follow a topic live, decoded: key, headers (trace, request, attempt, deadline), value."""
    from streams.kafka.readable import describe
    from streams.kafka.reading import TopicReader

    project = load_project()
    catalog = guard(lambda: project.catalog)
    selection = select(topic, request_id=request_id, trace_id=trace_id)

    async def go() -> None:
        async with TopicReader(project.cluster()) as reader:
            err.print(f"following {topic} (Ctrl-C to stop)")
            async for record in reader.follow(topic, from_beginning):
                if not selection.matches(record):
                    continue
                shown = describe(record, catalog, project.codec)
                if as_json:
                    print(json.dumps(shown), flush=True)
                    continue
                console.print(
                    f"[bold]{record.topic}[/][{record.partition}]@{record.offset} {when(record.timestamp)} "
                    f"request={shown['request_id']} trace={shown['trace_id']} attempt={shown['attempt']}"
                    + (f" deadline={when(shown['deadline_ms'])}" if shown["deadline_ms"] else "")
                )
                console.print_json(json.dumps(shown.get("value") or shown.get("value_error")))

    try:
        run_async(go)
    except KeyboardInterrupt:
        err.print("stopped")
