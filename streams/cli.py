"""The ``podium`` command line. Every command reads settings once and reports errors plainly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from streams.admin import TopicAdmin, plan
from streams.config import load_settings
from streams.errors import PodiumError
from streams.project import Project, resolve_stages
from streams.runtime import tune_worker_process
from streams.stack import ensure_broker, release_broker
from streams.telemetry import Telemetry
from streams.windows import worker_for

__all__ = ["app", "main"]

app = typer.Typer(help="podium: a Kafka-native runtime for AI orchestration.", no_args_is_help=True)
broker_app = typer.Typer(help="The local Apache Kafka broker (KRaft, one node).", no_args_is_help=True)
topics_app = typer.Typer(help="The topic catalog in topics.yaml.", no_args_is_help=True)
schemas_app = typer.Typer(help="The Avro contracts in schemas/.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
ingest_app = typer.Typer(
    help="Real-time feeds in: news (RSS, Atom, JSON) and price ticks.", no_args_is_help=True
)
dlq_app = typer.Typer(help="Dead letters: what failed, why, and sending it back.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.add_typer(dlq_app, name="dlq")
app.add_typer(ingest_app, name="ingest")

# Piped output (CI logs, `| less`) gets a readable width instead of rich's 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def _project() -> Project:
    return Project(load_settings())


def _project_for(provider: str) -> Project:
    """The project with the models of ``--provider``: local (models.yaml) or sim (models.sim.yaml)."""
    if provider not in ("local", "sim"):
        err.print(f"[red]error:[/] --provider is local or sim, not '{provider}'")
        raise typer.Exit(2)
    project = _guard(_project)
    if provider == "sim":
        project = Project(project.settings.model_copy(update={"models_file": Path("models.sim.yaml")}))
    return project


def _run(make: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(make())  # type: ignore[arg-type]
    except PodiumError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except PodiumError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


# -- broker ---------------------------------------------------------------------------------
@broker_app.command("start")
def broker_start() -> None:
    """Fetch (once), format (once) and start the local broker; returns when it answers."""
    project = _guard(_project)
    if project.settings.bootstrap_servers:
        console.print(
            f"KAFKA_BOOTSTRAP_SERVERS is set ({project.settings.bootstrap_servers}): no local broker needed"
        )
        return
    state = _run(lambda: project.broker.start(echo=console.print))
    console.print(
        f"Kafka {state.version} is up at [bold]{state.bootstrap}[/] "
        f"(pid {state.pid}, data {project.broker.data_dir})"
    )


@broker_app.command("fetch")
def broker_fetch() -> None:
    """Download the broker's jars from Maven Central (once per version; cached)."""
    project = _guard(_project)
    libs = _guard(lambda: project.broker.fetch(echo=console.print))
    console.print(f"Kafka {project.settings.kafka_version} jars ready in {libs}")


@broker_app.command("stop")
def broker_stop() -> None:
    """Stop the local broker (controlled shutdown; data is kept)."""
    project = _guard(_project)
    stopped = _guard(project.broker.stop)
    console.print("broker stopped" if stopped else "no local broker was running")


@broker_app.command("reset")
def broker_reset(
    yes: Annotated[bool, typer.Option("--yes", help="Confirm deleting all topics.")] = False,
) -> None:
    """Stop the local broker and delete its data (every topic and offset)."""
    if not yes:
        err.print("this deletes every topic of the local broker; run again with --yes")
        raise typer.Exit(2)
    project = _guard(_project)
    project.broker.reset()
    console.print(f"deleted {project.broker.dir}")


@broker_app.command("status")
def broker_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Bootstrap address, version, data dir, pid and topics."""
    from streams.broker import wait_for_metadata

    project = _guard(_project)
    settings = project.settings
    info: dict[str, Any]
    if settings.bootstrap_servers:
        info = {"mode": "external", "bootstrap": settings.bootstrap_servers}
    else:
        state = _guard(project.broker.state)
        live = _guard(project.broker.running)
        info = {
            "mode": "local",
            "running": live is not None,
            "bootstrap": state.bootstrap if state else None,
            "version": state.version if state else settings.kafka_version,
            "data_dir": str(project.broker.data_dir),
            "pid": live.pid if live else None,
        }
    if info.get("mode") == "external" or info.get("running"):
        info["topics"] = _run(lambda: wait_for_metadata(str(info["bootstrap"]), 10))
    if as_json:
        console.print_json(json.dumps(info))
        return
    for key, value in info.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        console.print(f"[bold]{key:10}[/] {shown}")
    if info.get("mode") == "local" and not info["running"]:
        raise typer.Exit(1)


@broker_app.command("logs")
def broker_logs(
    lines: Annotated[int, typer.Option("-n", "--lines")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
) -> None:
    """The local broker's server log."""
    import time

    project = _guard(_project)
    console.print(project.broker.tail(lines), markup=False, highlight=False)
    path = project.broker.log_dir / "server.log"
    if follow and path.exists():
        with path.open() as fh:
            fh.seek(0, 2)
            try:
                while True:
                    line = fh.readline()
                    if line:
                        console.print(line.rstrip(), markup=False, highlight=False)
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                return


