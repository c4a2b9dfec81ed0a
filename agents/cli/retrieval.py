"""The knowledge base's retriever as the commands open it (``podium kb search``, ``podium eval
retrieval``): the vector store from the settings (``PODIUM_VECTOR_URL``, else LanceDB under
``PODIUM_HOME/vectors``), a model gateway from models.yaml that embeds queries with the ``embed``
policy, and the :class:`~agents.rag.retriever.HybridRetriever` over both. Closed in the reverse
order: the retriever's rebuild, the gateway, then the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from agents.gateway.config import build_gateway, load_gateway_config
from agents.offline.embedder import EMBEDDING_MODELS
from agents.rag.retriever import HybridRetriever, embed_queries_with
from agents.rag.store import VectorStore, open_store
from streams.config import Settings

__all__ = ["NOTHING_INDEXED", "OpenRetriever", "open_retriever"]

NOTHING_INDEXED = (
    "nothing is indexed yet: run the knowledge base's stages (`podium run kb`) and publish the "
    "documents (`podium ingest docs agents/data/kb`)"
)


@dataclass(frozen=True)
class OpenRetriever:
    retriever: HybridRetriever
    store: VectorStore


@asynccontextmanager
async def open_retriever(settings: Settings) -> AsyncIterator[OpenRetriever]:
    """The retriever over the settings' store and gateway, every part closed on the way out
    (a bad models file fails before the store opens)."""
    config = load_gateway_config(settings.models_file)
    store = open_store(settings.vector_url, settings.home)
    await store.start()
    try:
        gateway = build_gateway(config, settings.provider_keys, local_models=EMBEDDING_MODELS)
        try:
            retriever = HybridRetriever(store, embed_queries_with(gateway, config))
            try:
                yield OpenRetriever(retriever, store)
            finally:
                await retriever.aclose()
        finally:
            await gateway.aclose()
    finally:
        await store.stop()
