"""The vector store behind one small interface: value types, the :class:`VectorStore` Protocol,
its errors and :func:`open_store`, which picks the backend from ``PODIUM_VECTOR_URL``.

An *index version* is one embedding space: the chunks embedded by one model at one dimension.
Vectors of two models do not share a space, so each version has its own table; a new model is
a new version that is built beside the active one and then activated (the old one is retired,
not dropped, so a rollback is one :meth:`VectorStore.activate`).

Errors (all under :class:`streams.errors.PodiumError`; callers read ``retryable``)::

    PodiumError (streams.errors)
    └── VectorStoreError          a bad call or a broken store              retryable=False
        ├── StoreUnavailable      the database cannot be reached or timed   retryable=True
        │                         out (PostgreSQL down, a busy file)
        ├── DimensionMismatch     a vector whose length is not the          retryable=False
        │                         version's dimensions (or a malformed one)
        └── UnknownIndexVersion   no version of that name                   retryable=False

Each backend translates its library's errors (lancedb, psycopg) in one place, with
``raise ... from exc``: nothing foreign reaches a caller.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import SecretStr

from streams.errors import PodiumError

__all__ = [
    "ACTIVE",
    "BUILDING",
    "NO_FILTERS",
    "RETIRED",
    "STATES",
    "Chunk",
    "DimensionMismatch",
    "Filters",
    "Hit",
    "IndexVersion",
    "StoreUnavailable",
    "UnknownIndexVersion",
    "VectorStore",
    "VectorStoreError",
    "check_vector",
    "open_store",
    "version_name",
]

BUILDING = "building"
ACTIVE = "active"
RETIRED = "retired"
STATES = (BUILDING, ACTIVE, RETIRED)


class VectorStoreError(PodiumError):
    dead_letter_reason = "vector_store"


class StoreUnavailable(VectorStoreError):
    retryable = True
    dead_letter_reason = "vector_store_unavailable"


class DimensionMismatch(VectorStoreError):
    dead_letter_reason = "dimension_mismatch"


class UnknownIndexVersion(VectorStoreError):
    dead_letter_reason = "unknown_index_version"


@dataclass(frozen=True)
class Chunk:
    id: str  # deterministic, see chunking; unique within an index version
    document_id: str
    text: str  # what is embedded and shown
    title: str  # document title (+ " > " + heading path for a section)
    url: str
    source: str  # collection, e.g. "docs", "faq", or the ingest root's name
    tenant: str = ""  # "" = shared by every tenant
    language: str = "en"
    content_hash: str = ""  # sha256 hex of the document version the chunk came from
    vector: npt.NDArray[np.float32] | None = None  # unit row; None when read back for BM25


@dataclass(frozen=True)
class Hit:
    chunk: Chunk  # vector None
    score: float  # backend's similarity, higher is better (cosine for dense)


@dataclass(frozen=True)
class Filters:
    tenant: str | None = None  # None: any; else tenant == t OR tenant == ""
    source: str | None = None
    language: str | None = None


NO_FILTERS = Filters()


@dataclass(frozen=True)
class IndexVersion:
    name: str  # e.g. "local-wordllama-256" (slug of model + dimensions)
    provider: str  # the gateway route that embeds for it (provider name in models.yaml)
    model: str
    dimensions: int
    state: str  # "building" | "active" | "retired"
    created_ms: int

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise VectorStoreError(
                f"index version {self.name!r}: state {self.state!r} is not one of {STATES}"
            )
        if self.dimensions <= 0:
            raise VectorStoreError(f"index version {self.name!r}: dimensions must be positive")
        if not _TABLE_NAME.fullmatch(self.name):
            raise VectorStoreError(
                f"index version name {self.name!r} is not a slug: make it with version_name()"
            )


@runtime_checkable
class VectorStore(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def ensure_version(self, version: IndexVersion) -> IndexVersion:
        """Create the version (and its table) if it is new; an existing row wins and is returned."""
        ...

    async def versions(self) -> list[IndexVersion]: ...
    async def active(self) -> IndexVersion | None: ...
    async def activate(self, name: str) -> None:
        """The named version becomes active; the one active before is retired."""
        ...

    async def replace_document(self, version: str, document_id: str, chunks: Sequence[Chunk]) -> None:
        """Idempotent: afterwards the document has exactly these chunks (old ids gone)."""
        ...

    async def delete_document(self, version: str, document_id: str) -> None: ...
    async def vectors_of(self, version: str, chunk_ids: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """Stored vectors by id (lets the embed stage skip chunks already paid for)."""
        ...

    async def search(
        self, version: str, vector: npt.NDArray[np.float32], k: int, filters: Filters = NO_FILTERS
    ) -> list[Hit]: ...
    async def chunks(self, version: str) -> list[Chunk]:
        """Every chunk, no vectors (BM25)."""
        ...

    async def revision(self, version: str) -> int:
        """Cheap; changes whenever the version's chunks change."""
        ...

    async def count(self, version: str) -> int: ...


