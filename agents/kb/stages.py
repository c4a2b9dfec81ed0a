"""The knowledge base's stages::

    kb.documents -> chunk -> kb.chunks -> embed -> kb.embedded -> index -> kb.indexed

``chunk`` parses a document and cuts it into chunks (all of them in one record, so the index
replaces a document's chunk set at once); a tombstone becomes a record with ``deleted=true``; a
document no parser can read is dead-lettered with the reason. Every stage runs one document's
records in order (``ordered_by_key``) and retries in process only, never through its retry
topic: a version retried later could otherwise overwrite a newer one in the index.
"""

from __future__ import annotations

import asyncio
import posixpath
from typing import Any

from agents.gateway.resource import GatewayResource
from agents.kb.config import KbConfig
from agents.kb.records import CHUNKS, ChunkRecord, Chunks, Document
from agents.rag.chunking import chunk_document
from agents.rag.parsing import parse
from streams.runtime import Emit, RetryPolicy, Stage, StageContext

__all__ = ["ChunkStage", "chunk_stage", "deleted_chunks", "kb_stages"]

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
        "kb.documents",
        (CHUNKS,),
        stages.chunk,
        on_tombstone=stages.forget,
        ordered_by_key=True,
        retry=IN_ORDER,
        # A document may be as large as its topic allows; the parser's limits refuse it with a reason.
        max_value_bytes=16 * 1024 * 1024,
        handler_timeout_s=120.0,
    )


def kb_stages(config: KbConfig, gateway: GatewayResource | None = None) -> list[Stage[Any]]:
    """The pipeline's stages. ``gateway``: the process's model gateway (the embed stage's)."""
    return [chunk_stage(config)]
