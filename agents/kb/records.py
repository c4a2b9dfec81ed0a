"""The knowledge base's records as the stages read and write them (schemas/kb_*.avsc) and the
topics they travel on: kb.documents -> chunk -> kb.chunks -> embed -> kb.embedded -> index ->
kb.indexed. Every record is keyed by its document id, so one document's versions meet in one
partition and each stage (ordered by key) handles them in the order they were published."""

from __future__ import annotations

from typing import TypedDict

__all__ = [
    "CHUNKS",
    "DOCUMENTS",
    "EMBEDDED",
    "INDEXED",
    "STAGES",
    "ChunkRecord",
    "Chunks",
    "Document",
    "Embedded",
    "EmbeddedChunk",
    "Indexed",
]

DOCUMENTS = "kb.documents"
CHUNKS = "kb.chunks"
EMBEDDED = "kb.embedded"
INDEXED = "kb.indexed"
# The ingestion stages in order, each with the topic it consumes (its group is podium.<stage>).
STAGES = (("chunk", DOCUMENTS), ("embed", CHUNKS), ("index", EMBEDDED))


class Document(TypedDict):
    """``podium.kb.Document``: one document's bytes; a tombstone of its key deletes it."""

    document_id: str
    tenant: str
    source: str
    title: str
    url: str
    media_type: str
    language: str
    content: bytes
    content_hash: str
    published_ms: int


class ChunkRecord(TypedDict):
    id: str
    text: str
    title: str
    url: str
    language: str


class Chunks(TypedDict):
    """``podium.kb.Chunks``: every chunk of one document version (none when deleted)."""

    document_id: str
    content_hash: str
    deleted: bool
    tenant: str
    source: str
    chunks: list[ChunkRecord]


class EmbeddedChunk(ChunkRecord):
    vector: list[float]


class Embedded(TypedDict):
    """``podium.kb.Embedded``: the chunks with their vectors for one index version."""

    document_id: str
    content_hash: str
    deleted: bool
    tenant: str
    source: str
    index: str
    provider: str
    model: str
    dimensions: int
    reused: int
    chunks: list[EmbeddedChunk]


class Indexed(TypedDict):
    """``podium.kb.Indexed``: what the index did with a document's latest version."""

    document_id: str
    content_hash: str
    deleted: bool
    index: str
    chunks: int
    reused: int
    indexed_ms: int