# -- topics ---------------------------------------------------------------------------------
@topics_app.command("apply")
def topics_apply(dry_run: Annotated[bool, typer.Option("--dry-run")] = False) -> None:
    """Create missing topics, grow partitions, update configs. Never deletes."""
    project = _guard(_project)
    catalog = _guard(lambda: project.catalog)

    async def go() -> list[Any]:
        async with TopicAdmin(project.bootstrap()) as admin:
            if dry_run:
                return plan(catalog, await admin.existing(catalog.names()))
            return await admin.apply(catalog)

    changes = _run(go)
    for change in changes:
        console.print(
            f"{'would ' if dry_run else ''}{change.action:9} [bold]{change.topic}[/]  {change.detail}"
        )
    console.print(f"{len(changes)} change(s); {len(catalog.topics)} topics in {catalog.path}")


@topics_app.command("list")
def topics_list() -> None:
    """The catalog, with each topic's state on the cluster."""
    project = _guard(_project)
    catalog = _guard(lambda: project.catalog)

    async def go() -> dict[str, Any]:
        async with TopicAdmin(project.bootstrap()) as admin:
            return await admin.existing(catalog.names())

    existing = _run(go)
    table = Table("topic", "role", "partitions", "value schema", "consumer", "on cluster")
    for t in catalog:
        have = existing.get(t.name)
        table.add_row(
            t.name,
            t.role,
            str(t.partitions),
            t.value_schema,
            t.consumer or "",
            f"{have.partitions} partitions" if have else "[red]missing[/]",
        )
    console.print(table)


@topics_app.command("describe")
def topics_describe(topic: str) -> None:
    """One topic: catalog entry and the cluster's partitions and configs."""
    project = _guard(_project)
    spec = _guard(lambda: project.catalog.get(topic))

    async def go() -> dict[str, Any]:
        async with TopicAdmin(project.bootstrap()) as admin:
            return await admin.existing([topic])

    have = _run(go).get(topic)
    for key, value in vars(spec).items():
        console.print(f"[bold]{key:18}[/] {value}")
    if have is None:
        console.print("[red]not on the cluster[/]: run `podium topics apply`")
        raise typer.Exit(1)
    console.print(f"[bold]{'on cluster':18}[/] {have.partitions} partitions")
    for key in sorted(spec.kafka_configs()):
        console.print(f"  {key} = {have.configs.get(key)}")


