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

A mode is one async function ``(query) -> list of chunk ids`` in :func:`modes`: BM25 or hybrid
retrieval (agents/rag/retriever.py) is one more entry there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
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

from agents.offline.embedder import EMBEDDING_MODEL, WordLlamaEmbedder
from agents.rag import Chunk, Filters, IndexVersion, VectorStore, version_name
from agents.rag.lance import LanceStore
from agents.rag.pgvector import PgVectorStore

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
        scores = np.where((corpus.tenants == query.filters.tenant) | (corpus.tenants == ""), scores, -np.inf)
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
        finally:
            await lance.stop()
            await pg.stop()
    await drop_version(postgres_url, version.name)
    base = results["numpy exact"][0]
    table = Table(
        title=f"dense search, {size:,} chunks x {DIMS} dims, {len(queries)} queries "
        f"(half tenant-filtered), k={args.k}"
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
