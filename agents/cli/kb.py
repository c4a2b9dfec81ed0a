"""``podium kb``: the knowledge base on Kafka (``delete`` a document: a tombstone on the
compacted kb.documents, which the pipeline turns into the document's removal from the index)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from streams.cli import app, console, err, load_project, run_async

kb_app = typer.Typer(help="The knowledge base: its documents on kb.documents.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")


@kb_app.command("delete")
def delete(
    document_id: Annotated[str, typer.Argument(help="The document's id (a row id, or a path as ingested).")],
    force: Annotated[
        bool, typer.Option("--force", help="Publish the tombstone even if no such document is known.")
    ] = False,
) -> None:
    """Delete a document: a tombstone of its key on kb.documents (its chunks leave the index)."""
    from agents.kb.documents import KbPublisher
    from agents.kb.records import DOCUMENTS
    from streams.ingress import Publisher

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    project = load_project()

    async def go() -> bool:
        async with Publisher(
            bootstrap=project.bootstrap(), catalog=project.catalog, codec=project.codec
        ) as pub:
            kb = KbPublisher(pub, project.catalog, project.codec)
            await kb.load(project.bootstrap())
            if document_id not in kb.known and not force:
                err.print(
                    f"no document {document_id!r} on {DOCUMENTS} (--force publishes the tombstone anyway)"
                )
                return False
            await kb.delete(document_id)
            console.print(f"deleted {document_id}: a tombstone on {DOCUMENTS}")
            return True

    if not run_async(go):
        raise typer.Exit(1)


@kb_app.command("reindex")
def reindex(
    activate: Annotated[
        bool,
        typer.Option("--activate/--no-activate", help="Switch to the new version once it is built."),
    ] = True,
) -> None:
    """Build the index version of the configured embed model (models.yaml, PODIUM_MODELS) from
    kb.documents while the active one keeps serving, then switch to it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from agents.gateway.resource import GatewayResource
    from agents.kb.config import kb_config
    from agents.kb.reindex import reindex as build
    from agents.kb.services import KbServices
    from agents.offline.embedder import EMBEDDING_MODELS
    from streams.runtime import StageEnv
    from streams.telemetry import Telemetry

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    project = load_project()
    settings = project.settings
    # The provider keys of the environment: the new model may be a hosted one.
    gateway = GatewayResource(settings.models_file, settings.provider_keys, EMBEDDING_MODELS)
    services = KbServices(kb_config(settings, project.sections.get("kb")), gateway)
    env = StageEnv(project.bootstrap(), project.catalog, project.codec, Telemetry.configure("none"))
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )

    async def go() -> None:
        await services.open(env)
        try:
            with bar:
                tasks: list[TaskID] = []  # one bar per pass; none when there is nothing to build

                def progress(done: int, total: int) -> None:
                    if done == 0:
                        tasks.append(bar.add_task(f"pass {len(tasks) + 1}", total=total))
                    bar.update(tasks[-1], completed=done)

                report = await build(
                    services,
                    project.bootstrap(),
                    project.catalog,
                    project.codec,
                    activate=activate,
                    progress=progress,
                )
        finally:
            await services.close()
        name = report.version.name
        if report.already_active:
            console.print(f"{name} is already the active version: nothing to do")
            return
        console.print(
            f"{name}: {report.documents} documents, {report.written} written, "
            f"{report.unchanged} already held, {report.deleted} removed, "
            f"{report.poison} unreadable passed over; {report.embedded} chunks embedded, "
            f"{report.reused} reused, ${report.cost_usd:.6f}; {report.passes} passes"
            + ("" if report.settled else " (still changing: the pipeline writes the rest)")
        )
        if report.activated:
            retired = f"; {', '.join(report.retired)} retired" if report.retired else ""
            console.print(f"{name} is active{retired}")
        else:
            console.print(f"{name} is {report.version.state} (--activate switches to it)")

    run_async(go)
