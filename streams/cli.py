"""The ``podium`` command line. Every command reads settings once and reports errors plainly."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
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
from streams.runtime import StageWorker, tune_worker_process
from streams.telemetry import Telemetry

__all__ = ["app", "main"]

app = typer.Typer(help="podium: a Kafka-native runtime for AI orchestration.", no_args_is_help=True)
broker_app = typer.Typer(help="The local Apache Kafka broker (KRaft, one node).", no_args_is_help=True)
topics_app = typer.Typer(help="The topic catalog in topics.yaml.", no_args_is_help=True)
schemas_app = typer.Typer(help="The Avro contracts in schemas/.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")

# Piped output (CI logs, `| less`) gets a readable width instead of rich's 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def _project() -> Project:
    return Project(load_settings())


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
    stages = _guard(lambda: [s for t in targets for s in resolve_stages(t)])
    if max_in_flight is not None:
        stages = [dataclasses.replace(s, max_in_flight=max_in_flight) for s in stages]

    tune_worker_process()

    async def go() -> None:
        telemetry = Telemetry.configure(project.settings.otel_exporter, "podium-worker")
        workers = [
            StageWorker(
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
        print(f"podium: running {', '.join(s.name for s in stages)}", flush=True)
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
    budget: Annotated[float | None, typer.Option(help="Latency budget in seconds.")] = None,
) -> None:
    """Validate, encode and publish records; prints each request id."""
    from streams.publish import Publisher

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

    async def go() -> None:
        async with Publisher(
            bootstrap=project.bootstrap(), catalog=project.catalog, codec=project.codec
        ) as pub:
            for record in records:
                print(await pub.publish(topic, record, budget_s=budget))

    _run(go)


@app.command("demo")
def demo() -> None:
    """The main job end to end: broker, topics, stages, sample records, where each one ended."""
    from streams.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    project = _guard(_project)
    code = _run(lambda: run_demo(project, console))
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
