"""``podium kb``: the knowledge base on Kafka and in its index.

- ``delete`` a document: a tombstone on the compacted kb.documents, which the pipeline turns into
  the document's removal from the index;
- ``reindex``: build the configured embed model's index version from kb.documents while the
  active one serves, then switch to it (:mod:`agents.kb.reindex`);
- ``search`` the active index version (bm25, dense or hybrid, as the support pipeline does);
- ``status``: the index versions with their chunks and documents, the documents on kb.documents,
  and each ingestion stage's lag (its group ``podium.<stage>``) and dead letters. Reads only.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from streams.cli import app, console, err, load_project, run_async

kb_app = typer.Typer(
    help="The knowledge base: its documents on kb.documents and its index.", no_args_is_help=True
)
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
        async with Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub:
            kb = KbPublisher(pub, project.catalog, project.codec)
            await kb.load(project.cluster())
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
    env = StageEnv(project.cluster(), project.catalog, project.codec, Telemetry.configure("none"))
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
                    project.cluster(),
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
        )
        if not report.settled:
            err.print(
                f"[red]{name} did not settle[/] in {report.passes} passes (documents kept changing while it"
                " was built): it stays building and is not switched to; run `podium kb reindex` again"
            )
            raise typer.Exit(1)
        if report.activated:
            retired = f"; {', '.join(report.retired)} retired" if report.retired else ""
            console.print(f"{name} is active{retired}")
        else:
            console.print(f"{name} is {report.version.state} (--activate switches to it)")

    run_async(go)


def _snippet(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


@kb_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What to look for, as a user would ask it.")],
    mode: Annotated[str, typer.Option("--mode", help="bm25, dense or hybrid (both, fused).")] = "hybrid",
    k: Annotated[int, typer.Option("--k", min=1, help="Passages to show, one per document.")] = 5,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant's documents and the shared ones.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, its passages a list.")] = False,
) -> None:
    """Search the knowledge base's active index version: the best passage of each document."""
    import json
    import time

    from rich.table import Table

    from agents.cli.retrieval import NOTHING_INDEXED, open_retriever
    from agents.rag.retriever import MODES, Mode, Retrieval
    from agents.rag.store import Filters

    if mode not in MODES:
        err.print(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
        raise typer.Exit(2)
    chosen: Mode = mode  # narrowed by the check above
    settings = load_project().settings

    async def go() -> tuple[Retrieval, float, int, str]:
        async with open_retriever(settings) as opened:
            version = await opened.store.active()
            if version is None or await opened.store.count(version.name) == 0:
                return Retrieval([], chosen, None), 0.0, 0, ""
            started = time.perf_counter()
            found = await opened.retriever.search(query, k, chosen, Filters(tenant=tenant))
            elapsed_ms = (time.perf_counter() - started) * 1000
            return found, elapsed_ms, version.dimensions, f"{version.provider}/{version.model}"

    found, elapsed_ms, dimensions, model = run_async(go)
    if found.version is None:
        err.print(NOTHING_INDEXED)
        raise typer.Exit(1)
    if as_json:
        print(
            json.dumps(
                {
                    "query": query,
                    "mode": found.mode,
                    "requested_mode": mode,
                    "index": found.version,
                    "index_model": model,
                    "dimensions": dimensions,
                    "embed_model": found.embed_model,
                    "embed_ms": found.embed_ms,
                    "elapsed_ms": round(elapsed_ms, 3),
                    "notes": list(found.notes),
                    "passages": [
                        {
                            "rank": rank,
                            "document_id": p.id,
                            "title": p.title,
                            "score": p.score,
                            "source": p.source,
                            "url": p.url,
                            "text": p.text,
                        }
                        for rank, p in enumerate(found.passages, start=1)
                    ],
                }
            )
        )
        return
    table = Table("rank", "document", "title", "score", "source", "passage", title=f"“{query}”")
    for rank, p in enumerate(found.passages, start=1):
        table.add_row(str(rank), p.id, p.title, f"{p.score:.4f}", p.source, _snippet(p.text))
    console.print(table)
    embedded = (
        f", query embedded by {found.embed_model} in {found.embed_ms:.1f} ms" if found.embed_model else ""
    )
    console.print(
        f"mode {found.mode} · index {found.version} ({model}, {dimensions} dimensions){embedded} · "
        f"{elapsed_ms:.1f} ms",
        highlight=False,
    )
    for note in found.notes:
        err.print(note, markup=False, highlight=False)
    if not found.passages:
        err.print("no passage matched")


@kb_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Index versions (the active one marked) with their chunks and documents, the documents on
    kb.documents, each ingestion stage's lag and dead letters. Reads only."""
    import json
    from datetime import UTC, datetime

    from rich.table import Table

    from agents.cli.retrieval import NOTHING_INDEXED

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    project = load_project()

    async def go() -> dict[str, object]:
        import asyncio

        from agents.kb.records import DOCUMENTS, STAGES
        from agents.rag.pgvector import PgVectorStore
        from agents.rag.store import open_store
        from streams import ConfigError
        from streams.contracts import dlq_topic
        from streams.kafka import Selection, TopicReader

        settings = project.settings
        store = open_store(settings.vector_url, settings.home)
        await store.start()
        try:
            versions = []
            for v in await store.versions():
                chunks = await store.chunks(v.name)
                versions.append(
                    {
                        "name": v.name,
                        "state": v.state,
                        "provider": v.provider,
                        "model": v.model,
                        "dimensions": v.dimensions,
                        "chunks": len(chunks),
                        "documents": len({c.document_id for c in chunks}),
                        "created_ms": v.created_ms,
                    }
                )
        finally:
            await store.stop()
        # One reader per topic: a reader that has read one topic does not see another's
        # partitions (its client's metadata covers the topics it was assigned).
        cluster = project.cluster()
        live: dict[bytes, bool] = {}
        async with TopicReader(cluster) as reader:
            async for record in reader.read(await reader.plan(Selection(DOCUMENTS))):
                if record.key is not None:
                    live[record.key] = record.value is not None

        async def stage_state(stage: str, topic: str) -> dict[str, object]:
            group = f"podium.{stage}"
            async with TopicReader(cluster) as reader:
                lag = await reader.lag(group, topic)
            async with TopicReader(cluster) as reader:
                try:  # a stage's DLQ topic exists once `podium topics apply` made it
                    await reader.plan(Selection(dlq_topic(topic)))
                    dead: int | None = reader.total
                except ConfigError:
                    dead = None
            return {
                "stage": stage,
                "group": group,
                "topic": topic,
                "lag": lag,
                "dlq": dlq_topic(topic),
                "dead_letters": dead,
            }

        stages = list(await asyncio.gather(*(stage_state(stage, topic) for stage, topic in STAGES)))
        return {
            "store": "pgvector"
            if isinstance(store, PgVectorStore)
            else f"lancedb at {settings.home / 'vectors'}",
            "versions": versions,
            "documents": sum(live.values()),
            "stages": stages,
        }

    found = run_async(go)
    if as_json:
        print(json.dumps(found))
        return
    versions = found["versions"]
    stages = found["stages"]
    assert isinstance(versions, list) and isinstance(stages, list)
    table = Table("", "index version", "state", "model", "dimensions", "chunks", "documents", "created")
    table.title = f"index versions ({found['store']})"
    for v in versions:
        created = datetime.fromtimestamp(v["created_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            "*" if v["state"] == "active" else "",
            v["name"],
            f"[bold]{v['state']}[/]" if v["state"] == "active" else v["state"],
            f"{v['provider']}/{v['model']}",
            str(v["dimensions"]),
            str(v["chunks"]),
            str(v["documents"]),
            created,
        )
    console.print(table)
    if not versions:
        err.print(NOTHING_INDEXED)
    console.print(f"{found['documents']} document(s) on kb.documents")
    lag = Table("stage", "group", "consumes", "lag", "dead letters", title="ingestion")
    for s in stages:
        lag.add_row(
            s["stage"],
            s["group"],
            s["topic"],
            str(s["lag"]),
            f"{s['dead_letters'] if s['dead_letters'] is not None else 'no'} on {s['dlq']}",
        )
    console.print(lag)
    for s in stages:
        if s["dead_letters"]:
            console.print(
                f"{s['stage']}: see why with `podium dlq show --stage {s['stage']}`", highlight=False
            )