# Lower-case letters, digits and hyphens, starting with a letter, at most 56 characters: a file
# name everywhere, a LanceDB table name as it is, and a PostgreSQL one with a prefix of up to 7
# characters ("chunks_") inside the 63 PostgreSQL allows (quoted as an identifier there).
_TABLE_NAME = re.compile(r"[a-z][a-z0-9-]{0,55}")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_MAX_NAME = 56


def version_name(model: str, dimensions: int) -> str:
    """``("local-wordllama", 256)`` -> ``"local-wordllama-256"``: lower case, every run of other
    characters one hyphen, the dimensions last, starting with a letter and short enough to be a
    table name in both backends.

    Two models that differ only in punctuation or case (``text-embedding-3`` and
    ``Text_Embedding 3``) get the same name: they are the same model spelled two ways.
    """
    if dimensions <= 0:
        raise VectorStoreError(f"dimensions must be positive, not {dimensions}")
    slug = _NOT_SLUG.sub("-", model.lower()).strip("-") or "model"
    if not slug[0].isalpha():
        slug = f"m-{slug}"
    suffix = f"-{dimensions}"
    if len(slug) + len(suffix) > _MAX_NAME:
        # Cut to fit a table name, with a hash of the whole slug: two long names that differ
        # only past the cut stay two versions.
        digest = hashlib.sha256(slug.encode()).hexdigest()[:8]
        suffix = f"-{digest}{suffix}"
    return slug[: _MAX_NAME - len(suffix)].rstrip("-") + suffix


# A chunk's fields as both backends store them (the vector apart).
TEXT_FIELDS = ("id", "document_id", "text", "title", "url", "source", "tenant", "language", "content_hash")


def checked_vectors(
    version: str, document_id: str, chunks: Sequence[Chunk], dimensions: int
) -> list[npt.NDArray[np.float32]]:
    """The chunks' vectors, in order, once the chunks are fit to replace ``document_id``'s in
    ``version``: ids unique, all of that document, each with a vector of the version's size."""
    ids = [chunk.id for chunk in chunks]
    if len(set(ids)) != len(ids):
        raise VectorStoreError(f"document {document_id!r}: the same chunk id twice in one replace")
    rows = []
    for chunk in chunks:
        if chunk.document_id != document_id:
            raise VectorStoreError(
                f"chunk {chunk.id!r} belongs to document {chunk.document_id!r}, not {document_id!r}"
            )
        if chunk.vector is None:
            raise VectorStoreError(f"chunk {chunk.id!r} has no vector: embed it before indexing")
        rows.append(check_vector(chunk.vector, dimensions, f"chunk {chunk.id!r} in {version}"))
    return rows


def check_vector(vector: npt.ArrayLike, dimensions: int, where: str) -> npt.NDArray[np.float32]:
    """One float32 row of exactly ``dimensions`` finite values, or :class:`DimensionMismatch`."""
    row = np.asarray(vector, dtype=np.float32)
    if row.ndim != 1 or row.shape[0] != dimensions:
        raise DimensionMismatch(
            f"{where}: a vector of shape {row.shape} where this index version holds {dimensions} dimensions"
        )
    if not np.isfinite(row).all():
        raise DimensionMismatch(f"{where}: the vector holds NaN or infinite values")
    return row


def open_store(url: SecretStr | str | None, home: Path) -> VectorStore:
    """``None`` -> LanceDB under ``<home>/vectors``; ``postgresql://...`` -> pgvector.

    Nothing is opened until :meth:`VectorStore.start`. The URL may hold a password (the
    settings keep it a ``SecretStr``, unwrapped here only): it is never part of an error message.
    """
    if isinstance(url, SecretStr):
        url = url.get_secret_value()
    if url is None or not url.strip():
        from agents.rag.lance import LanceStore

        return LanceStore(home / "vectors")
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        from agents.rag.pgvector import PgVectorStore

        return PgVectorStore(url)
    raise VectorStoreError(
        f"PODIUM_VECTOR_URL: unknown scheme {scheme!r} (use postgresql://..., or leave it unset for "
        "LanceDB under PODIUM_HOME/vectors)"
    )
