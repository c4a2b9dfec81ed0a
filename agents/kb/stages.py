"""The knowledge base's stages::

    kb.documents -> chunk -> kb.chunks -> embed -> kb.embedded -> index -> kb.indexed

``chunk`` parses a document and cuts it into chunks (all of them in one record, so the index
replaces a document's chunk set at once); a tombstone becomes a record with ``deleted=true``; a
document no parser can read is dead-lettered with the reason.

``embed`` gives every chunk a vector of each version the document goes to (:mod:`agents.kb.targets`:
the active one, any building one, the ``embed`` policy's model's), one kb.embedded record per
version, each embedded by that version's own route: a chunk whose id already has a vector in
that version keeps it (ids are content-addressed, so an unchanged paragraph is never paid for
twice); the rest go to the gateway in micro-batches
gathered across the records in flight (:class:`~agents.kb.services.EmbedBatcher`), embedded as
:func:`embedding_input` makes them, and each record is charged its share (``ctx.add_cost``).

``index`` makes the version exist (the first one becomes active, so a new knowledge base serves
at once) and replaces the document's chunks in it, or deletes the document from every version;
what it did goes to the compacted ``kb.indexed`` (terminal), keyed by document id.

Every stage runs one document's records in order (``ordered_by_key``) and retries in process
only, never through its retry topic: a version retried later could otherwise overwrite a newer
one in the index.
"""

from __future__ import annotations

import asyncio
import posixpath
from typing import Any

import numpy as np
import numpy.typing as npt

from agents.gateway.resource import GatewayResource
from agents.kb.config import KbConfig
from agents.kb.records import (
    CHUNKS,
    DOCUMENTS,
    EMBEDDED,
    INDEXED,
    ChunkRecord,
    Chunks,
    Document,
    Embedded,
    EmbeddedChunk,
    Indexed,
)
from agents.kb.services import KbServices, learned_version
from agents.rag.chunking import chunk_document
from agents.rag.parsing import parse
from agents.rag.store import BUILDING, Chunk, IndexVersion, UnknownIndexVersion
from streams import now_ms
from streams.runtime import Emit, RetryPolicy, Stage, StageContext

__all__ = [
    "ChunkStage",
    "IndexStages",
    "chunk_stage",
    "deleted_chunks",
    "embed_for",
    "embedding_input",
    "index_stages",
    "kb_stages",
    "stored_chunks",
]

# Failures of the model gateway or the store are retried here, in order, before the DLQ.
IN_ORDER = RetryPolicy(attempts_per_round=6, backoff_base_s=0.5, backoff_max_s=10.0, retry_topic_delays_s=())


def _fallback_title(document_id: str) -> str:
    """A document with no title of its own is named by its file name."""
    stem = posixpath.splitext(posixpath.basename(document_id.rstrip("/")))[0]
    return stem.replace("-", " ").replace("_", " ").strip() or document_id


def deleted_chunks(document_id: str) -> Chunks:
    return {
        "document_id": document_id,
        "content_hash": "",
        "deleted": True,
        "tenant": "",
        "source": "",
        "chunks": [],
    }


class ChunkStage:
    def __init__(self, config: KbConfig) -> None:
        self.config = config

    def chunks_of(self, document: Document) -> Chunks:
        """Pure: the document's chunks, or the parser's permanent error (poison)."""
        parsed = parse(
            document["content"],
            document["media_type"],
            title=document["title"],
            limits=self.config.tuning.limits,
        )
        if not parsed.title:
            parsed = type(parsed)(_fallback_title(document["document_id"]), parsed.sections)
        chunks: list[ChunkRecord] = [
            {
                "id": c.id,
                "text": c.text,
                "title": c.title,
                "url": document["url"],
                "language": document["language"],
            }
            for c in chunk_document(document["document_id"], parsed, self.config.tuning.chunking)
        ]
        return {
            "document_id": document["document_id"],
            "content_hash": document["content_hash"],
            "deleted": False,
            "tenant": document["tenant"],
            "source": document["source"],
            "chunks": chunks,
        }

    async def chunk(self, document: Document, ctx: StageContext) -> Emit:
        # A PDF of a few megabytes takes a while to read: off the event loop.
        chunks = await asyncio.to_thread(self.chunks_of, document)
        return Emit(CHUNKS, dict(chunks), key=document["document_id"])

    async def forget(self, document_id: str, ctx: StageContext) -> Emit:
        return Emit(CHUNKS, dict(deleted_chunks(document_id)), key=document_id)


def chunk_stage(config: KbConfig) -> Stage[Any]:
    stages = ChunkStage(config)
    return Stage(
        "chunk",
        DOCUMENTS,
        (CHUNKS,),
        stages.chunk,
        on_tombstone=stages.forget,
        ordered_by_key=True,
        retry=IN_ORDER,
        # A document may be as large as its topic allows; the parser's limits refuse it with a reason.
        max_value_bytes=16 * 1024 * 1024,
        handler_timeout_s=120.0,
    )


def embedding_input(title: str, text: str) -> str:
    """What is embedded for a chunk: its title (document and heading path) and its text."""
    return f"{title}. {text}" if title else text


