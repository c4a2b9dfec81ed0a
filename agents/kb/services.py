"""What the knowledge base's stages share in a process: their configuration, a hold on the
process's model gateway (:func:`agents.gateway.resource.shared_or_own`), the vector store opened
from the settings, and the batcher that gathers the texts of every record in flight into
embeddings calls. Opened by the first of the embed and index workers, closed by the last."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agents.gateway.gateway import CallPolicy, EmbeddingResult, ModelGateway
from agents.gateway.resource import GatewayResource, shared_or_own
from agents.kb.config import KbConfig
from agents.kb.targets import Targets, targets
from agents.offline.embedder import EMBEDDING_MODELS
from agents.rag.retriever import HybridRetriever, embed_queries_with, policy_for
from agents.rag.store import BUILDING, IndexVersion, VectorStore, open_store, version_name
from streams import now_ms
from streams.runtime import SharedResource, StageEnv

__all__ = ["EmbedBatcher", "Embedding", "KbServices", "learned_version"]

EMBED_STAGE = "embed"  # the models.yaml policy


@dataclass(frozen=True)
class Embedding:
    """One record's texts embedded: a row each, in order, and its share of the calls' cost."""

    vectors: npt.NDArray[np.float32]
    provider: str
    model: str
    dimensions: int
    cost_usd: float


EmbedCall = Callable[[list[str]], Awaitable[EmbeddingResult]]


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future[Embedding]


class EmbedBatcher:
    """``await batcher(texts)``: texts of many records share embeddings calls. A lone record's
    texts go out at once (nothing waits on a timer); while calls are out, the records that ask
    wait for them to finish and then go out together, in calls of at most ``max_batch`` texts
    (made at the same time), so batches grow with the load: a hundred documents in flight cost
    a few calls, not a hundred. Each record pays its share of the calls' cost, by characters."""

    def __init__(self, embed: EmbedCall, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._embed = embed
        self._max_batch = max_batch
        self._waiting: list[_Request] = []
        self._runner: asyncio.Task[None] | None = None
        self.calls = 0  # embeddings calls made (for tests and benchmarks)

    async def __call__(self, texts: Sequence[str]) -> Embedding:
        loop = asyncio.get_running_loop()
        request = _Request(list(texts), loop.create_future())
        self._waiting.append(request)
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._drain(), name="kb-embed-batches")
        return await request.future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # the records that ask in this turn of the loop join the first batch
        while self._waiting:
            batch = [r for r in self._waiting if not r.future.done()]  # a cancelled caller is skipped
            self._waiting = []
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[_Request]) -> None:
        texts = [t for r in batch for t in r.texts]
        slices = [texts[i : i + self._max_batch] for i in range(0, len(texts), self._max_batch)]
        if not slices:  # records with nothing to embed: nothing to call
            for request in batch:
                request.future.set_result(Embedding(np.zeros((0, 0), np.float32), "", "", 0, 0.0))
            return
        self.calls += len(slices)
        try:
            results = await asyncio.gather(*(self._embed(s) for s in slices))
        except asyncio.CancelledError:
            for request in batch:
                request.future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every record of the batch, none hangs
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        vectors = np.concatenate([r.embeddings.vectors for r in results]).astype(np.float32, copy=False)
        cost = sum(r.cost_usd for r in results)
        chars = sum(len(t) for t in texts) or 1
        first = results[0].embeddings
        # The route's model names the version, not the model name the server answers with
        # (Ollama adds ":latest", Azure answers with the base model of a deployment).
        route = results[0].route
        offset = 0
        for request in batch:
            rows = vectors[offset : offset + len(request.texts)]
            offset += len(request.texts)
            if not request.future.done():
                share = cost * sum(len(t) for t in request.texts) / chars
                request.future.set_result(
                    Embedding(rows, route.provider, route.model, first.dimensions, share)
                )

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        for request in self._waiting:
            request.future.cancel()
        self._waiting = []


