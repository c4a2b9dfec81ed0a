"""Dense search latency of the vector stores: LanceDB (embedded), PostgreSQL + pgvector (a real
server from the ``pgserver`` wheel, started and stopped here) and exact numpy brute force (the
in-process baseline), on one synthetic corpus.

    .venv/bin/python bench/vector_store.py [--sizes 10000 100000] [--queries 200] [--k 10]

The corpus is made here: sentences drawn from 40 topic vocabularies, embedded with the offline
WordLlama model (256 dimensions, unit rows), 10 tenants plus shared chunks. Each store is filled
through its public ``replace_document`` (documents of ``--doc-chunks`` chunks), the way the
index stage fills it, so the load time is the real path's. Every mode answers the same queries;
recall@k is against numpy's exact top k (with the same filter). Each store is measured exact
(as it searches below its index threshold), then after ``build_index`` (LanceDB IVF_HNSW_SQ,
pgvector HNSW). Prints one table per size with p50/p99 and the ratio of each p50 to numpy's.

Then a second table per size: the same queries through :class:`~agents.rag.HybridRetriever` on
each (indexed) store, per mode (bm25, dense, hybrid; k as above, the retriever's own depth of
candidates), the query embedded by the real WordLlama through the model gateway
(``ModelGateway.embed`` on the local provider, the ``embed`` policy of models.yaml, via
``embed_queries_with``), filters passed as the queries carry them. Each mode's p50 is a ratio to
its in-process baseline measured in the same run, with the same candidates depth and filter rule:
bm25s alone (``Bm25Index.search`` over the same chunks), WordLlama called directly + numpy
exact (dense), both + reciprocal rank fusion (hybrid). The BM25 build time is the first bm25
search of a fresh retriever (it reads every chunk from the store and indexes them), beside
``Bm25Index`` built in process over the same chunks. The load average is printed in the titles.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from agents.gateway.config import load_gateway_config
from agents.gateway.gateway import ModelGateway
from agents.gateway.pricing import Price, PriceTable
from agents.gateway.providers.local import LocalProvider
from agents.offline.embedder import EMBEDDING_MODEL, WordLlamaEmbedder
from agents.offline.retriever import Bm25Index, Passage
from agents.rag import Chunk, Filters, IndexVersion, VectorStore, version_name
from agents.rag.fusion import reciprocal_rank_fusion
from agents.rag.lance import LanceStore
from agents.rag.pgvector import PgVectorStore
from agents.rag.retriever import MODES, HybridRetriever, embed_queries_with
from agents.rag.retriever import Mode as RetrievalMode

MODELS = Path(__file__).resolve().parents[1] / "models.yaml"

TOPICS = [
    "billing invoice refund payment card charge subscription plan price receipt",
    "password login account reset email verification two factor security lock",
    "shipping delivery parcel courier tracking address warehouse delay return",
    "kafka topic partition broker consumer offset producer replication lag",
    "database index query table row column transaction backup restore schema",
    "weather rain storm forecast temperature wind snow cloud sunny humidity",
    "football match goal team player league season coach stadium referee",
    "cooking recipe oven flour sugar butter bake dough sauce spice kitchen",
    "travel flight hotel airport luggage passport visa booking train ticket",
    "health doctor clinic symptom fever medicine appointment nurse therapy",
    "music guitar piano concert song album band melody rhythm festival",
    "garden plant seed soil water flower tree leaf harvest compost",
    "finance stock market bond interest inflation bank loan credit savings",
    "astronomy planet star galaxy telescope orbit moon comet nebula eclipse",
    "law court judge contract lawsuit attorney evidence verdict appeal statute",
    "car engine brake tire fuel battery mechanic repair oil transmission",
    "school teacher student exam homework classroom grade lesson course degree",
    "movie film actor director scene camera script cinema premiere award",
    "ocean wave beach boat sailing fish coral tide harbor island",
    "software bug release deploy test build pipeline version branch merge",
    "energy solar wind power grid battery turbine electricity voltage outage",
    "pets dog cat puppy vet leash food toy training adoption",
    "art painting canvas brush gallery museum sculpture color portrait sketch",
    "history empire war treaty king revolution ancient century dynasty battle",
    "chemistry molecule atom reaction acid bond element compound lab solution",
    "privacy data consent cookie tracking policy gdpr retention deletion request",
    "network router wifi latency packet bandwidth firewall dns proxy cable",
    "fitness workout running gym muscle stretch cardio weight yoga training",
    "housing rent apartment landlord lease mortgage tenant repair deposit move",
    "farming cattle crop tractor wheat corn irrigation barn harvest livestock",
    "fashion dress shirt shoes style fabric designer trend jacket season",
    "books novel author chapter library reader story poetry publisher page",
    "games console controller level player score multiplayer quest puzzle arcade",
    "mountain hiking trail summit climb camping tent backpack altitude rope",
    "insurance policy claim premium coverage damage accident deductible agent",
    "photography lens shutter exposure camera light portrait zoom flash tripod",
    "retail store checkout cart discount coupon customer order stock shelf",
    "politics election vote party campaign parliament minister policy debate",
    "biology cell gene protein dna evolution species organism enzyme tissue",
    "coffee espresso bean roast brew milk cup barista grinder aroma",
]
FILLER = ["the", "a", "of", "to", "and", "in", "for", "with", "on", "is", "how", "why", "what", "my"]
TENANTS = ["", *[f"tenant-{i}" for i in range(10)]]
DIMS = 256


@dataclass(frozen=True)
class Query:
    text: str
    vector: npt.NDArray[np.float32]
    filters: Filters


@dataclass
class Corpus:
    ids: list[str]
    texts: list[str]
    tenants: npt.NDArray[np.str_]
    vectors: npt.NDArray[np.float32]
    # Per tenant, which rows it may see (its own and the shared ones): made once, so the
    # baseline's filter is a mask, not a string comparison per query.
    visible: dict[str, npt.NDArray[np.bool_]]

    def chunks(self, start: int, stop: int, document_id: str) -> list[Chunk]:
        return [
            Chunk(
                id=self.ids[i],
                document_id=document_id,
                text=self.texts[i],
                title=f"Document {document_id}",
                url=f"https://kb.example/{document_id}",
                source="bench",
                tenant=str(self.tenants[i]),
                vector=self.vectors[i],
            )
            for i in range(start, stop)
        ]


def sentences(rng: np.random.Generator, n: int) -> list[str]:
    words = [topic.split() for topic in TOPICS]
    out = []
    for _ in range(n):
        topic = words[int(rng.integers(len(words)))]
        other = words[int(rng.integers(len(words)))]
        picked = [*rng.choice(topic, 6), *rng.choice(other, 2), *rng.choice(FILLER, 4)]
        rng.shuffle(picked)
        out.append(" ".join(picked))
    return out


def make_corpus(embedder: WordLlamaEmbedder, size: int, seed: int = 13) -> Corpus:
    rng = np.random.default_rng(seed)
    texts = sentences(rng, size)
    tenants = np.array(TENANTS)[rng.integers(len(TENANTS), size=size)]
    return Corpus(
        ids=[f"c{i:07d}" for i in range(size)],
        texts=texts,
        tenants=tenants,
        vectors=embedder.embed(texts),
        visible={t: (tenants == t) | (tenants == "") for t in TENANTS},
    )


def make_queries(embedder: WordLlamaEmbedder, count: int) -> list[Query]:
    rng = np.random.default_rng(99)
    texts = sentences(rng, count)
    vectors = embedder.embed(texts)
    # Half of them filtered to one tenant (its chunks and the shared ones).
    return [
        Query(text, vectors[i], Filters(tenant=TENANTS[1 + i % 10]) if i % 2 else Filters())
        for i, text in enumerate(texts)
    ]


def exact_top(corpus: Corpus, query: Query, k: int) -> list[str]:
    scores = corpus.vectors @ query.vector
    if query.filters.tenant is not None:
        scores = np.where(corpus.visible[query.filters.tenant], scores, -np.inf)
    top = np.argpartition(-scores, k)[:k]
    return [corpus.ids[i] for i in top[np.argsort(-scores[top])]]


async def fill(store: VectorStore, name: str, corpus: Corpus, doc_chunks: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(corpus.ids), doc_chunks):
        document_id = f"doc{start // doc_chunks:06d}"
        stop = min(start + doc_chunks, len(corpus.ids))
        await store.replace_document(name, document_id, corpus.chunks(start, stop, document_id))
    return time.perf_counter() - started


Mode = Callable[[Query, int], Awaitable[list[str]]]


def store_mode(store: VectorStore, name: str) -> Mode:
    async def search(query: Query, k: int) -> list[str]:
        return [hit.chunk.id for hit in await store.search(name, query.vector, k, query.filters)]

    return search


def modes(corpus: Corpus, stores: dict[str, tuple[VectorStore, str]]) -> dict[str, Mode]:
    async def numpy_exact(query: Query, k: int) -> list[str]:
        return exact_top(corpus, query, k)

    found: dict[str, Mode] = {"numpy exact": numpy_exact}
    for label, (store, name) in stores.items():
        found[label] = store_mode(store, name)
    return found


async def measure(
    mode: Mode, queries: Sequence[Query], k: int, truth: Sequence[list[str]]
) -> tuple[float, float, float]:
    for query in queries[:5]:  # warm caches and connections
        await mode(query, k)
    latencies, recalls = [], []
    for query, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        ids = await mode(query, k)
        latencies.append((time.perf_counter() - started) * 1000)
        recalls.append(len(set(ids) & set(expected)) / max(1, len(expected)))
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49], cuts[98], statistics.fmean(recalls)


async def run_size(
    size: int, embedder: WordLlamaEmbedder, postgres_url: str, args: argparse.Namespace, console: Console
) -> None:
    started = time.perf_counter()
    corpus = make_corpus(embedder, size)
    queries = make_queries(embedder, args.queries)
    truth = [exact_top(corpus, q, args.k) for q in queries]
    console.print(f"[dim]{size:,} chunks embedded in {time.perf_counter() - started:.1f} s[/dim]")
    version = IndexVersion(
        name=version_name(EMBEDDING_MODEL, DIMS),
        provider="local",
        model=EMBEDDING_MODEL,
        dimensions=DIMS,
        state="active",
        created_ms=0,
    )
    with tempfile.TemporaryDirectory(prefix="podium-bench-lance-") as home:
        # Loaded whole first, then indexed (build_index), as a bulk load should be: the stores
        # would otherwise index by themselves part way through the load.
        lance = LanceStore(Path(home) / "vectors", index_min_rows=size + 1)
        pg = PgVectorStore(postgres_url, index_min_rows=size + 1)
        await lance.start()
        await pg.start()
        try:
            loads, builds = {}, {}
            for label, backend in (("lancedb", lance), ("pgvector", pg)):
                await backend.ensure_version(version)
                loads[label] = await fill(backend, version.name, corpus, args.doc_chunks)
            stores: dict[str, tuple[VectorStore, str]] = {
                "lancedb exact": (lance, version.name),
                "pgvector exact": (pg, version.name),
            }
            # Exact first (what a table below its index threshold does), then indexed.
            results = {
                label: await measure(mode, queries, args.k, truth)
                for label, mode in modes(corpus, stores).items()
            }
            if not args.exact:
                for label, backend in (("lancedb", lance), ("pgvector", pg)):
                    built = time.perf_counter()
                    await backend.build_index(version.name)
                    builds[label] = time.perf_counter() - built
                indexed: dict[str, tuple[VectorStore, str]] = {
                    f"lancedb {await lance.index_type(version.name)}": (lance, version.name),
                    f"pgvector {await pg.index_type(version.name)}": (pg, version.name),
                }
                for label, (store, name) in indexed.items():
                    results[label] = await measure(store_mode(store, name), queries, args.k, truth)
            retrieval = await retrieval_rows(
                {"lancedb": lance, "pgvector": pg}, corpus, queries, embedder, args
            )
        finally:
            await lance.stop()
            await pg.stop()
    await drop_version(postgres_url, version.name)
    base = results["numpy exact"][0]
    table = Table(
        title=f"dense search, {size:,} chunks x {DIMS} dims, {len(queries)} queries "
        f"(half tenant-filtered), k={args.k}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    columns = (
        "mode",
        "p50 ms",
        "p99 ms",
        "p50 vs numpy",
        f"recall@{args.k}",
        "load chunks/s",
        "index build s",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right")
    for label, (p50, p99, recall) in results.items():
        backend, _, kind = label.partition(" ")
        load = f"{size / loads[backend]:,.0f}" if backend in loads and kind == "exact" else ""
        build = f"{builds[backend]:.1f}" if backend in builds and kind != "exact" else ""
        table.add_row(label, f"{p50:.2f}", f"{p99:.2f}", f"{p50 / base:.1f}x", f"{recall:.3f}", load, build)
    console.print(table)
    console.print(retrieval_table(size, len(queries), args, retrieval))


# -- retrieval per mode through the HybridRetriever ------------------------------------------
Timed = Callable[[Query], Awaitable[object]]


@dataclass(frozen=True)
class Row:
    label: str
    p50: float
    p99: float
    baseline: str  # the in-process row its p50 is divided by ("" for a baseline itself)
    build_s: float | None = None


async def interleaved(calls: dict[str, Timed], queries: Sequence[Query]) -> dict[str, tuple[float, float]]:
    """p50/p99 of each call over the queries, the calls taking turns query by query (a machine
    whose load drifts during the run slows them all alike)."""
    for call in calls.values():
        for query in queries[:5]:  # warm caches and connections
            await call(query)
    latencies: dict[str, list[float]] = {label: [] for label in calls}
    for query in queries:
        for label, call in calls.items():
            started = time.perf_counter()
            await call(query)
            latencies[label].append((time.perf_counter() - started) * 1000)
    cuts = {label: statistics.quantiles(values, n=100) for label, values in latencies.items()}
    return {label: (c[49], c[98]) for label, c in cuts.items()}


def in_process(
    corpus: Corpus, embedder: WordLlamaEmbedder, args: argparse.Namespace, depth: int, fusion_k: int
) -> tuple[dict[str, Timed], float]:
    """The baselines: bm25s alone, WordLlama + numpy exact, both + RRF, with the retriever's
    candidates depth and filter rule (BM25 ranks ``depth * 4`` and filters after); and the
    seconds ``Bm25Index`` takes over the same chunks (the titles the stores hold)."""
    passages = [
        Passage(cid, "bench", f"Document doc{i // args.doc_chunks:06d}", "", text, 0.0)
        for i, (cid, text) in enumerate(zip(corpus.ids, corpus.texts, strict=True))
    ]
    started = time.perf_counter()
    index = Bm25Index(passages)
    build_s = time.perf_counter() - started
    tenant_of = dict(zip(corpus.ids, corpus.tenants.tolist(), strict=True))

    def lexical(query: Query) -> list[str]:
        tenant = query.filters.tenant
        found = index.search(query.text, depth if tenant is None else depth * 4)
        return [p.id for p in found if tenant is None or tenant_of[p.id] in ("", tenant)][:depth]

    def dense(query: Query) -> list[str]:
        vector = embedder.embed([query.text])[0]
        return exact_top(corpus, Query(query.text, vector, query.filters), depth)

    async def bm25(query: Query) -> list[str]:
        return lexical(query)[: args.k]

    async def dense_k(query: Query) -> list[str]:
        return dense(query)[: args.k]

    async def hybrid(query: Query) -> list[str]:
        fused = reciprocal_rank_fusion([lexical(query), dense(query)], k=fusion_k)
        return [chunk_id for chunk_id, _ in fused][: args.k]

    return {"bm25": bm25, "dense": dense_k, "hybrid": hybrid}, build_s


async def retrieval_rows(
    stores: dict[str, VectorStore],
    corpus: Corpus,
    queries: Sequence[Query],
    embedder: WordLlamaEmbedder,
    args: argparse.Namespace,
) -> list[Row]:
    gateway = ModelGateway(
        {"local": LocalProvider(models={EMBEDDING_MODEL: embedder})},
        PriceTable({EMBEDDING_MODEL: Price(0, 0)}),
    )
    embed_query = embed_queries_with(gateway, load_gateway_config(MODELS))
    retrievers: list[HybridRetriever] = []
    try:
        probe = HybridRetriever(stores["lancedb"], embed_query)
        baselines, build_s = in_process(corpus, embedder, args, probe.depth, probe.fusion_k)
        names = {"bm25": "bm25s alone", "dense": "WordLlama + numpy exact", "hybrid": "both + RRF"}
        calls = {f"in process {mode} ({names[mode]})": call for mode, call in baselines.items()}
        bases = dict(zip(MODES, calls, strict=True))
        builds = {bases["bm25"]: build_s}
        for label, store in stores.items():
            retriever = HybridRetriever(store, embed_query)
            retrievers.append(retriever)
            started = time.perf_counter()
            first = await retriever.search(queries[0].text, args.k, "bm25", queries[0].filters)
            builds[f"{label} bm25"] = time.perf_counter() - started
            if first.version is None or not first.passages:
                raise RuntimeError(f"{label}: the retriever found nothing ({first.notes})")
            for mode in MODES:

                async def call(
                    query: Query, mode: RetrievalMode = mode, retriever: HybridRetriever = retriever
                ) -> object:
                    return await retriever.search(query.text, args.k, mode, query.filters)

                calls[f"{label} {mode}"] = call
        measured = await interleaved(calls, queries)
    finally:
        for retriever in retrievers:
            await retriever.aclose()
        await gateway.aclose()
    rows: list[Row] = []
    for label, (p50, p99) in measured.items():
        mode = label.split(" ")[-1] if not label.startswith("in process") else ""
        rows.append(Row(label, p50, p99, bases.get(mode, ""), builds.get(label)))
    return rows


def retrieval_table(size: int, queries: int, args: argparse.Namespace, rows: Sequence[Row]) -> Table:
    table = Table(
        title=f"retrieval per mode through HybridRetriever, {size:,} chunks, {queries} queries "
        f"(half tenant-filtered), k={args.k}; query embedded by WordLlama through the ModelGateway "
        f"(local provider); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for column in ("mode", "p50 ms", "p99 ms", "p50 vs in process", "bm25 build s"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    p50_of = {r.label: r.p50 for r in rows}
    for r in rows:
        ratio = f"{r.p50 / p50_of[r.baseline]:.1f}x" if r.baseline else "1.0x"
        build = "" if r.build_s is None else f"{r.build_s:.1f}"
        table.add_row(r.label, f"{r.p50:.2f}", f"{r.p99:.2f}", ratio, build)
    return table


async def drop_version(url: str, name: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DROP TABLE IF EXISTS podium_index_versions")
        await conn.execute(f'DROP TABLE IF EXISTS "chunks_{name}"')


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--exact", action="store_true", help="no approximate index: exact search")
    parser.add_argument("--doc-chunks", type=int, default=500, help="chunks per replace_document call")
    args = parser.parse_args()
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    console = Console(width=130)
    embedder = WordLlamaEmbedder.load()
    with tempfile.TemporaryDirectory(prefix="podium-bench-pg-") as pgdata:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset in a container
            import pgserver

            server = pgserver.get_server(pgdata, cleanup_mode="stop")
        try:
            for size in args.sizes:
                await run_size(size, embedder, server.get_uri(), args, console)
        finally:
            server.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