async def embed_for(
    services: KbServices, record: Chunks, version: IndexVersion | None
) -> tuple[Embedded, float]:
    """A document's chunks with vectors of ``version`` (None: the configured model's version,
    not in the store yet, named by the embedding's dimensions), and what the calls cost.

    A chunk whose id already has a vector in that version keeps it (ids are content-addressed:
    an unchanged paragraph, or a reindex started again, is never paid for twice); the rest are
    embedded by the version's own route (:meth:`KbServices.embed`)."""
    chunks = record["chunks"]
    stored = await _stored(services, version, [c["id"] for c in chunks])
    vectors: dict[str, list[float]] = {i: v.tolist() for i, v in stored.items()}
    missing = [c for c in chunks if c["id"] not in vectors]
    cost = 0.0
    if missing:
        embedding = await services.embed([embedding_input(c["title"], c["text"]) for c in missing], version)
        cost += embedding.cost_usd
        if version is None or embedding.dimensions != version.dimensions:
            learned = learned_version(embedding)
            if stored:
                # The model now gives vectors of another size: the stored ones are of no use.
                missing, stored = chunks, {}
                embedding = await services.embed(
                    [embedding_input(c["title"], c["text"]) for c in missing], learned
                )
                cost += embedding.cost_usd
            version = learned
        vectors.update((c["id"], row.tolist()) for c, row in zip(missing, embedding.vectors, strict=True))
    assert version is not None  # a document has chunks (an empty one is poison)
    embedded: list[EmbeddedChunk] = [{**c, "vector": vectors[c["id"]]} for c in chunks]
    return _embedded(record, version, version.provider, version.model, embedded, reused=len(stored)), cost


async def _stored(
    services: KbServices, version: IndexVersion | None, ids: list[str]
) -> dict[str, npt.NDArray[np.float32]]:
    """The vectors the version already holds for these ids (a version the index stage has not
    written yet holds none)."""
    if version is None:
        return {}
    try:
        return await services.store.vectors_of(version.name, ids)
    except UnknownIndexVersion:
        return {}


def stored_chunks(record: Embedded) -> list[Chunk]:
    """The store's chunks of an embedded document (what :meth:`VectorStore.replace_document` takes)."""
    return [
        Chunk(
            id=c["id"],
            document_id=record["document_id"],
            text=c["text"],
            title=c["title"],
            url=c["url"],
            source=record["source"],
            tenant=record["tenant"],
            language=c["language"],
            content_hash=record["content_hash"],
            vector=np.asarray(c["vector"], dtype=np.float32),
        )
        for c in record["chunks"]
    ]


class IndexStages:
    def __init__(self, services: KbServices) -> None:
        self.services = services

    async def embed(self, record: Chunks, ctx: StageContext) -> list[Emit]:
        """One kb.embedded record per target version (:mod:`agents.kb.targets`); a deletion is
        one record, which the index applies to every version."""
        services = self.services
        document_id = record["document_id"]
        if record["deleted"]:
            provider, model = services.model
            gone = _embedded(record, None, provider, model, [], reused=0)
            return [Emit(EMBEDDED, dict(gone), key=document_id)]
        decided = await services.targets()
        wanted: list[IndexVersion | None] = [*decided.versions, *([None] if decided.learn else [])]
        emits: list[Emit] = []
        names: set[str] = set()
        for version in wanted:
            out, cost = await embed_for(services, record, version)
            ctx.add_cost(cost)
            if out["index"] in names:  # a learned version that is one of the others
                continue
            names.add(out["index"])
            emits.append(Emit(EMBEDDED, dict(out), key=document_id))
        return emits

    async def index(self, record: Embedded, ctx: StageContext) -> Emit:
        store = self.services.store
        document_id = record["document_id"]
        if record["deleted"]:
            for version in await store.versions():  # retired ones too: a rollback must not revive it
                await store.delete_document(version.name, document_id)
            return Emit(INDEXED, dict(_indexed(record, 0)), key=document_id)
        version = await self.services.prepared(
            IndexVersion(
                record["index"], record["provider"], record["model"], record["dimensions"], BUILDING, now_ms()
            )
        )
        chunks = stored_chunks(record)
        await store.replace_document(version.name, document_id, chunks)
        return Emit(INDEXED, dict(_indexed(record, len(chunks))), key=document_id)


def _embedded(
    record: Chunks,
    target: IndexVersion | None,
    provider: str,
    model: str,
    chunks: list[EmbeddedChunk],
    reused: int,
) -> Embedded:
    return {
        "document_id": record["document_id"],
        "content_hash": record["content_hash"],
        "deleted": record["deleted"],
        "tenant": record["tenant"],
        "source": record["source"],
        "index": "" if target is None else target.name,
        "provider": provider,
        "model": model,
        "dimensions": 0 if target is None else target.dimensions,
        "reused": reused,
        "chunks": chunks,
    }


def _indexed(record: Embedded, chunks: int) -> Indexed:
    return {
        "document_id": record["document_id"],
        "content_hash": record["content_hash"],
        "deleted": record["deleted"],
        "index": record["index"],
        "chunks": chunks,
        "reused": record["reused"],
        "indexed_ms": now_ms(),
    }


def index_stages(services: KbServices) -> list[Stage[Any]]:
    stages = IndexStages(services)
    shared = (services,)
    return [
        Stage(
            "embed",
            CHUNKS,
            (EMBEDDED,),
            stages.embed,
            resources=shared,
            ordered_by_key=True,
            retry=IN_ORDER,
            max_value_bytes=16 * 1024 * 1024,
            handler_timeout_s=120.0,
        ),
        Stage(
            "index",
            EMBEDDED,
            (INDEXED,),
            stages.index,
            resources=shared,
            ordered_by_key=True,
            retry=IN_ORDER,
            max_value_bytes=16 * 1024 * 1024,
            handler_timeout_s=60.0,
        ),
    ]


def kb_stages(config: KbConfig, gateway: GatewayResource | None = None) -> list[Stage[Any]]:
    """The pipeline's stages. ``gateway``: the process's model gateway (the embed stage's)."""
    return [chunk_stage(config), *index_stages(KbServices(config, gateway))]
