"""Documents per second through the knowledge-base pipeline on Kafka (chunk -> embed -> index into
LanceDB), against the same work done in process with no Kafka, in one run.

    .venv/bin/python bench/kb_ingest.py [--documents 1000] [--doc-bytes 2000]

1. Kafka: a fresh ``PODIUM_HOME`` (a temporary directory: its own LanceDB, and its own local
   broker on a free port, so nothing of an earlier run is re-ingested; with
   KAFKA_BOOTSTRAP_SERVERS set that cluster's kb topics are used and only this run's document ids
   are counted). The kb topics are created, ``podium run kb`` starts as its own process, one
   warm-up document goes through (group joins, model load, the index version's table), then
   ``--documents`` synthetic Markdown documents of about ``--doc-bytes`` bytes are published
   at once the way ``podium ingest docs`` publishes them. Documents/s and chunks/s are measured
   from the first publish (the kb.documents record's timestamp) to the last kb.indexed record of
   this run (broker timestamps). The worker's CPU per document comes from its process's CPU times
   (psutil), from just before the first publish to the last record; in process, this process's
   CPU time over its loop.
2. In process, the baseline: the same documents parsed and chunked by the chunk stage's own
   function, embedded by WordLlama called directly (one call per document, as a lone record's
   texts go), and written with ``replace_document`` into a fresh LanceDB, one document after the
   other in one loop.
3. The embed share: WordLlama texts/s alone on the same chunk texts, at the batch sizes the two
   paths use (a document's chunks; the pipeline's ``embed_batch`` when records are in flight
   together), and what fraction of each path's time that much embedding takes.

The load average is printed with the table: quote it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from streams.kafka.connection import Cluster

REPO = Path(__file__).resolve().parents[1]
RUN = os.urandom(3).hex()  # this run's document ids
DEAD_LETTERS = ("kb.documents.dlq", "kb.chunks.dlq", "kb.embedded.dlq")
console = Console(width=130)

WORDS = [
    "billing invoice refund payment card charge subscription plan price receipt",
    "password login account reset email verification security lock session token",
    "shipping delivery parcel courier tracking address warehouse delay return label",
    "kafka topic partition broker consumer offset producer replication lag retention",
    "database index query table row column transaction backup restore schema",
    "dashboard embed widget chart report export share filter panel workspace",
    "webhook integration api key request response retry timeout endpoint event",
    "team member role permission invite admin owner seat organisation audit",
]
FILLER = ["the", "a", "of", "to", "and", "in", "for", "with", "on", "is", "your", "when", "you", "can"]


def markdown(rng: np.random.Generator, number: int, size: int) -> str:
    """A document of about ``size`` bytes: a title, sections with headings, paragraphs."""
    topic = WORDS[number % len(WORDS)].split()
    lines = [f"# Guide {number}: {' '.join(rng.choice(topic, 3))}", ""]
    while sum(len(line) + 1 for line in lines) < size:
        lines += [f"## {' '.join(rng.choice(topic, 2)).capitalize()}", ""]
        for _ in range(2):
            sentences = []
            for _ in range(4):
                words = [*rng.choice(topic, 7), *rng.choice(FILLER, 5)]
                rng.shuffle(words)
                sentences.append(" ".join(words).capitalize() + ".")
            lines += [" ".join(sentences), ""]
    return "\n".join(lines)


def drafts(count: int, size: int, tag: str) -> list:  # list[Draft]
    from agents.kb.documents import Draft

    rng = np.random.default_rng(13)
    return [
        Draft(
            document_id=f"bench-{tag}/guide-{i:05d}.md",
            source="bench",
            media_type="text/markdown",
            content=markdown(rng, i, size).encode(),
            url=f"https://kb.example/{tag}/{i}",
        )
        for i in range(count)
    ]


@contextmanager
def kb_worker(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``podium run kb`` in its own process, until it says it runs; SIGTERM at the end."""
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "podium"), "run", "kb"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("podium: running"):
                break
        else:
            raise RuntimeError(f"podium run kb exited ({proc.wait()}) before it ran")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Indexed:
    """Reads kb.documents and kb.indexed from their start; ``until(ids)`` waits until every id
    has a kb.indexed record."""

    def __init__(self, cluster: Cluster) -> None:
        self.consumer = cluster.consumer(
            "kb.documents",
            "kb.indexed",
            *DEAD_LETTERS,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.published: dict[str, int] = {}  # document id -> its first kb.documents timestamp
        self.seen: dict[str, tuple[int, int]] = {}  # document id -> (kb.indexed timestamp ms, chunks)
        self.dead: set[str] = set()  # dead-lettered by a stage: finished, not indexed

    async def until(self, ids: set[str], timeout_s: float, codec, schema) -> None:
        deadline = time.monotonic() + timeout_s
        while not ids <= self.seen.keys() | self.dead:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(ids - self.seen.keys())} documents not indexed after {timeout_s:.0f} s"
                )
            batches = await self.consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    if r.key is None or r.value is None:
                        continue
                    if r.topic in DEAD_LETTERS:
                        self.dead.add(r.key.decode())
                        continue
                    if r.topic == "kb.documents":
                        self.published.setdefault(r.key.decode(), r.timestamp)
                        continue
                    value = codec.decode(schema, r.value)
                    self.seen[r.key.decode()] = (r.timestamp, int(value["chunks"]))