class KbServices(SharedResource):
    def __init__(self, config: KbConfig, gateway: GatewayResource | None = None) -> None:
        """``gateway``: the process's one model gateway (see :mod:`agents.gateway.resource`)."""
        super().__init__()
        self.config = config
        self._shared_gateway = shared_or_own(gateway, config.models, EMBEDDING_MODELS)
        self._gateway: ModelGateway | None = None
        self._policy: CallPolicy | None = None
        self._store: VectorStore | None = None
        self._batchers: dict[CallPolicy, EmbedBatcher] = {}
        self._versions_lock = asyncio.Lock()
        self._prepared: dict[str, IndexVersion] = {}

    async def _open(self, env: StageEnv) -> None:
        # Config errors first (a bad models file, no embed policy), before the store opens.
        await self._shared_gateway.open(env)
        self._gateway = self._shared_gateway.gateway
        try:
            self._policy = self._shared_gateway.config.policy(EMBED_STAGE)
            store = open_store(self.config.vector_url, self.config.home)
            await store.start()
            self._store = store
        except BaseException:
            await self._close()  # not counted as open: close() would not reach it
            raise

    async def _close(self) -> None:
        batchers, store, gateway = list(self._batchers.values()), self._store, self._gateway
        self._batchers = {}
        self._store = self._gateway = None
        self._prepared.clear()
        try:
            for batcher in batchers:
                await batcher.close()
            if store is not None:
                await store.stop()
        finally:
            if gateway is not None:
                await self._shared_gateway.close()  # the last user closes the gateway itself

    def _batcher(self, policy: CallPolicy) -> EmbedBatcher:
        """One batcher per way of embedding (the policy, or one version's own route)."""
        batcher = self._batchers.get(policy)
        if batcher is None:
            gateway = self._gateway
            assert gateway is not None, "kb services are not open"

            async def call(texts: list[str]) -> EmbeddingResult:
                return await gateway.embed(texts, policy)

            batcher = self._batchers[policy] = EmbedBatcher(call, self.config.tuning.embed_batch)
        return batcher

    @property
    def embed_calls(self) -> int:
        """Embeddings calls made since the services opened (for tests and benchmarks)."""
        return sum(b.calls for b in self._batchers.values())

    # -- what the handlers use (only while open) ------------------------------------------
    def retriever(self) -> HybridRetriever:
        """A hybrid retriever over this process's store and gateway (the demo shows one)."""
        assert self._gateway is not None, "kb services are not open"
        return HybridRetriever(self.store, embed_queries_with(self._gateway, self._shared_gateway.config))

    @property
    def store(self) -> VectorStore:
        assert self._store is not None, "kb services are not open"
        return self._store

    @property
    def policy(self) -> CallPolicy:
        """The ``embed`` policy of models.yaml."""
        assert self._policy is not None, "kb services are not open"
        return self._policy

    async def embed(self, texts: Sequence[str], version: IndexVersion | None = None) -> Embedding:
        """The texts embedded for ``version`` (:func:`~agents.rag.retriever.policy_for`: the
        policy when it names the version's model, else the version's own route), or by the
        policy when no version is named yet; gathered with other records' texts."""
        policy = self.policy if version is None else policy_for(version, self.policy)
        return await self._batcher(policy)(texts)

    @property
    def model(self) -> tuple[str, str]:
        """(provider, model) of the embed policy's first route: every route serves that model."""
        route = self.policy.chain[0]
        return route.provider, route.model

    async def targets(self) -> Targets:
        """The versions a document goes to now (:func:`agents.kb.targets.targets`); read from
        the store for every record, so a version a reindex just created is fed at once."""
        _, model = self.model
        return targets(await self.store.versions(), model, self.policy.dimensions)

    async def prepared(self, version: IndexVersion) -> IndexVersion:
        """The version exists in the store (the existing row wins), and some version is active:
        the first one written is activated, so a new knowledge base serves at once."""
        async with self._versions_lock:
            if version.name in self._prepared:  # once per process and version
                return self._prepared[version.name]
            kept = await self.store.ensure_version(version)
            if await self.store.active() is None:
                await self.store.activate(kept.name)
            self._prepared[kept.name] = kept
            return kept


def learned_version(embedding: Embedding) -> IndexVersion:
    """The version an embedding's model and dimensions make (new: building)."""
    return IndexVersion(
        version_name(embedding.model, embedding.dimensions),
        embedding.provider,
        embedding.model,
        embedding.dimensions,
        BUILDING,
        now_ms(),
    )