# -- schemas --------------------------------------------------------------------------------
@schemas_app.command("check")
def schemas_check() -> None:
    """Every schema parses; every change is backward and forward compatible with its history."""
    project = _guard(_project)
    store = _guard(lambda: project.schemas)
    problems = store.compatibility_problems()
    for name in store.names():
        current = store.current(name)
        console.print(
            f"{name:28} v{current.version}  fingerprint {current.fingerprint.hex()}  "
            f"history {len(store.history(name))}"
        )
    try:
        project.catalog  # noqa: B018 - loading validates that topics.yaml names known schemas
    except PodiumError as exc:
        problems.append(str(exc))
    for problem in problems:
        err.print(f"[red]problem:[/] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print("[green]all schemas parse and evolve compatibly; topics.yaml names only known schemas[/]")


# -- run ------------------------------------------------------------------------------------
@app.command("run")
def run(
    targets: Annotated[list[str], typer.Argument(help="Stage, pipeline or module:attribute.")],
    max_in_flight: Annotated[int | None, typer.Option(help="Override each stage's in-flight limit.")] = None,
) -> None:
    """Run stage workers until SIGTERM/SIGINT; then drain in-flight work and commit."""
    import dataclasses

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    project = _guard(_project)
    stages = _guard(lambda: resolve_stages(targets, project.settings))
    if max_in_flight is not None:
        stages = [
            dataclasses.replace(s, max_in_flight=max_in_flight) if hasattr(s, "max_in_flight") else s
            for s in stages
        ]

    tune_worker_process()

    async def go() -> None:
        telemetry = Telemetry.configure(
            project.settings.otel_exporter,
            "podium-worker",
            bootstrap=project.bootstrap(),
            codec=project.codec,
            prometheus_port=project.settings.metrics_port,
        )
        workers = [
            worker_for(
                s,
                bootstrap=project.bootstrap(),
                catalog=project.catalog,
                codec=project.codec,
                telemetry=telemetry,
            )
            for s in stages
        ]
        loop = asyncio.get_running_loop()

        def stop_all() -> None:
            for worker in workers:
                worker.request_stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_all)
        for worker in workers:
            await worker.start()
        print(
            f"podium: running {', '.join(s.name for s in stages)}; metrics on "
            f"http://127.0.0.1:{telemetry.metrics_port}/metrics",
            flush=True,
        )
        try:
            await asyncio.gather(*(w.run() for w in workers))
        finally:
            telemetry.shutdown()

    _run(go)


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
    from streams.audit import pipeline_topics
    from streams.follow import Follower
    from streams.project import pipeline_from
    from streams.publish import Publisher
    from streams.render import describe

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
    project = _guard(_project)
    terminal: list[str] = []
    if wait:
        stages = _guard(lambda: pipeline_from(topic, project.settings))
        if stages is None:
            err.print(
                f"[red]error:[/] no pipeline starts at {topic}, so there is no terminal topic to wait on"
            )
            raise typer.Exit(2)
        terminal = pipeline_topics(stages, project.catalog)[1]

    async def go() -> int:
        # Ingress decides that the request is traced: its span is recorded and exported like the
        # workers' (PODIUM_OTEL_EXPORTER), so `podium trace` shows the whole journey.
        telemetry = Telemetry.configure(
            project.settings.otel_exporter,
            "podium-publish",
            bootstrap=project.bootstrap(),
            codec=project.codec,
        )
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(telemetry.shutdown)
            follower = (
                await stack.enter_async_context(Follower(project.bootstrap(), terminal)) if wait else None
            )
            pub = await stack.enter_async_context(
                Publisher(
                    bootstrap=project.bootstrap(),
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

    raise typer.Exit(_run(go))


# -- debug: tail, replay, dlq ----------------------------------------------------------------
def _when(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("tail")
def tail(
    topic: str,
    from_beginning: Annotated[bool, typer.Option("--from-beginning")] = False,
    request_id: Annotated[str | None, typer.Option("--request-id")] = None,
    trace_id: Annotated[str | None, typer.Option("--trace-id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Follow a topic live, decoded: key, headers (trace, request, attempt, deadline), value."""
    from streams.reading import Selection, TopicReader
    from streams.render import describe

    project = _guard(_project)
    catalog = _guard(lambda: project.catalog)
    selection = Selection(topic, request_id=request_id, trace_id=trace_id)

    async def go() -> None:
        async with TopicReader(project.bootstrap()) as reader:
            err.print(f"following {topic} (Ctrl-C to stop)")
            async for record in reader.follow(topic, from_beginning):
                if not selection.matches(record):
                    continue
                shown = describe(record, catalog, project.codec)
                if as_json:
                    print(json.dumps(shown), flush=True)
                    continue
                console.print(
                    f"[bold]{record.topic}[/][{record.partition}]@{record.offset} {_when(record.timestamp)} "
                    f"request={shown['request_id']} trace={shown['trace_id']} attempt={shown['attempt']}"
                    + (f" deadline={_when(shown['deadline_ms'])}" if shown["deadline_ms"] else "")
                )
                console.print_json(json.dumps(shown.get("value") or shown.get("value_error")))

    try:
        _run(go)
    except KeyboardInterrupt:
        err.print("stopped")


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

    from streams.reading import Selection, parse_position
    from streams.replay import Checkpoint, replay

    if (dump is None) == (into is None) and not dry_run:
        err.print("give exactly one of --dump FILE or --into TOPIC (or --dry-run)")
        raise typer.Exit(2)
    project = _guard(_project)
    catalog = _guard(lambda: project.catalog)
    selection = _guard(
        lambda: Selection(
            topic,
            start=parse_position(start) if start else None,
            end=parse_position(end) if end else None,
            request_id=request_id,
            trace_id=trace_id,
        )
    )
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

            return await replay(
                bootstrap=project.bootstrap(),
                catalog=catalog,
                codec=project.codec,
                selection=selection,
                checkpoints=checkpoints,
                into=into,
                dump=out,
                dry_run=dry_run,
                restart=restart,
                telemetry=Telemetry.configure(
                    project.settings.otel_exporter,
                    "podium-replay",
                    bootstrap=project.bootstrap(),
                    codec=project.codec,
                ),
                progress=advance,
            )

    try:
        count = _run(go)
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
    from streams.reading import Selection, parse_position
    from streams.whatif import Comparison, what_if

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    project = _guard(_project)
    if with_models is not None:
        project = Project(project.settings.model_copy(update={"models_file": with_models}))
    stages = _guard(lambda: resolve_stages(stage_name, project.settings, dry_run=True))
    if len(stages) != 1:
        err.print(f"[red]error:[/] --stage names one stage, not the pipeline '{stage_name}'")
        raise typer.Exit(2)
    selection = _guard(
        lambda: Selection(
            topic,
            start=parse_position(start) if start else None,
            end=parse_position(end) if end else None,
            request_id=request_id,
            trace_id=trace_id,
        )
    )

    async def go() -> list[Comparison]:
        return await what_if(
            bootstrap=project.bootstrap(),
            catalog=project.catalog,
            codec=project.codec,
            stage=stages[0],
            selection=selection,
            limit=limit,
        )

    try:
        comparisons = _run(go)
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


@dlq_app.command("list")
def dlq_list(since: Annotated[str | None, typer.Option("--since")] = None) -> None:
    """Dead letters per stage and error type: count, first and last seen."""
    from streams.deadletters import read_dead_letters, summarize
    from streams.reading import parse_position

    project = _guard(_project)
    position = _guard(lambda: parse_position(since)) if since else None
    letters = _run(
        lambda: read_dead_letters(project.bootstrap(), project.catalog, project.codec, since=position)
    )
    table = Table("stage", "error type", "count", "first seen", "last seen")
    for group in summarize(letters):
        table.add_row(
            group.stage, group.error_type, str(group.count), _when(group.first_ms), _when(group.last_ms)
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    stage: Annotated[str | None, typer.Option("--stage")] = None,
    error_type: Annotated[str | None, typer.Option("--error-type")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
) -> None:
    """Dead letters with their reason, original coordinates and attempts."""
    from streams.deadletters import read_dead_letters

    project = _guard(_project)
    letters = _run(
        lambda: read_dead_letters(
            project.bootstrap(), project.catalog, project.codec, stage=stage, error_type=error_type
        )
    )
    for item in letters[-limit:]:
        letter = item.letter
        console.print(
            f"[bold]{letter['stage']}[/] {letter['error_type']} request={letter['request_id']} "
            f"from {letter['original_topic']}[{letter['original_partition']}]@{letter['original_offset']} "
            f"attempts={letter['attempts']} at {_when(letter['dead_lettered_at_ms'])}"
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
    from streams.deadletters import read_dead_letters, redrive
    from streams.reading import parse_position

    project = _guard(_project)
    position = _guard(lambda: parse_position(since)) if since else None

    async def go() -> tuple[int, int]:
        letters = await read_dead_letters(
            project.bootstrap(),
            project.catalog,
            project.codec,
            stage=stage,
            error_type=error_type,
            since=position,
        )
        return await redrive(project.bootstrap(), project.catalog, project.codec, letters, dry_run=dry_run)

    sent, skipped = _run(go)
    console.print(
        f"{'would redrive' if dry_run else 'redrove'} {sent} dead letter(s) of stage {stage}"
        + (f"; {skipped} already redriven before" if skipped else "")
    )


@app.command("trace")
def trace_cmd(
    ident: Annotated[str, typer.Argument(help="A request id or a trace id (32 hex digits).")],
    since: Annotated[str, typer.Option("--since", help="How far back to look.")] = "1d",
) -> None:
    """A request's waterfall: every hop's start, duration, status, retries (model, tokens, cost)."""
    import re

    from streams.reading import parse_position
    from streams.waterfall import read_spans, waterfall, waterfall_table

    project = _guard(_project)
    position = _guard(lambda: parse_position(since))
    # Request ids podium makes are 32 hex digits too: look the identifier up as both.
    could_be_trace = re.fullmatch(r"[0-9a-f]{32}", ident) is not None
    spans = _run(
        lambda: read_spans(
            project.bootstrap(),
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
    from streams.audit import pipeline_topics, run_audit
    from streams.headers import now_ms
    from streams.reading import parse_position
    from streams.report import render, summarize_spans
    from streams.waterfall import read_window

    project = _guard(_project)
    stages = _guard(lambda: resolve_stages(pipeline, project.settings))
    input_topic, terminal = _guard(lambda: pipeline_topics(stages, project.catalog))
    start = _guard(lambda: parse_position(since))
    end = _guard(lambda: parse_position(until)) if until else None

    async def go() -> str:
        bootstrap = project.bootstrap()
        spans = await read_window(bootstrap, project.codec, start, end)
        audit = await run_audit(
            bootstrap, input_topic, terminal, since=start, now_ms=now_ms(), grace_ms=60_000
        )
        baseline = None
        if baseline_since:
            b_end = parse_position(baseline_until) if baseline_until else start
            baseline = summarize_spans(
                await read_window(bootstrap, project.codec, parse_position(baseline_since), b_end)
            )
        return render(
            pipeline=pipeline,
            stages=stages,
            summary=summarize_spans(spans),
            audit=audit,
            baseline=baseline,
            window=f"since {since}" + (f" until {until}" if until else ""),
        )

    document = _run(go)
    out.write_text(document)
    console.print(f"wrote {out} ({len(document) // 1024} KiB); open it in a browser")


@app.command("audit")
def audit(
    pipeline: str,
    since: Annotated[str | None, typer.Option("--since", help="Offset, age (15m) or ISO time.")] = None,
    grace: Annotated[float, typer.Option("--grace", help="Seconds a request may still be in flight.")] = 60.0,
) -> None:
    """Every request that entered the pipeline ended exactly once? Exits 1 when any is missing."""
    from streams.audit import pipeline_topics, run_audit
    from streams.headers import now_ms
    from streams.reading import parse_position

    project = _guard(_project)
    stages = _guard(lambda: resolve_stages(pipeline, project.settings))
    input_topic, terminal = _guard(lambda: pipeline_topics(stages, project.catalog))
    position = _guard(lambda: parse_position(since)) if since else None
    report = _run(
        lambda: run_audit(
            project.bootstrap(),
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


models_app = typer.Typer(help="The model gateway's providers, prices and policies.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("status")
def models_status(
    probe: Annotated[bool, typer.Option("--probe", help="Call each route once.")] = False,
) -> None:
    """Providers (and where their keys come from), prices, each stage's chain; --probe calls them."""
    import os
    import time
    from dataclasses import replace

    from agents.gateway.config import build_gateway, load_gateway_config
    from agents.providers import ChatRequest

    project = _guard(_project)
    config = _guard(lambda: load_gateway_config(project.settings.models_file))
    providers = Table("provider", "kind", "base url", "key from", "req/min", "tok/min")
    for name, p in config.providers.items():
        source = f"${p.api_key_env}" if p.api_key_env else (str(p.api_key_file) if p.api_key_file else "-")
        providers.add_row(
            name,
            p.kind,
            p.base_url,
            source,
            str(p.requests_per_minute or "-"),
            str(p.tokens_per_minute or "-"),
        )
    console.print(providers)
    prices = Table("model", "input $/Mtok", "output $/Mtok", "cached input $/Mtok")
    for model, price in config.prices.items():
        prices.add_row(
            model,
            f"{price.input:g}",
            f"{price.output:g}",
            "-" if price.cached_input is None else f"{price.cached_input:g}",
        )
    console.print(prices)
    routes = Table("stage", "chain (fallback order)", "timeout s", "retries")
    for stage, policy in config.stages.items():
        chain = " -> ".join(f"{r.provider}/{r.model}" for r in policy.chain)
        routes.add_row(stage, chain, f"{policy.timeout_s:g}", str(policy.max_retries))
    console.print(routes)
    _print_circuits(project)
    if not probe:
        return

    async def go() -> list[tuple[str, str, str]]:
        gateway = build_gateway(config, dict(os.environ))
        rows = []
        ping = ChatRequest(model="", messages=[{"role": "user", "content": "ping"}], max_tokens=8)
        try:
            for stage in config.stages:
                for route in config.policy(stage).chain:
                    started = time.perf_counter()
                    try:
                        await gateway.provider(route.provider).complete(
                            replace(ping, model=route.model), 10.0
                        )
                        rows.append(
                            (
                                f"{route.provider}/{route.model}",
                                "ok",
                                f"{(time.perf_counter() - started) * 1000:.0f} ms",
                            )
                        )
                    except PodiumError as exc:
                        rows.append((f"{route.provider}/{route.model}", "[red]failed[/]", str(exc)[:80]))
        finally:
            await gateway.aclose()
        return rows

    probes = Table("route", "probe", "detail")
    for row in _run(go):
        probes.add_row(*row)
    console.print(probes)


def _print_circuits(project: Project) -> None:
    """The circuits the workers reported to podium.circuits, newest state per worker and route."""
    from streams.errors import BrokerError
    from streams.reading import Selection, TopicReader

    async def read() -> dict[bytes, dict[str, Any]]:
        latest: dict[bytes, dict[str, Any]] = {}
        async with TopicReader(project.bootstrap()) as reader:
            async for record in reader.read(await reader.plan(Selection("podium.circuits"))):
                if record.key is not None and record.value is not None:
                    latest[record.key] = project.codec.decode("podium.CircuitState", record.value)
        return latest

    try:
        latest = asyncio.run(read())
    except (BrokerError, PodiumError) as exc:
        console.print(f"circuits: not read ({exc})")
        return
    if not latest:
        console.print("circuits: no worker has reported a change (every circuit closed since start)")
        return
    table = Table("route", "worker", "state", "since", title="circuits reported by the workers")
    now = time.time()
    for state in sorted(latest.values(), key=lambda c: (c["provider"], c["model"], c["worker"])):
        colour = {"open": "red", "half_open": "yellow"}.get(state["state"], "green")
        table.add_row(
            f"{state['provider']}/{state['model']}",
            state["worker"],
            f"[{colour}]{state['state']}[/]",
            f"{now - state['changed_ms'] / 1000:.0f}s ago",
        )
    console.print(table)


@models_app.command("eval-classifier")
def eval_classifier(seed: Annotated[int, typer.Option("--seed")] = 7) -> None:
    """Accuracy of the offline intent classifier (a local TF-IDF model) on a held-out split."""
    from agents.classifier import EXAMPLES, evaluate

    result = evaluate(seed=seed)
    console.print(
        f"offline intent classifier (TF-IDF + logistic regression, a local model) on {EXAMPLES.name}: "
        f"accuracy {result.accuracy:.1%} on {result.test_size} held-out examples "
        f"(trained on {result.train_size})"
    )


def _ingest_project(url: str | None, replay_file: Path | None) -> Project:
    """What both ingesters check first: exactly one source, quiet client logs, a project."""
    if (url is None) == (replay_file is None):
        err.print("give exactly one of --url or --replay-file")
        raise typer.Exit(2)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return _guard(_project)


@ingest_app.command("news")
def ingest_news(
    url: Annotated[str | None, typer.Option("--url", help="An RSS, Atom or JSON feed to poll.")] = None,
    replay_file: Annotated[
        Path | None, typer.Option("--replay-file", help="A recorded feed (JSON lines) to play instead.")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls of --url.")] = 30.0,
    rounds: Annotated[int | None, typer.Option(help="Stop after this many polls (default: run on).")] = None,
    speed: Annotated[
        float | None, typer.Option(help="Replay at this many times the recorded pace (default: at once).")
    ] = None,
) -> None:
    """News items onto market.news: new ones once (a restart re-publishes nothing), malformed
    entries to market.ingest.failed with their raw text."""
    from streams.feeds import FAILED_TOPIC, NEWS_TOPIC, NewsIngester, poll_feed
    from streams.feeds import replay_file as play
    from streams.publish import Publisher

    project = _ingest_project(url, replay_file)
    source = url or str(replay_file)

    async def go() -> None:
        async with Publisher(
            bootstrap=project.bootstrap(), catalog=project.catalog, codec=project.codec
        ) as pub:
            ingester = NewsIngester(pub, project.catalog, project.codec, source)
            known = await ingester.load_seen(project.bootstrap())
            console.print(f"{known} item(s) already on {NEWS_TOPIC}; they will not be published again")
            if replay_file is not None:
                await play(ingester, replay_file, speed)
            else:
                assert url is not None

                def report(done: int, new: int, status: str) -> None:
                    console.print(f"poll {done}: {status}")

                await poll_feed(ingester, url, interval_s=interval, rounds=rounds, on_round=report)
            console.print(
                f"{ingester.published} new item(s) on {NEWS_TOPIC}, "
                f"{ingester.failed} malformed to {FAILED_TOPIC}"
            )

    _run(go)


@ingest_app.command("prices")
def ingest_prices(
    url: Annotated[
        str | None, typer.Option("--url", help="http(s):// JSON to poll, or ws(s):// to stream.")
    ] = None,
    replay_file: Annotated[
        Path | None, typer.Option("--replay-file", help="Recorded ticks (JSON lines) to play instead.")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls of an http --url.")] = 1.0,
    rounds: Annotated[int | None, typer.Option(help="Stop after this many polls or messages.")] = None,
    speed: Annotated[
        float | None, typer.Option(help="Replay at this many times the recorded pace (default: at once).")
    ] = None,
) -> None:
    """Price ticks onto market.ticks, keyed by symbol with the source's timestamp; per symbol
    only newer ticks go out (a restart resumes), unreadable ones to market.ingest.failed."""
    from streams.publish import Publisher
    from streams.ticks import TICKS_TOPIC, TickIngester, poll_ticks, replay_ticks, stream_ticks

    project = _ingest_project(url, replay_file)

    async def go() -> None:
        async with Publisher(
            bootstrap=project.bootstrap(), catalog=project.catalog, codec=project.codec
        ) as pub:
            ingester = TickIngester(pub, project.codec, url or str(replay_file))
            symbols = await ingester.load_last(project.bootstrap())
            console.print(f"resuming {symbols} symbol(s) from {TICKS_TOPIC}")
            if replay_file is not None:
                await replay_ticks(ingester, replay_file, speed)
            elif url is not None and url.startswith(("ws://", "wss://")):
                await stream_ticks(ingester, url, max_messages=rounds)
            elif url is not None:
                await poll_ticks(
                    ingester,
                    url,
                    interval_s=interval,
                    rounds=rounds,
                    on_round=lambda done, new, status: console.print(f"poll {done}: {status}"),
                )
            console.print(f"{ingester.published} tick(s) on {TICKS_TOPIC}, {ingester.failed} unreadable")

    _run(go)


@app.command("sim")
def sim(
    port: Annotated[int, typer.Option("--port")] = 8900,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    fault_rate: Annotated[float, typer.Option("--fault-rate", help="Share of calls that fail, 0..1.")] = 0.0,
    faults: Annotated[str, typer.Option("--faults", help="Comma-separated kinds to draw from.")] = "",
    latency_ms: Annotated[float, typer.Option("--latency-ms")] = 20.0,
    tokens_per_s: Annotated[float, typer.Option("--tokens-per-s")] = 2000.0,
) -> None:
    """Run the provider simulator (a stand-in, not a model): OpenAI and Anthropic protocols, faults."""
    import uvicorn

    from agents.simulator import FAULTS, SimConfig, make_app

    chosen = tuple(f for f in faults.split(",") if f) or FAULTS
    unknown = set(chosen) - set(FAULTS)
    if unknown:
        err.print(f"unknown fault kind(s) {sorted(unknown)}; choose from {', '.join(FAULTS)}")
        raise typer.Exit(2)
    config = SimConfig(
        seed=seed, fault_rate=fault_rate, faults=chosen, latency_ms=latency_ms, tokens_per_s=tokens_per_s
    )
    console.print(
        f"provider simulator (stand-in, not a model) on http://127.0.0.1:{port}: "
        f"OpenAI at /v1/chat/completions, Anthropic at /v1/messages; faults {fault_rate:.0%} of "
        f"{', '.join(chosen)}; force one with the header x-sim-fault"
    )
    uvicorn.run(make_app(config), host="127.0.0.1", port=port, log_level="warning")


@app.command("up")
def up(
    targets: Annotated[
        list[str] | None, typer.Argument(help="Pipelines or stages (default: support, content, market).")
    ] = None,
    provider: Annotated[
        str, typer.Option(help="local (models.yaml) or sim (simulator + models.sim.yaml).")
    ] = "local",
    keep_broker: Annotated[bool, typer.Option(help="Leave a broker this command started running.")] = False,
) -> None:
    """Start everything (broker, topics, stages) and keep it running until Ctrl-C."""
    from agents.support.demo import simulator
    from streams.stack import Stack

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    project = _project_for(provider)
    stages = _guard(lambda: resolve_stages(targets or ["support", "content", "market"], project.settings))
    tune_worker_process()
    inputs = {s.consumes for s in stages}
    examples = [
        ("support.requests", """podium publish support.requests --json """
         """'{"body": "How do I reset my password?"}' --wait"""),
        ("content.briefs", """podium publish content.briefs --json '{"topic": "Exporting dashboards", """
         """"points": ["CSV exports are capped at 1,000,000 rows per tile."]}' --wait"""),
        # A recording replayed as it is meets the ingesters' de-duplication and the windows' late
        # rule after its first run; the market demo replays it shifted to now, as a new session.
        ("market.ticks", "podium ingest prices --url <json or ws:// feed>    podium ingest news --url <rss>"),
        ("market.news", "podium demo --pipelines market   (the recorded feeds as a new session)"),
    ]  # fmt: skip
    hints = "".join(f"  {command}\n" for topic, command in examples if topic in inputs)

    async def go() -> None:
        with simulator(provider, console):
            stack = Stack(
                project,
                stages,
                echo=console.print,
                service_name="podium-up",
                metrics_port=project.settings.metrics_port,
                keep_broker=keep_broker,
            )
            async with stack:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, stack.request_stop)
                console.print(
                    f"[green]up[/]: {len(stages)} stage(s): {', '.join(s.name for s in stages)}; metrics on "
                    f"http://127.0.0.1:{stack.metrics_port}/metrics. In another terminal:\n{hints}"
                    "  podium tail <topic>    podium trace <request-id>    podium dlq list\n"
                    "Ctrl-C drains in-flight work, commits and stops.",
                    highlight=False,
                    soft_wrap=True,
                )
                await stack.wait()

    _run(go)


@app.command("serve")
def serve(
    pipelines: Annotated[
        list[str] | None, typer.Argument(help="Pipelines to front (default: support).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8080,
    publish_timeout: Annotated[
        float, typer.Option(help="Seconds before an unacknowledged publish is a 503.")
    ] = 5.0,
) -> None:
    """The HTTP gateway: POST /v1/<pipeline>/requests publishes and waits; GET /v1/requests/<id>."""
    import uvicorn

    from streams.audit import pipeline_topics
    from streams.ingress import Entry, create_app

    project = _guard(_project)
    entries = []
    for name in pipelines or ["support"]:
        stages = _guard(lambda name=name: resolve_stages(name, project.settings))  # type: ignore[misc]
        input_topic, terminal = pipeline_topics(stages, project.catalog)
        # A pipeline streams tokens when the catalog has a chunk topic under its name.
        stream_topic = next(
            (
                t.name
                for t in project.catalog
                if t.value_schema == "podium.StreamChunk" and t.name.startswith(f"{name}.")
            ),
            None,
        )
        entries.append(Entry(name, input_topic, tuple(terminal), stream_topic))
    bootstrap = _guard(project.bootstrap)
    telemetry = Telemetry.configure(
        project.settings.otel_exporter, "podium-serve", bootstrap=bootstrap, codec=project.codec
    )
    app_ = create_app(
        project, entries, bootstrap=bootstrap, publish_timeout_s=publish_timeout, telemetry=telemetry
    )
    console.print(f"podium serve: http://{host}:{port}/docs (OpenAPI), Kafka at {bootstrap}")
    try:
        uvicorn.run(app_, host=host, port=port, log_level="warning")
    finally:
        telemetry.shutdown()


@app.command("demo")
def demo(
    provider: Annotated[
        str,
        typer.Option(
            help="local: the offline models (models.yaml). sim: the provider simulator with injected "
            "faults (models.sim.yaml), to watch retries and fallbacks."
        ),
    ] = "local",
    pipelines: Annotated[
        str, typer.Option(help="Which pipelines, comma separated: support, content, market.")
    ] = "support,content,market",
    reports: Annotated[
        Path, typer.Option(help="Folder for the content articles and market reports (a run each).")
    ] = Path("reports"),
) -> None:
    """The pipelines end to end on the bundled samples: broker, topics, stages, where each
    request ended; content articles and market reports with charts written to a folder."""
    from agents.content.demo import run_content_demo
    from agents.market.demo import run_market_demo
    from agents.support.demo import run_support_demo, simulator

    project = _project_for(provider)
    chosen = [p.strip() for p in pipelines.split(",") if p.strip()]
    unknown = set(chosen) - {"support", "content", "market"}
    if unknown or not chosen:
        err.print(f"[red]error:[/] --pipelines names support, content and market, not {sorted(unknown)}")
        raise typer.Exit(2)
    logging.basicConfig(level=logging.WARNING)
    folder = reports.resolve() / time.strftime("%Y%m%d-%H%M%S")

    async def all_pipelines() -> int:
        code = 0
        # One broker for every pipeline: started here when none runs, stopped at the end.
        started = await ensure_broker(project, console.print)
        try:
            with simulator(provider, console):
                if "support" in chosen:
                    console.rule("support: classify, retrieve, generate, screen")
                    code |= await run_support_demo(project, console)
                if "content" in chosen:
                    console.rule("content: draft, factcheck | style, join, seo")
                    code |= await run_content_demo(project, console, folder / "content")
                if "market" in chosen:
                    console.rule("market: news and ticks in, signals, windowed join, summaries with charts")
                    code |= await run_market_demo(project, console, folder / "market")
        finally:
            release_broker(project, started, console.print)
        if "content" in chosen or "market" in chosen:
            console.print(f"[bold]reports written to {folder}[/] (open market/index.html for the charts)")
        return code

    raise typer.Exit(_run(all_pipelines))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