async def on_kafka(project, docs: list, warmup: list, args: argparse.Namespace, env: dict[str, str]) -> dict:
    from agents.kb.documents import request_id_for
    from streams.ingress.publish import Publisher
    from streams.kafka import TopicAdmin

    cluster = project.cluster()
    catalog = project.catalog
    async with TopicAdmin(cluster) as admin:
        await admin.apply(catalog.select(t.name for t in catalog if t.name.startswith("kb.")))
    env = {**env, "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap}
    schema = catalog.get("kb.indexed").value_schema
    indexed = Indexed(cluster)
    await indexed.consumer.start()
    try:
        with kb_worker(env) as proc:
            worker = psutil.Process(proc.pid)
            async with Publisher(cluster=cluster, catalog=catalog, codec=project.codec) as pub:

                async def publish(draft) -> None:
                    await pub.publish(
                        "kb.documents",
                        dict(draft.record()),
                        request_id=request_id_for(draft.document_id),
                        key=draft.document_id,
                    )

                await asyncio.gather(*(publish(d) for d in warmup))
                await indexed.until({d.document_id for d in warmup}, 300, project.codec, schema)
                cpu = worker.cpu_times()
                cpu_before = cpu.user + cpu.system
                await asyncio.gather(*(publish(d) for d in docs))
                ids = {d.document_id for d in docs}
                await indexed.until(ids, args.timeout, project.codec, schema)
                cpu = worker.cpu_times()
                cpu_s = cpu.user + cpu.system - cpu_before
    finally:
        await indexed.consumer.stop()
    done = ids & indexed.seen.keys()
    first = min(indexed.published[i] for i in ids)
    last = max((indexed.seen[i][0] for i in done), default=first)
    return {
        "seconds": (last - first) / 1000,
        "indexed": len(done),
        "dead": len(ids & indexed.dead - done),
        "chunks": sum(indexed.seen[i][1] for i in done),
        "cpu_s": cpu_s,
    }


async def in_process(docs: list, embedder, embed_batch: int) -> dict:
    """Chunk (the chunk stage's function), embed (WordLlama directly, a call per document),
    store (replace_document into a fresh LanceDB), one document after the other."""
    from agents.kb.config import KbConfig
    from agents.kb.stages import ChunkStage, embedding_input, stored_chunks
    from agents.offline.embedder import EMBEDDING_MODEL
    from agents.rag import IndexVersion, version_name
    from agents.rag.lance import LanceStore

    chunker = ChunkStage(KbConfig(models=REPO / "models.yaml"))
    with tempfile.TemporaryDirectory(prefix="podium-bench-kb-") as home:
        store = LanceStore(Path(home) / "vectors")
        await store.start()
        try:
            version = IndexVersion(
                version_name(EMBEDDING_MODEL, 256), "local", EMBEDDING_MODEL, 256, "active", 0
            )
            await store.ensure_version(version)
            texts: list[str] = []
            chunk_counts: list[int] = []

            async def one(draft) -> int:
                record = draft.record()
                cut = chunker.chunks_of(record)
                chunks = cut["chunks"]
                inputs = [embedding_input(c["title"], c["text"]) for c in chunks]
                vectors = embedder.embed(inputs)
                # The store's chunks made as the index stage makes them from its record.
                embedded = {
                    **cut,
                    "chunks": [{**c, "vector": row} for c, row in zip(chunks, vectors, strict=True)],
                }
                await store.replace_document(version.name, record["document_id"], stored_chunks(embedded))
                texts.extend(inputs)
                chunk_counts.append(len(chunks))
                return len(chunks)

            await one(docs[0])  # warm-up: the version's table, the first write
            texts.clear()
            chunk_counts.clear()
            started, cpu = time.perf_counter(), time.process_time()
            for draft in docs:
                await one(draft)
            seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        finally:
            await store.stop()
    # The embed share: the same texts, WordLlama alone, per document and in pipeline batches.
    per_doc_s = embed_time(embedder, texts, chunk_counts)
    sizes = [embed_batch] * (len(texts) // embed_batch) + (
        [len(texts) % embed_batch] if len(texts) % embed_batch else []
    )
    batched_s = embed_time(embedder, texts, sizes)
    return {
        "seconds": seconds,
        "cpu_s": cpu_s,
        "chunks": len(texts),
        "texts_chars": sum(map(len, texts)) / max(1, len(texts)),
        "per_doc_embed_s": per_doc_s,
        "batched_embed_s": batched_s,
        "chunks_per_doc": float(np.mean(chunk_counts)),
    }


def embed_time(embedder, texts: list[str], sizes: list[int], repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        at = 0
        for size in sizes:
            embedder.embed(texts[at : at + size])
            at += size
        best = min(best, time.perf_counter() - started)
    return best


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--doc-bytes", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for kb.indexed")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="podium-bench-kbhome-")
    os.environ["PODIUM_HOME"] = home  # the bench's own broker data and LanceDB
    os.environ["PODIUM_METRICS_PORT"] = "0"
    os.environ.setdefault("PODIUM_OTEL_EXPORTER", "none")
    env = dict(os.environ)

    from local_kafka import bench_project

    from agents.kb.pipeline import parse_kb  # noqa: F401  (the pipeline's tuning: embed_batch)
    from agents.offline.embedder import WordLlamaEmbedder

    docs = drafts(args.documents, args.doc_bytes, RUN)
    warmup = drafts(1, args.doc_bytes, f"{RUN}-warmup")
    try:
        async with bench_project(console) as project:
            kafka = await on_kafka(project, docs, warmup, args, env)
    finally:
        shutil.rmtree(home, ignore_errors=True)  # the broker this bench started is stopped by now
    embedder = WordLlamaEmbedder.load()
    embed_batch = 64  # KbTuning's default (pipelines.yaml kb: embed_batch)
    local = await in_process(docs, embedder, embed_batch)
    n, size = len(docs), float(np.mean([len(d.content) for d in docs]))

    table = Table(
        title=f"kb ingestion, {n:,} Markdown documents of {size:,.0f} bytes, {local['chunks_per_doc']:.1f} "
        f"chunks each ({local['texts_chars']:.0f} chars); load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    for column in ("path", "docs/s", "chunks/s", "x in process", "embed share", "CPU/doc"):
        table.add_column(column, justify="left" if column == "path" else "right")
    k_rate, l_rate = kafka["indexed"] / kafka["seconds"], n / local["seconds"]
    table.add_row(
        "in process: chunk, WordLlama, LanceDB in one loop",
        f"{l_rate:,.0f}",
        f"{local['chunks'] / local['seconds']:,.0f}",
        "1.00",
        f"{local['per_doc_embed_s'] / local['seconds']:.0%}",
        f"{local['cpu_s'] / n * 1e3:.1f} ms",
    )
    table.add_row(
        "Kafka: podium run kb, own process",
        f"{k_rate:,.0f}",
        f"{kafka['chunks'] / kafka['seconds']:,.0f}",
        f"{k_rate / l_rate:.2f}",
        f"{local['batched_embed_s'] / kafka['seconds']:.0%}"
        f"-{local['per_doc_embed_s'] / kafka['seconds']:.0%}",
        f"{kafka['cpu_s'] / n * 1e3:.1f} ms",
    )
    chunks = local["chunks"]
    table.add_row(
        f"WordLlama alone, a document a call ({local['chunks_per_doc']:.1f} texts)",
        "",
        f"{chunks / local['per_doc_embed_s']:,.0f}",
        "",
        "",
        "",
    )
    table.add_row(
        f"WordLlama alone, {embed_batch} texts a call (embed_batch)",
        "",
        f"{chunks / local['batched_embed_s']:,.0f}",
        "",
        "",
        "",
    )
    console.print(table)
    if kafka["dead"]:
        console.print(
            f"[red]{kafka['dead']} of {n} documents were dead-lettered on Kafka (the kb.*.dlq "
            f"topics say why); the Kafka row counts the {kafka['indexed']} indexed[/red]"
        )
    console.print(
        "[dim]embed share: the time WordLlama alone takes for the same chunks over the path's time "
        "(Kafka: embed_batch a call .. a document a call, as the batcher gathers records in flight). "
        "Kafka: docs/s from the first kb.documents record to the last kb.indexed one (record "
        "timestamps); CPU/doc from the worker process's CPU times (psutil) over that window; in "
        "process: this process's CPU time over its loop.[/dim]"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    asyncio.run(main())
