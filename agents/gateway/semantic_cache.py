"""Semantic cache: an answer served again to a request that means the same as one answered before.

A hit needs both (see LiteLLM #12234, #29086 for what a threshold alone does):

1. the cosine similarity of the two requests' unit embeddings reaches ``threshold``;
2. :func:`~agents.gateway.semantic_guard.disagreement` finds nothing that must agree and does not
   (numbers, negation, named things, content words).

Entries live per scope (the tenant plus a route or intent: :func:`scope_of`; a tenant never sees
another's answers) and expire after a TTL. Each scope is an in-memory numpy matrix searched by
brute force: with ``max_per_scope`` = 10,000 rows of 256 float32 that is 10 MB and one
matrix-vector product per lookup (`make bench-semcache` measures it). The oldest entry makes
room when a scope is full.

With a :class:`~agents.gateway.cache.CompactedTopic` (``podium.semantic-cache``), every entry is
written to Kafka; :meth:`SemanticCache.start` reads the topic whole, then follows it, so a
restarted worker starts warm and each worker serves what the others answered. Entries of another
embedding model or dimension are skipped: their vectors live in another space.

The embedding function is injected (the gateway's ``embed`` operation in production); a caller
that embeds itself (to charge what the embedding cost to its request) uses :meth:`holds`,
:meth:`SemanticCache.search` and ``remember(..., vector=...)``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from agents.gateway.cache import CompactedTopic
from agents.gateway.semantic_guard import Terms, WordSimilarity, terms, terms_disagreement
from streams.contracts import now_ms

__all__ = [
    "SEMANTIC_CACHE_TOPIC",
    "SEMANTIC_ENTRY",
    "Embed",
    "SemanticCache",
    "SemanticEntry",
    "SemanticLookup",
    "scope_of",
]

SEMANTIC_CACHE_TOPIC = "podium.semantic-cache"
SEMANTIC_ENTRY = "podium.SemanticCacheEntry"

Embed = Callable[[Sequence[str]], Awaitable[npt.NDArray[np.float32]]]


def scope_of(tenant: str | None, route: str, prefix: str = "") -> str:
    """A cache scope: the tenant (a request without one is its own tenant, "-"), then the route
    or intent, under an optional prefix (a configuration's answers are not another's)."""
    return f"{prefix}|{tenant or '-'}|{route}"


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class SemanticEntry:
    key: str
    scope: str
    text: str
    answer: str
    model: str
    source_id: str
    embedding_model: str
    dimensions: int
    vector: npt.NDArray[np.float32] = field(repr=False)
    created_ms: int
    expires_ms: int

    def record(self) -> dict[str, Any]:
        return {**self.__dict__, "vector": self.vector.astype("<f4").tobytes()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SemanticEntry:
        vector = np.frombuffer(record["vector"], dtype="<f4").astype(np.float32)
        return cls(**{**record, "vector": vector})


@dataclass(frozen=True)
class SemanticLookup:
    """What a lookup found: ``entry`` is the hit (None on a miss); ``similarity`` is the hit's,
    else the nearest entry's (0.0 in an empty scope); ``refused`` says why the nearest entry above
    the threshold was not served (the guard's reason), if one was."""

    entry: SemanticEntry | None
    similarity: float
    refused: str | None = None
    vector: npt.NDArray[np.float32] | None = field(default=None, repr=False)  # the request's

    @property
    def hit(self) -> bool:
        return self.entry is not None

    def describe(self) -> str:
        if self.entry is not None:
            of = self.entry.source_id or repr(self.entry.text[:80])
            return f"semantic cache hit, similarity {self.similarity:.2f}, of {of}"
        if self.refused is not None:
            return f"semantic cache miss: nearest {self.similarity:.2f} refused, {self.refused}"
        return f"semantic cache miss: nearest {self.similarity:.2f}"


class _Scope:
    """One scope's entries and their vectors as rows of one matrix (capacity doubles)."""

    def __init__(self, dimensions: int) -> None:
        self.entries: list[SemanticEntry] = []
        self.terms: list[Terms] = []
        self.rows: dict[str, int] = {}
        self.matrix = np.zeros((16, dimensions), dtype=np.float32)

    def put(self, entry: SemanticEntry, limit: int) -> None:
        row = self.rows.get(entry.key)
        if row is None and len(self.entries) >= limit:
            self.drop(min(range(len(self.entries)), key=lambda i: self.entries[i].created_ms))
        row = self.rows.get(entry.key)
        if row is None:
            row = len(self.entries)
            if row == len(self.matrix):
                self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
            self.entries.append(entry)
            self.terms.append(terms(entry.text))
            self.rows[entry.key] = row
        else:
            self.entries[row] = entry
            self.terms[row] = terms(entry.text)
        self.matrix[row] = entry.vector

    def drop(self, row: int) -> None:
        """Removes a row by moving the last one into its place."""
        last = len(self.entries) - 1
        del self.rows[self.entries[row].key]
        if row != last:
            self.entries[row], self.terms[row] = self.entries[last], self.terms[last]
            self.matrix[row] = self.matrix[last]
            self.rows[self.entries[row].key] = row
        self.entries.pop()
        self.terms.pop()


class SemanticCache:
    """``lookup`` and ``remember`` per scope; ``start``/``stop`` (or ``async with``) when it has a
    topic. ``similar``: a word similarity for the guard (None: the same stems only)."""

    def __init__(
        self,
        embed: Embed,
        *,
        embedding_model: str,
        dimensions: int,
        threshold: float = 0.80,
        ttl_s: float = 3600.0,
        topic: CompactedTopic | None = None,
        max_per_scope: int = 10_000,
        candidates: int = 5,
        similar: WordSimilarity | None = None,
    ) -> None:
        self.threshold = threshold
        self.embedding_model = embedding_model
        self.dimensions = dimensions
        self.skipped = 0  # entries read from the topic for another embedding model or dimension
        self._embed = embed
        self._ttl_ms = int(ttl_s * 1000)
        self._topic = topic
        self._limit = max_per_scope
        self._candidates = candidates
        self._similar = similar
        self._scopes: dict[str, _Scope] = {}
        self._following: contextlib.AbstractAsyncContextManager[int] | None = None

    async def start(self) -> int:
        """Reads the topic whole and starts following it; returns how many entries are live."""
        if self._topic is not None:
            self._following = self._topic.follow(self._arrived)
            await self._following.__aenter__()
        return len(self)

    async def stop(self) -> None:
        following, self._following = self._following, None
        if following is not None:
            await following.__aexit__(None, None, None)

    async def __aenter__(self) -> SemanticCache:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def __len__(self) -> int:
        now = now_ms()
        return sum(e.expires_ms > now for s in self._scopes.values() for e in s.entries)

    def holds(self, scope: str) -> bool:
        """Whether ``scope`` has entries (else a lookup needs no embedding)."""
        found = self._scopes.get(scope)
        return found is not None and bool(found.entries)

    def _arrived(self, record: dict[str, Any]) -> None:
        entry = SemanticEntry.from_record(record)
        if entry.embedding_model != self.embedding_model or entry.dimensions != self.dimensions:
            self.skipped += 1
            return
        if entry.expires_ms > now_ms():
            self._keep(entry)

    def _keep(self, entry: SemanticEntry) -> None:
        scope = self._scopes.get(entry.scope)
        if scope is None:
            scope = self._scopes[entry.scope] = _Scope(self.dimensions)
        scope.put(entry, self._limit)

    async def _vector(self, text: str) -> npt.NDArray[np.float32]:
        vectors = np.asarray(await self._embed([text]), dtype=np.float32)
        if vectors.shape != (1, self.dimensions):
            raise ValueError(
                f"the embedding model {self.embedding_model} gave shape {vectors.shape}, "
                f"not (1, {self.dimensions})"
            )
        row: npt.NDArray[np.float32] = vectors[0]
        return row

    async def lookup(self, text: str, scope: str) -> SemanticLookup:
        """The entry to serve for ``text`` in ``scope``, if any (one embedding call, none when
        the scope is empty)."""
        if not self.holds(scope):
            return SemanticLookup(None, 0.0)
        vector = await self._vector(text)
        return self.search(text, vector, scope)

    def search(self, text: str, vector: npt.NDArray[np.float32], scope: str) -> SemanticLookup:
        """:meth:`lookup` with the request's embedding already made."""
        found = self._scopes.get(scope)
        if found is None or not found.entries:
            return SemanticLookup(None, 0.0, vector=vector)
        similarities = found.matrix[: len(found.entries)] @ vector
        top = min(self._candidates, len(similarities))
        nearest_rows = np.argpartition(-similarities, top - 1)[:top]
        order = nearest_rows[np.argsort(-similarities[nearest_rows])]
        asked = terms(text)
        now = now_ms()
        refused = None
        nearest = float(similarities[order[0]])
        for row in order:
            similarity = float(similarities[row])
            if similarity < self.threshold:
                break
            entry = found.entries[row]
            if entry.expires_ms <= now:
                continue
            reason = terms_disagreement(asked, found.terms[row], self._similar)
            if reason is None:
                return SemanticLookup(entry, similarity, vector=vector)
            if refused is None:
                refused, nearest = reason, similarity
        return SemanticLookup(None, nearest, refused, vector=vector)

    async def remember(
        self,
        text: str,
        scope: str,
        answer: str,
        model: str,
        source_id: str = "",
        vector: npt.NDArray[np.float32] | None = None,
    ) -> SemanticEntry:
        """Keeps ``answer`` for ``text`` in ``scope`` (written to the topic, when there is one,
        before this returns). ``vector``: the request's embedding if the caller has it."""
        if vector is None:
            vector = await self._vector(text)
        created = now_ms()
        key = f"{scope}:" + hashlib.sha256(_normal(text).encode()).hexdigest()
        entry = SemanticEntry(
            key,
            scope,
            text,
            answer,
            model,
            source_id,
            self.embedding_model,
            self.dimensions,
            np.asarray(vector, dtype=np.float32),
            created,
            created + self._ttl_ms,
        )
        if self._topic is not None:
            await self._topic.save(key, entry.record())
        self._keep(entry)
        return entry
