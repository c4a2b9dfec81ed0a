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
