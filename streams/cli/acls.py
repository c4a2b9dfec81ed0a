"""``podium acls``: least privilege for each stage's principal, from the catalog and the pipelines.

``plan`` needs no cluster: it prints what the stages need. ``apply`` reads the cluster's ACLs and
creates the missing ones (``--dry-run``: only says what it would do); it deletes nothing unless
``--prune``, and then only ACLs of stage principals that no stage needs any more (of the named
stages' principals, when stages or pipelines are named).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from streams.cli.base import app, console, err, guard, load_project, run_async
from streams.kafka.acls import Acl, AclAdmin, AclChanges, diff_acls, plan_acls
from streams.kafka.principals import WORKER, kafka_principal
from streams.runtime.access import merge_access, process_access
from streams.runtime.project import Project

acls_app = typer.Typer(
    help="Kafka ACLs for each stage's principal (stage-<name>), derived from topics.yaml and the pipelines.",
    no_args_is_help=True,
)
app.add_typer(acls_app, name="acls")

Targets = Annotated[
    list[str] | None,
    typer.Argument(help="Pipelines or stages (default: every registered pipeline).", show_default=False),
]


def _wanted(project: Project, targets: list[str] | None) -> list[Acl]:
    def build() -> list[Acl]:
        if targets:
            stages: list[Any] = project.stages(targets)
        else:
            # Pipeline by pipeline (not project.stages, which keeps the first of two stages of one
            # name): two stages of one name share a principal, which needs what both do.
            stages = [s for name in project.pipelines.names() for s in project.build(name)]
        return plan_acls([*merge_access(stages, project.catalog), process_access(stages, project.catalog)])

    wanted = guard(build)
    if not wanted:
        err.print("[red]error:[/] no stages: the entry point registered no pipeline, and none was named")
        raise typer.Exit(2)
    return wanted


@acls_app.command("plan")
def acls_plan(targets: Targets = None) -> None:
    """What each stage's principal needs: READ on what it consumes and on its group, WRITE on what
    it produces to (its outputs, retry and dead-letter topics). Reads no cluster."""
    project = load_project()
    wanted = _wanted(project, targets)
    table = Table("principal", "operation", "resource", "name", "permission")
    for acl in wanted:
        table.add_row(*acl.row())
    console.print(table)
    worker = kafka_principal(WORKER)
    stages = {a.principal for a in wanted if a.principal != worker}
    shared = sum(a.principal == worker for a in wanted)
    console.print(
        f"{len(wanted) - shared} ACL(s) for {len(stages)} stage principal(s) and {shared} for the "
        f"worker processes' shared clients ({WORKER}: caches, circuits, spans); "
        "`podium acls apply` makes them"
    )


@acls_app.command("apply")
def acls_apply(
    targets: Targets = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Also delete stage principals' ACLs no stage needs.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would change; change nothing.")
    ] = False,
) -> None:
    """Create the ACLs the stages need that the cluster lacks. Deletes nothing unless --prune."""
    project = load_project()
    wanted = _wanted(project, targets)
    cluster = guard(project.cluster)
    # Named stages: prune theirs alone. Every pipeline: every stage principal, retired ones too.
    scope = {a.principal for a in wanted} if targets else None

    async def go() -> AclChanges:
        async with AclAdmin(cluster) as admin:
            if dry_run:
                return diff_acls(wanted, await admin.existing(), prune, scope)
            return await admin.apply(wanted, prune, scope)

    changes = run_async(go)
    would = "would " if dry_run else ""
    for acl in changes.create:
        console.print(f"{would}create {acl}")
    for acl in changes.delete:
        console.print(f"{would}delete {acl}")
    for acl in changes.denied:
        err.print(f"[yellow]warning:[/] {acl} overrides what the plan grants (a DENY wins); left as it is")
    if changes.extra:
        err.print(
            f"[yellow]note:[/] {len(changes.extra)} ACL(s) of stage principals that no stage "
            f"needs (e.g. {changes.extra[0]}); `podium acls apply --prune` deletes them"
        )
    created, deleted = ("to create", "to delete") if dry_run else ("created", "deleted")
    console.print(
        f"{len(changes.create)} {created}, {len(changes.delete)} {deleted}, "
        f"{len(changes.present)} already present, on {cluster.describe()}"
    )
