"""``podium topics`` and ``podium schemas``: the topic catalog and the Avro contracts."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from streams.cli.base import (
    app,
    console,
    err,
    guard,
    load_project,
    run_async,
)
from streams.contracts.releases import LOCK_FILE, release_problems, relock
from streams.errors import PodiumError
from streams.kafka.admin import TopicAdmin, plan, replication_warnings

topics_app = typer.Typer(help="The topic catalog in topics.yaml.", no_args_is_help=True)
schemas_app = typer.Typer(help="The Avro contracts in schemas/.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")


@topics_app.command("apply")
def topics_apply(dry_run: Annotated[bool, typer.Option("--dry-run")] = False) -> None:
    """Create missing topics, grow partitions, update configs. Never deletes.

    Warns when a multi-broker cluster keeps a topic on fewer than three replicas.
    """
    project = load_project()
    catalog = guard(lambda: project.catalog)

    async def go() -> tuple[list[Any], list[str]]:
        async with TopicAdmin(project.cluster()) as admin:
            # Read before applying: the warning is about what the catalog and the cluster make of
            # each topic, and a topic apply creates gets the replicas the plan expected.
            existing, facts = await admin.existing(catalog.names()), await admin.facts()
            warnings = replication_warnings(catalog, existing, facts)
            if dry_run:
                return plan(catalog, existing, facts), warnings
            return await admin.apply(catalog), warnings

    changes, warnings = run_async(go)
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    for change in changes:
        console.print(
            f"{'would ' if dry_run else ''}{change.action:9} [bold]{change.topic}[/]  {change.detail}"
        )
    console.print(f"{len(changes)} change(s); {len(catalog.topics)} topics in {catalog.path}")


@topics_app.command("list")
def topics_list() -> None:
    """The catalog, with each topic's state on the cluster."""
    project = load_project()
    catalog = guard(lambda: project.catalog)

    async def go() -> dict[str, Any]:
        async with TopicAdmin(project.cluster()) as admin:
            return await admin.existing(catalog.names())

    existing = run_async(go)
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
    project = load_project()
    spec = guard(lambda: project.catalog.get(topic))

    async def go() -> dict[str, Any]:
        async with TopicAdmin(project.cluster()) as admin:
            return await admin.existing([topic])

    have = run_async(go).get(topic)
    for key, value in vars(spec).items():
        console.print(f"[bold]{key:18}[/] {value}")
    if have is None:
        console.print("[red]not on the cluster[/]: run `podium topics apply`")
        raise typer.Exit(1)
    console.print(f"[bold]{'on cluster':18}[/] {have.partitions} partitions, {have.replicas} replica(s)")
    for key in sorted(spec.kafka_configs(have.replicas)):
        console.print(f"  {key} = {have.configs.get(key)}")


# -- schemas --------------------------------------------------------------------------------
@schemas_app.command("check")
def schemas_check() -> None:
    """Every schema parses; every change is backward and forward compatible with its history.

    Every version released in schemas/schemas.lock must still be kept, as the .avsc or in history/.

    A released .avsc edited in place fails, naming the field that changed.

    To change one, copy its released text to schemas/history/<stem>.v<N>.avsc first.

    After a legitimate change, `podium schemas lock` records the new release.
    """
    project = load_project()
    store = guard(lambda: project.schemas)
    problems = store.compatibility_problems()
    problems.extend(guard(lambda: release_problems(store, project.settings.schemas_dir)))
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
    console.print(
        "[green]all schemas parse, keep their released versions and evolve compatibly; "
        "topics.yaml names only known schemas[/]"
    )


@schemas_app.command("lock")
def schemas_lock() -> None:
    """Record every schema version as released in schemas/schemas.lock.

    Run it after a legitimate change: a new schema, or a new version with its predecessor in history/.

    It refuses while a change is incompatible (see `podium schemas check`).

    It names each released version it drops (an .avsc edited in place, a history file removed).

    Drop only versions that no record was ever written with: those records would not decode.
    """
    project = load_project()
    store = guard(lambda: project.schemas)
    for warning in guard(lambda: relock(store, project.settings.schemas_dir)):
        err.print(f"[yellow]warning:[/] {warning}")
    console.print(f"[green]wrote {project.settings.schemas_dir / LOCK_FILE}[/]: {len(store.names())} schemas")
