"""What the support stages of one process share: the local models, the hybrid retriever over
the knowledge base's vector store (filled by the kb pipeline from ``kb.documents``), the answer
caches (exact, then semantic) and a hold on the process's model gateway (shared with the other
pipelines, see :mod:`agents.gateway.resource`). Opened by the first support worker, closed by the
last.

The semantic cache (:mod:`agents.gateway.semantic_cache`) serves an answer again to a request of
the same tenant and intent that embeds close to one answered before and agrees with it (numbers,
negation, names, subject); it is warm from the compacted ``podium.semantic-cache`` topic and
follows what the other workers add. Requests are embedded by the gateway's ``embed`` policy
(models.yaml), and what that costs is charged to the request."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import SecretStr

from agents.gateway.cache import CompactedTopic, KafkaCacheStore, ResponseCache
from agents.gateway.config import GatewayConfig, TierPolicy
from agents.gateway.gateway import BudgetSpent, CallPolicy, CostCap, GatewayError, ModelGateway
from agents.gateway.pricing import PriceTable, Usage
from agents.gateway.resource import GatewayResource, shared_or_own
from agents.gateway.semantic_cache import (
    SEMANTIC_CACHE_TOPIC,
    SEMANTIC_ENTRY,
    SemanticCache,
    scope_of,
)
from agents.gateway.tiers import choose_tier
from agents.offline.batching import Batcher
from agents.offline.classifier import IntentClassifier, Prediction
from agents.offline.embedder import EMBEDDING_MODELS
from agents.offline.grounded import GROUNDED_MODELS
from agents.offline.retriever import Passage
from agents.offline.safety import Screen, Verdict
from agents.rag import VectorStore, open_store
from agents.rag.retriever import HybridRetriever, embed_queries_with
from agents.support.routing import answer_key
from streams import Settings
from streams.contracts import REQUEST_ID, Codec, now_ms
from streams.ingress import Publisher
from streams.runtime import SharedResource, StageEnv

__all__ = ["CachedReply", "ChunkSink", "SupportConfig", "SupportServices"]

STREAM_CHUNK = "podium.StreamChunk"
CIRCUITS_TOPIC = "podium.circuits"
WORKER = f"{socket.gethostname()}:{os.getpid()}"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SupportConfig:
    """Read once at the entry point (``podium run``, ``podium demo``) and passed down."""

    models: Path  # models.yaml: providers, prices, the generate and embed policies
    home: Path = Path(".podium")  # PODIUM_HOME: the embedded vector store lives under it
    vector_url: SecretStr | None = None  # PODIUM_VECTOR_URL: a PostgreSQL with pgvector instead
    answer_ttl_s: float = 3600.0
    passages: int = 4  # one per document, best first
    direct_at: float = 0.5  # classifier confidence needed for the direct route
    block_at: float = 0.6  # safety classifier probability that blocks
    # Answers cached under one scope are served only under it: change it with the models or
    # the knowledge base (the demo uses a scope per run, so each run shows every route).
    cache_scope: str = "support"
    # The semantic cache after the exact one: cosine similarity of the requests' embeddings at
    # least this, and the guard agrees (chosen on the tune split: `make bench-semcache`).
    semantic_cache: bool = True
    semantic_threshold: float = 0.80
    # Publish nothing besides the stages' own outputs: no token chunks, no answer-cache or
    # circuit records. `podium replay --stage --with` runs handlers this way.
    dry_run: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, **fields: Any) -> SupportConfig:
        """The files and stores the settings name (models.yaml, the vector store), and ``fields``."""
        return cls(models=settings.models_file, home=settings.home, vector_url=settings.vector_url, **fields)


def _closed_batcher() -> Batcher[str, Any]:
    def closed(_: list[str]) -> list[Any]:
        raise RuntimeError("support services are not open")

    return Batcher(closed)


class ChunkSink:
    """One request's token chunks on ``<topic>.stream``: sent at the producer's pace (not one
    acknowledgement per chunk), all acknowledged by :meth:`flushed` before the draft moves on."""

    def __init__(
        self,
        publisher: Publisher,
        codec: Codec,
        topic: str,
        request_id: str,
        first_seq: int,
        dry_run: bool = False,
    ) -> None:
        self.dry_run = dry_run  # encode (so a bad chunk still fails) but send nothing
        self._publisher = publisher
        self._codec = codec
        self._topic = topic
        self._request_id = request_id
        self.next_seq = first_seq
        self._acks: list[asyncio.Future[Any]] = []

    async def send(self, chunk: dict[str, Any]) -> None:
        value = self._codec.encode(STREAM_CHUNK, chunk)
        key = self._request_id.encode()
        if not self.dry_run:
            self._acks.append(await self._publisher.enqueue(self._topic, key, value, [(REQUEST_ID, key)]))
        self.next_seq = max(self.next_seq, int(chunk["seq"]) + 1)

    async def replace_with(self, text: str, reason: str) -> None:
        """Void what was streamed (a RESET) and stream ``text`` as the whole answer."""
        rid, seq = self._request_id, self.next_seq
        await self.send({"request_id": rid, "seq": seq, "kind": "RESET", "text": reason[:500]})
        await self.send({"request_id": rid, "seq": seq + 1, "kind": "TEXT", "text": text})
        await self.send({"request_id": rid, "seq": seq + 2, "kind": "FINAL", "text": ""})

    async def flushed(self) -> None:
        acks, self._acks = self._acks, []
        results = await asyncio.gather(*acks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


@dataclass(frozen=True)
class CachedReply:
    answer: str
    citations: list[dict[str, object]]
    model: str
    # The content hash of each cited document when the answer was kept: an answer whose
    # documents changed or left the index since is not served again.
    sources: dict[str, str] = field(default_factory=dict)


class SupportServices(SharedResource):
    def __init__(self, config: SupportConfig, gateway: GatewayResource | None = None) -> None:
        """``gateway``: the process's one model gateway (see :mod:`agents.gateway.resource`)."""
        super().__init__()
        self.config = config
        # The local embedder too: the semantic cache embeds through the gateway's embed policy.
        self._shared_gateway = shared_or_own(gateway, config.models, {**GROUNDED_MODELS, **EMBEDDING_MODELS})
        self._unwatch: Callable[[], None] | None = None
        self._gateway_config: GatewayConfig | None = None
        self._gateway: ModelGateway | None = None
        self._publisher: Publisher | None = None
        self._answers: ResponseCache | None = None
        self._similar: SemanticCache | None = None
        self._embed_policy: CallPolicy | None = None
        self._codec: Codec | None = None
        self._tiers: dict[str, list[TierPolicy]] = {}
        self._prices: PriceTable | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._predict: Batcher[str, Prediction] = _closed_batcher()
        self._check_ticket: Batcher[str, Verdict] = _closed_batcher()
        self._check_draft: Batcher[str, Verdict] = _closed_batcher()
        self._store: VectorStore | None = None
        self._retriever: HybridRetriever | None = None

    async def _open(self, env: StageEnv) -> None:
        # Config errors first (a bad file, a missing API key), before anything is trained or
        # connected; httpx connects lazily, so the gateway costs nothing to open here.
        await self._shared_gateway.open(env)
        self._gateway = self._shared_gateway.gateway
        self._unwatch = self._shared_gateway.watch_circuits(self._circuit_changed)
        try:
            await self._open_rest(env, self._shared_gateway.config)
        except BaseException:
            await self._close()  # not counted as open: close() would not reach it
            raise

    async def _open_rest(self, env: StageEnv, gateway_config: GatewayConfig) -> None:
        # Policies and prices are built once here, not per request.
        self._tiers = {
            stage: gateway_config.tier_policies(stage) for stage in ("generate", "generate-direct")
        }
        self._prices = gateway_config.price_table()
        intents, screen = await asyncio.gather(
            asyncio.to_thread(IntentClassifier.trained),
            asyncio.to_thread(Screen.trained, block_at=self.config.block_at),
        )
        store = open_store(self.config.vector_url, self.config.home)
        await store.start()
        self._store = store
        self._retriever = HybridRetriever(store, embed_queries_with(self.gateway, gateway_config))
        self._predict = Batcher(intents.predict_many)
        self._check_ticket = Batcher(lambda texts: screen.check_many(texts, ("injection", "unsafe")))
        self._check_draft = Batcher(lambda texts: screen.check_many(texts, ("unsafe",)))
        self._codec = env.codec
        publisher = Publisher(cluster=env.cluster, catalog=env.catalog, codec=env.codec)
        await publisher.__aenter__()
        self._publisher = publisher
        ttl = gateway_config.cache_ttl_s or self.config.answer_ttl_s
        self._answers = ResponseCache(ttl, KafkaCacheStore(env.cluster, publisher, env.codec))
        await self._answers.warm()
        if self.config.semantic_cache and "embed" in gateway_config.stages:
            await self._open_semantic_cache(env, publisher, gateway_config.policy("embed"), ttl)
        elif self.config.semantic_cache:
            log.warning("%s has no `embed` stage: the semantic cache is off", self.config.models)
        self._gateway_config = gateway_config

    async def _open_semantic_cache(
        self, env: StageEnv, publisher: Publisher, policy: CallPolicy, ttl_s: float
    ) -> None:
        gateway = self.gateway

        async def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
            return (await gateway.embed(texts, policy)).embeddings.vectors

        # The model's dimension, from the model itself (the entries carry it with the model name).
        # A provider that is down now is a cache that is off, not a pipeline that cannot start.
        try:
            result = await gateway.embed(["dimensions"], policy)
        except (GatewayError, BudgetSpent) as exc:
            log.warning("the semantic cache is off: its embedding model did not answer (%s)", exc)
            return
        probe = result.embeddings
        topic = CompactedTopic(env.cluster, publisher, env.codec, SEMANTIC_CACHE_TOPIC, SEMANTIC_ENTRY)
        similar = SemanticCache(
            embed,
            embedding_model=result.route.model,
            dimensions=probe.dimensions,
            threshold=self.config.semantic_threshold,
            ttl_s=ttl_s,
            topic=topic,
        )
        await similar.start()
        self._similar, self._embed_policy = similar, policy

    async def _embed_one(
        self, text: str, cap: CostCap | None, tenant: str | None
    ) -> tuple[npt.NDArray[np.float32] | None, float, str]:
        """The request's embedding (None when the embed policy failed), its cost, and why not.
        Paid by ``tenant``: reserved against its day and month budgets like any model call."""
        assert self._embed_policy is not None
        try:
            result = await self.gateway.embed([text], self._embed_policy, cap=cap, tenant=tenant)
        except (GatewayError, BudgetSpent) as exc:
            return None, sum(a.cost_usd for a in exc.attempts), f"{type(exc).__name__}: {exc}"
        row: npt.NDArray[np.float32] = result.embeddings.vectors[0]
        return row, result.cost_usd, ""

    async def _close(self) -> None:
        if self._unwatch is not None:
            self._unwatch()  # circuit changes from now on are the other pipelines' calls'
            self._unwatch = None
        await asyncio.gather(*self._pending, return_exceptions=True)
        gateway, publisher, similar = self._gateway, self._publisher, self._similar
        store, retriever = self._store, self._retriever
        self._gateway = self._publisher = self._similar = self._store = self._retriever = None
        try:
            try:
                if retriever is not None:
                    await retriever.aclose()
                if similar is not None:
                    await similar.stop()
                if store is not None:
                    await store.stop()
            finally:
                if publisher is not None:
                    await publisher.__aexit__(None, None, None)
        finally:
            if gateway is not None:
                await self._shared_gateway.close()  # the last user closes the gateway itself

    def _circuit_changed(self, provider: str, model: str, state: str) -> None:
        """Written to the compacted podium.circuits topic for `podium models status`; the
        acknowledgement is watched, not awaited (a handler is mid-call when this happens)."""
        if self._publisher is None or self._codec is None or self.config.dry_run:
            return
        record = {
            "worker": WORKER,
            "provider": provider,
            "model": model,
            "state": state,
            "changed_ms": now_ms(),
        }
        key = f"{WORKER}/{provider}/{model}".encode()
        value = self._codec.encode("podium.CircuitState", record)
        log.warning("circuit of %s/%s is now %s", provider, model, state)
        task = asyncio.get_running_loop().create_task(
            self._publisher.send_raw(CIRCUITS_TOPIC, key, value, []), name=f"circuit-{provider}/{model}"
        )
        self._pending.add(task)
        task.add_done_callback(self._circuit_sent)

    def _circuit_sent(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not record a circuit change: %s", task.exception())

    # -- what the handlers use (only while open) ------------------------------------------
    async def predict_intent(self, text: str) -> Prediction:
        """The intent classifier, batched with the other records in flight."""
        return await self._predict(text)

    async def screen_ticket(self, text: str) -> Verdict:
        """What a customer sent: injection and unsafe content block, personal data is redacted."""
        return await self._check_ticket(text)

    async def screen_draft(self, text: str) -> Verdict:
        """A drafted answer: unsafe content blocks, secrets and personal data are redacted."""
        return await self._check_draft(text)

    @property
    def retriever(self) -> HybridRetriever:
        assert self._retriever is not None, "support services are not open"
        return self._retriever

    @property
    def gateway(self) -> ModelGateway:
        assert self._gateway is not None, "support services are not open"
        return self._gateway

    def chunk_sink(self, topic: str, request_id: str, first_seq: int) -> ChunkSink:
        assert self._publisher is not None and self._codec is not None, "support services are not open"
        return ChunkSink(self._publisher, self._codec, topic, request_id, first_seq, self.config.dry_run)

    def cost_cap(self, tenant: str | None, spent_usd: float) -> CostCap | None:
        """The request's cap from ``budgets`` in models.yaml (None: no cap)."""
        assert self._gateway_config is not None, "support services are not open"
        limit = self._gateway_config.budgets.limit_for(tenant)
        return None if limit is None else CostCap(limit, spent_usd)

    def routed_policy(self, stage: str, score: float) -> tuple[str, CallPolicy]:
        """The cheapest adequate tier's policy for a request of this complexity."""
        chosen = choose_tier(score, self._tiers[stage])
        return chosen.name, chosen.policy

    def cost_on_largest(self, stage: str, usage: Usage) -> float:
        """What these tokens would have cost on the stage's largest model: the saving's yardstick."""
        assert self._prices is not None, "support services are not open"
        largest = self._tiers[stage][-1].policy
        return self._prices.cost(largest.chain[0].model, usage)

    def cached_reply(self, body: str, tenant: str | None) -> CachedReply | None:
        """The answer to exactly this question, asked before under this tenant (an answer may
        cite a tenant's own documents, so tenants never share one)."""
        assert self._answers is not None, "support services are not open"
        entry = self._answers.get(answer_key(body, scope_of(tenant, "", self.config.cache_scope)))
        if entry is None:
            return None
        saved = json.loads(entry.text)
        return CachedReply(saved["answer"], saved["citations"], entry.model, saved.get("sources", {}))

    async def similar_reply(
        self, body: str, tenant: str | None, intent: str, spent_usd: float = 0.0
    ) -> tuple[CachedReply | None, str, float]:
        """The semantic cache's answer for a request of this tenant and intent, a note for the
        step ("" when there is nothing to say) and what embedding the request cost. A failed
        embedding is a miss, said in the note, never the request's failure."""
        scope = scope_of(tenant, intent, self.config.cache_scope)
        if self._similar is None or not self._similar.holds(scope):
            return None, "", 0.0  # nothing to find: no embedding paid for
        vector, cost, failure = await self._embed_one(body, self.cost_cap(tenant, spent_usd), tenant)
        if vector is None:
            return None, f"semantic cache skipped: {failure}", cost
        found = self._similar.search(body, vector, scope)
        note = found.describe() if found.hit or found.refused is not None else ""
        if found.entry is None:
            return None, note, cost
        saved = json.loads(found.entry.answer)
        reply = CachedReply(saved["answer"], saved["citations"], found.entry.model, saved.get("sources", {}))
        return reply, note, cost

    async def stale_sources(self, reply: CachedReply) -> list[str]:
        """The cited documents that changed or left the index since the answer was kept."""
        if not reply.sources:
            return []
        now = await self.retriever.document_hashes(list(reply.sources))
        return sorted(d for d, kept in reply.sources.items() if now.get(d) != kept)

    async def remember_reply(
        self,
        body: str,
        reply: CachedReply,
        tokens: tuple[int, int],
        tenant: str | None = None,
        intent: str = "",
        request_id: str = "",
        passages: Sequence[Passage] = (),
    ) -> float:
        """Kept for exact repeats and, under the tenant and intent, for the semantic cache, with
        the content hash of each cited document; returns what embedding the request cost. An
        answer drafted from a passage the index no longer holds as it was is not kept."""
        assert self._answers is not None, "support services are not open"
        if self.config.dry_run:
            return 0.0
        cited = {str(c["id"]) for c in reply.citations}
        sources = await self.retriever.sources_of([p for p in passages if p.id in cited])
        if sources is None:
            log.info(
                "answer to %s not cached: a document it cites changed since it was retrieved", request_id
            )
            return 0.0
        text = json.dumps({"answer": reply.answer, "citations": reply.citations, "sources": sources})
        exact = answer_key(body, scope_of(tenant, "", self.config.cache_scope))
        await self._answers.put(exact, text, reply.model, "stop", *tokens)
        if self._similar is None:
            return 0.0
        vector, cost, failure = await self._embed_one(body, None, tenant)
        if vector is None:
            log.warning("semantic cache: not remembered (%s)", failure)
            return cost
        scope = scope_of(tenant, intent, self.config.cache_scope)
        await self._similar.remember(body, scope, text, reply.model, request_id, vector=vector)
        return cost
