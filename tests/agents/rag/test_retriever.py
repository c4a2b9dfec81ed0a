"""The hybrid retriever over a real store (LanceDB and pgvector) with the real local embedder."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from agents.offline.embedder import WordLlamaEmbedder
from agents.rag import Chunk, Filters, IndexVersion, VectorStore, version_name
from agents.rag.retriever import HybridRetriever, QueryVector

EMBEDDER = WordLlamaEmbedder.load()
VERSION = IndexVersion(version_name("local-wordllama", 256), "local", "local-wordllama", 256, "active", 1)

DOCS = {
    "docs-embed": ("Embedding dashboards", "Share a dashboard on your website with an iframe snippet."),
    "docs-2fa": ("Two-factor authentication", "Enable 2FA with an authenticator app; keep backup codes."),
    "docs-invoices": ("Invoices", "Download invoices as PDF from Settings > Billing."),
    "faq-seats": ("How many seats do I have?", "Your plan's seats are listed under Members."),
}


def chunks_of(doc_id: str, title: str, text: str, tenant: str = "") -> list[Chunk]:
    vector = EMBEDDER.embed([f"{title}. {text}"])[0]
    source = doc_id.split("-")[0]
    return [
        Chunk(f"{doc_id}#0", doc_id, text, title, f"https://x/{doc_id}", source, tenant, "en", "h", vector)
    ]


class Embeds:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, text: str, version: IndexVersion) -> QueryVector:
        self.calls.append((text, version.model))
        if self.fail:
            raise RuntimeError("gateway down")
        return QueryVector(EMBEDDER.embed([text])[0], 0.001, "local/local-wordllama", 0.002)


async def filled(store: VectorStore, docs: dict[str, tuple[str, str]] = DOCS) -> None:
    await store.ensure_version(VERSION)
    await store.activate(VERSION.name)
    for doc_id, (title, text) in docs.items():
        await store.replace_document(VERSION.name, doc_id, chunks_of(doc_id, title, text))


def ids(passages: Sequence[object]) -> list[str]:
    return [p.id for p in passages]  # type: ignore[attr-defined]


async def test_nothing_indexed_says_how_to_fill_the_index(store: VectorStore) -> None:
    found = await HybridRetriever(store, Embeds()).search("anything", 3)
    assert found.passages == [] and found.version is None
    assert "podium ingest docs" in found.notes[0]


async def test_each_mode_finds_the_document_and_cites_it_by_document_id(store: VectorStore) -> None:
    await filled(store)
    embeds = Embeds()
    retriever = HybridRetriever(store, embeds)
    for mode in ("bm25", "dense", "hybrid"):
        found = await retriever.search("How do I enable two-factor authentication?", 2, mode)  # type: ignore[arg-type]
        assert found.mode == mode and found.version == VERSION.name
        assert ids(found.passages)[0] == "docs-2fa", mode
        assert len(found.passages) <= 2
    assert embeds.calls == [("How do I enable two-factor authentication?", "local-wordllama")] * 2
    hybrid = await retriever.search("put a chart on our intranet page", 1, "hybrid")
    assert hybrid.cost_usd == 0.001 and hybrid.embed_model == "local/local-wordllama"


async def test_hybrid_answers_from_bm25_when_embedding_fails_and_dense_raises(store: VectorStore) -> None:
    await filled(store)
    retriever = HybridRetriever(store, Embeds(fail=True))
    found = await retriever.search("download invoices pdf", 2, "hybrid")
    assert found.mode == "bm25" and ids(found.passages)[0] == "docs-invoices"
    assert "dense failed (RuntimeError: gateway down)" in found.notes[0]
    with pytest.raises(RuntimeError):
        await retriever.search("download invoices pdf", 2, "dense")


async def test_a_changed_or_deleted_document_is_found_as_it_is_now(store: VectorStore) -> None:
    await filled(store)
    now = [0.0]
    retriever = HybridRetriever(store, Embeds(), refresh_s=1.0, clock=lambda: now[0])
    assert ids((await retriever.search("invoices pdf", 4, "bm25")).passages)[0] == "docs-invoices"
    await store.replace_document(
        VERSION.name,
        "docs-invoices",
        chunks_of("docs-invoices", "Invoices", "Receipts arrive by email monthly."),
    )
    await store.delete_document(VERSION.name, "docs-2fa")
    now[0] = 2.0  # past the refresh: the revision is read and the BM25 index rebuilt
    await retriever.search("receipts", 4, "bm25")  # the rebuild runs beside this query
    for _ in range(100):
        await asyncio.sleep(0.01)
        found = await retriever.search("receipts email monthly", 4, "bm25")
        if found.passages:
            break
    assert ids(found.passages) == ["docs-invoices"] and "Receipts" in found.passages[0].text
    for mode in ("bm25", "dense", "hybrid"):
        found = await retriever.search("two-factor authenticator backup codes", 4, mode)  # type: ignore[arg-type]
        assert "docs-2fa" not in ids(found.passages), mode
    await retriever.aclose()


async def test_filters_keep_other_tenants_chunks_out_of_every_mode(store: VectorStore) -> None:
    await filled(store)
    await store.replace_document(
        VERSION.name,
        "docs-secret",
        chunks_of("docs-secret", "Umbrella runbook", "Umbrella's invoices pdf", "umbrella"),
    )
    retriever = HybridRetriever(store, Embeds())
    for mode in ("bm25", "dense", "hybrid"):
        other = await retriever.search("umbrella invoices pdf", 5, mode, Filters(tenant="acme"))  # type: ignore[arg-type]
        assert "docs-secret" not in ids(other.passages), mode
        own = await retriever.search("umbrella invoices pdf", 5, mode, Filters(tenant="umbrella"))  # type: ignore[arg-type]
        assert "docs-secret" in ids(own.passages), mode


async def test_an_unknown_mode_is_refused(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="bm25, dense, hybrid"):
        await HybridRetriever(store, Embeds()).search("x", 1, "fuzzy")  # type: ignore[arg-type]


def test_query_vectors_are_unit_rows() -> None:
    assert np.isclose(float(np.linalg.norm(EMBEDDER.embed(["a query"])[0])), 1.0, atol=1e-5)
