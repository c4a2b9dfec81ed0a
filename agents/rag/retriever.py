"""The hybrid retriever: BM25 and dense search over the active index version, fused by rank.

``search(query, k, mode)`` answers with at most ``k`` passages, one per document (its best
chunk), best first:

- ``dense``: the query is embedded through the model gateway with the route of the version's
  own model (a query vector from another model would not share the index's space), then the
  store's nearest chunks;
- ``bm25``: bm25s over the version's chunks, held in memory. The store's revision is checked
  at most every ``refresh_s``; when it changed, the next query waits for the index to be rebuilt
  (in a thread, one rebuild shared by the queries that come meanwhile), so a document added,
  changed or deleted through ``kb.documents`` is searched as it now is within ``refresh_s`` of
  the index stage writing it;
- ``hybrid``: both lists, ``depth`` candidates each, fused with reciprocal rank fusion
  (:mod:`agents.rag.fusion`). When embedding the query fails, hybrid answers from BM25 and
  says so in its notes: a search never fails for want of the gateway.

The active version is read from the store with the same refresh, so a model switch
(``podium kb reindex``) reaches every retriever within ``refresh_s`` with no restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from agents.gateway.backoff import Backoff
from agents.gateway.config import GatewayConfig
from agents.gateway.gateway import ModelGateway
from agents.gateway.policy import CallPolicy, Route
from agents.offline.retriever import Bm25Index, Passage
from agents.rag.fusion import reciprocal_rank_fusion
from agents.rag.store import NO_FILTERS, Chunk, Filters, IndexVersion, VectorStore

__all__ = [
    "MODES",
    "EmbedQuery",
    "HybridRetriever",
    "Mode",
    "QueryVector",
    "Retrieval",
    "embed_queries_with",
    "policy_for",
]

Mode = Literal["bm25", "dense", "hybrid"]
MODES: tuple[Mode, ...] = get_args(Mode)


@dataclass(frozen=True)
class QueryVector:
    """A query embedded by the gateway: the unit vector and what the call cost."""

    vector: npt.NDArray[np.float32]
    cost_usd: float = 0.0
    model: str = ""  # provider/model that embedded it
    latency_s: float = 0.0


# (query, the version it must match) -> its vector; the gateway's embeddings in production.
EmbedQuery = Callable[[str, IndexVersion], Awaitable[QueryVector]]


def embed_queries_with(gateway: ModelGateway, config: GatewayConfig) -> EmbedQuery:
    """Queries embedded through the gateway by the model that embedded the index version: the
    ``embed`` policy of models.yaml when it names that model, else the version's own route
    (while a new version builds for a changed model, queries go on against the old one; a
    models.yaml with no ``embed`` policy embeds queries on the route the version recorded)."""
    policy = config.policy("embed") if "embed" in config.stages else None

    async def embed(text: str, version: IndexVersion) -> QueryVector:
        if policy is None:  # no embed policy: the route the version recorded
            route = Route(version.provider, version.model)
            chosen = CallPolicy((route,), Backoff(), 10.0, "embeddings", version.dimensions)
        else:
            chosen = policy_for(version, policy)
        result = await gateway.embed([text], chosen)
        vectors, route = result.embeddings, result.route
        return QueryVector(
            vectors.vectors[0], result.cost_usd, f"{route.provider}/{route.model}", vectors.latency_s
        )

    return embed


def policy_for(version: IndexVersion, policy: CallPolicy) -> CallPolicy:
    """Pure: the calls that embed for an index version. The ``embed`` policy when it names the
    version's model (its fallbacks included), else the version's own route: vectors of another
    model would not share the version's space. The retriever's queries and the kb's embed stage
    and reindex all choose by it."""
    if policy.chain[0].model == version.model and policy.dimensions in (None, version.dimensions):
        return policy
    route = Route(version.provider, version.model)
    return CallPolicy((route,), policy.backoff, policy.timeout_s, "embeddings", version.dimensions)


@dataclass(frozen=True)
class Retrieval:
    passages: list[Passage]
    mode: Mode  # what answered: a hybrid search whose embedding failed says bm25
    version: str | None  # None: nothing is indexed yet
    notes: tuple[str, ...] = ()
    cost_usd: float = 0.0
    embed_model: str = ""
    embed_ms: float = 0.0


@dataclass
class _Lexical:
    version: str
    revision: int
    index: Bm25Index
    chunks: dict[str, Chunk]
    hashes: dict[str, str]  # document id -> the content hash of the version indexed


class HybridRetriever:
    def __init__(
        self,
        store: VectorStore,
        embed_query: EmbedQuery,
        *,
        depth: int = 40,  # candidates per list: chosen on the tune split (bench/retrieval_quality.py)
        fusion_k: int = 60,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._embed_query = embed_query
        self.depth = depth
        self.fusion_k = fusion_k
        self._refresh_s = refresh_s
        self._clock = clock
        self._active: IndexVersion | None = None
        self._active_checked = -float("inf")
        self._lexical: _Lexical | None = None
        self._lexical_checked = -float("inf")
        self._rebuild: asyncio.Task[_Lexical] | None = None
        self._rebuild_version = ""

    async def aclose(self) -> None:
        """Stops a rebuild under way (the store is its owner's to close)."""
        task, self._rebuild = self._rebuild, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def active_version(self) -> IndexVersion | None:
        now = self._clock()
        if now - self._active_checked >= self._refresh_s:
            self._active = await self.store.active()
            self._active_checked = now
        return self._active

    async def search(
        self, query: str, k: int = 5, mode: Mode = "hybrid", filters: Filters = NO_FILTERS
    ) -> Retrieval:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        version = await self.active_version()
        if version is None:
            note = "nothing is indexed yet: publish documents with `podium ingest docs <dir>`"
            return Retrieval([], mode, None, (note,))
        depth = max(self.depth, k)
        if mode == "bm25":
            lexical, scores = await self._lexical_ranking(version, query, depth, filters)
            return Retrieval(self._passages([lexical], k, scores), "bm25", version.name)
        try:
            embedded = await self._embed_query(query, version)
        except Exception as exc:  # the gateway's error tree, or a provider's bug it translated
            if mode == "dense":
                raise
            lexical, scores = await self._lexical_ranking(version, query, depth, filters)
            note = f"dense failed ({type(exc).__name__}: {exc}): answered from bm25"
            return Retrieval(self._passages([lexical], k, scores), "bm25", version.name, (note,))
        hits = await self.store.search(version.name, embedded.vector, depth, filters)
        dense = [h.chunk for h in hits]
        if mode == "dense":
            passages = self._passages([dense], k, {h.chunk.id: h.score for h in hits})
        else:
            lexical, _ = await self._lexical_ranking(version, query, depth, filters)
            passages = self._passages([lexical, dense], k)
        return Retrieval(
            passages,
            mode,
            version.name,
            cost_usd=embedded.cost_usd,
            embed_model=embedded.model,
            embed_ms=round(embedded.latency_s * 1000, 3),
        )

    async def sources_of(self, passages: Sequence[Passage]) -> dict[str, str] | None:
        """The content hash of each passage's document, if the index still holds every passage
        as it was retrieved; None when one of them changed or left since (an answer drafted from
        it is not worth keeping)."""
        version = await self.active_version()
        if version is None:
            return None
        lexical = await self._lexical_for(version)
        held = {(c.document_id, c.text) for c in lexical.chunks.values()}
        if any((p.id, p.text) not in held for p in passages):
            return None
        return {p.id: lexical.hashes[p.id] for p in passages}

    async def document_hashes(self, document_ids: Sequence[str]) -> dict[str, str]:
        """The content hash of each document as the active version holds it now (within
        ``refresh_s``); a document not indexed is absent. An answer cached with its sources'
        hashes is stale once one of them differs (:mod:`agents.support` checks before serving)."""
        version = await self.active_version()
        if version is None:
            return {}
        hashes = (await self._lexical_for(version)).hashes
        return {d: hashes[d] for d in document_ids if d in hashes}

    # -- fusion and shaping -----------------------------------------------------------------
    def _passages(
        self, rankings: Sequence[Sequence[Chunk]], k: int, scores: dict[str, float] | None = None
    ) -> list[Passage]:
        """One passage per document (its best chunk), ``k`` at most; a single list keeps its own
        scores, fused lists get the fused score."""
        by_id = {c.id: c for ranking in rankings for c in ranking}
        if len(rankings) == 1:
            fused = [(c.id, (scores or {}).get(c.id, 0.0)) for c in rankings[0]]
        else:
            fused = reciprocal_rank_fusion([[c.id for c in r] for r in rankings], k=self.fusion_k)
        seen: set[str] = set()
        passages: list[Passage] = []
        for chunk_id, score in fused:
            chunk = by_id[chunk_id]
            if chunk.document_id in seen:
                continue
            seen.add(chunk.document_id)
            passages.append(_passage(chunk, score))
            if len(passages) == k:
                break
        return passages

    # -- the lexical index ------------------------------------------------------------------
    async def _lexical_ranking(
        self, version: IndexVersion, query: str, depth: int, filters: Filters
    ) -> tuple[list[Chunk], dict[str, float]]:
        """The best ``depth`` chunks that pass the filters, and their BM25 scores."""
        lexical = await self._lexical_for(version)
        wanted = depth if filters == NO_FILTERS else depth * 4  # filtered after ranking
        found = lexical.index.search(query, wanted)
        kept = [lexical.chunks[p.id] for p in found if _passes(lexical.chunks[p.id], filters)][:depth]
        return kept, {p.id: p.score for p in found}

    async def _lexical_for(self, version: IndexVersion) -> _Lexical:
        held = self._lexical
        if held is not None and held.version == version.name and self._rebuild is None:
            now = self._clock()
            if now - self._lexical_checked < self._refresh_s:
                return held
            self._lexical_checked = now
            if await self.store.revision(version.name) == held.revision:
                return held
        return await self._rebuilding(version)

    async def _rebuilding(self, version: IndexVersion) -> _Lexical:
        """Waits for the index of the store as it is now: one rebuild, shared by every query that
        comes meanwhile, and not cancelled with a query that gives up (a stage's timeout)."""
        task = self._rebuild
        if task is None or self._rebuild_version != version.name:
            task = asyncio.get_running_loop().create_task(self._rebuilt(version), name=f"bm25-{version.name}")
            self._rebuild, self._rebuild_version = task, version.name
        try:
            built = await asyncio.shield(task)
        finally:
            if task.done() and self._rebuild is task:
                self._rebuild = None
        held = self._lexical
        if held is None or (held.version, held.revision) != (built.version, built.revision):
            self._lexical = built
            self._lexical_checked = self._clock()
        return built

    async def _rebuilt(self, version: IndexVersion) -> _Lexical:
        # The revision is read before the chunks: a write in between makes the next check
        # rebuild again rather than keep a stale index under a new revision.
        revision = await self.store.revision(version.name)
        chunks = await self.store.chunks(version.name)
        passages = [Passage(c.id, c.source, c.title, c.url, c.text, 0.0) for c in chunks]
        index = await asyncio.to_thread(Bm25Index, passages)
        hashes = {c.document_id: c.content_hash for c in chunks}
        return _Lexical(version.name, revision, index, {c.id: c for c in chunks}, hashes)


def _passes(chunk: Chunk, filters: Filters) -> bool:
    if filters.tenant is not None and chunk.tenant not in ("", filters.tenant):
        return False
    if filters.source is not None and chunk.source != filters.source:
        return False
    return filters.language is None or chunk.language == filters.language


def _passage(chunk: Chunk, score: float) -> Passage:
    # Cited by document: the support answer's [n] points at the document, its best chunk's text.
    return Passage(chunk.document_id, chunk.source, chunk.title, chunk.url, chunk.text, round(score, 6))
