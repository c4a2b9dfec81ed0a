"""Texts per second of the local embedding model (WordLlama, ``local-wordllama``), batched against
one text at a time, and through the model gateway, in one run.

    .venv/bin/python bench/embeddings.py [--texts 4096] [--batches 1,8,32,128,512] [--repeat 3]

The texts are the knowledge base's sentences and FAQ entries (agents/data/kb), cycled to
``--texts`` with a number appended so no two are equal. Each figure is the best of ``--repeat``
runs over all the texts, after one warm-up (the weights are loaded before any timing); the
model and the gateway take turns batch size by batch size, so a machine whose load drifts
during the run slows both alike. The load average is printed with the table: quote it.

1. the model alone (``WordLlamaEmbedder.embed``) at each batch size; the one-text-at-a-time
   baseline is batch size 1 of the same run, and every ratio is against it;
2. the same batches through ``ModelGateway.embed`` on the local provider (one route, no faults,
   spans off): the difference to (1) at the same batch size is the gateway's own cost per call
   (route loop, attempt, breaker, cost, unit rows; a thread hop for batches above
   ``INLINE_EMBED_CHARS``);
3. what a batch holds the event loop for when embedded inline, against a hop to a thread
   (``asyncio.to_thread`` of a call that does nothing): where the inline threshold comes from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agents.gateway.gateway import CallPolicy, ModelGateway, Route
from agents.gateway.pricing import Price, PriceTable
from agents.gateway.providers.local import INLINE_EMBED_CHARS, LocalProvider
from agents.offline.embedder import EMBEDDING_MODEL, WordLlamaEmbedder

KB = Path(__file__).resolve().parents[1] / "agents" / "data" / "kb"


def kb_texts(count: int) -> list[str]:
    pieces: list[str] = []
    for line in (KB / "docs.jsonl").read_text().splitlines():
        pieces += [s for s in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"]) if s]
    for line in (KB / "faq.jsonl").read_text().splitlines():
        row = json.loads(line)
        pieces += [row["question"], row["answer"]]
    return [f"{pieces[i % len(pieces)]} ({i})" for i in range(count)]


def model_alone(embedder: WordLlamaEmbedder, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        embedder.embed(texts[i : i + batch])
    return time.perf_counter() - started


async def through_gateway(gateway: ModelGateway, policy: CallPolicy, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        await gateway.embed(texts[i : i + batch], policy)
    return time.perf_counter() - started


async def thread_hop_s(calls: int = 2000) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await asyncio.to_thread(lambda: None)
    return (time.perf_counter() - started) / calls


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=4096)
    parser.add_argument("--batches", default="1,8,32,128,512")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    texts = kb_texts(args.texts)
    chars = sum(map(len, texts)) / len(texts)
    embedder = WordLlamaEmbedder.load()
    embedder.embed(texts[:512])  # warm-up
    gateway = ModelGateway(
        {"local": LocalProvider(models={EMBEDDING_MODEL: embedder})},
        PriceTable({EMBEDDING_MODEL: Price(0, 0)}),
    )
    policy = CallPolicy((Route("local", EMBEDDING_MODEL),), operation="embeddings")
    await gateway.embed(texts[:512], policy)  # warm-up

    alone = dict.fromkeys(batches, float("inf"))
    gated = dict.fromkeys(batches, float("inf"))
    for _ in range(args.repeat):
        for b in batches:
            alone[b] = min(alone[b], model_alone(embedder, texts, b))
            gated[b] = min(gated[b], await through_gateway(gateway, policy, texts, b))
    baseline = len(texts) / alone[1] if 1 in alone else None

    console = Console()
    table = Table(
        "batch",
        "model texts/s",
        "x one at a time",
        "gateway texts/s",
        "x one at a time",
        "gateway cost/call",
        title=f"local-wordllama, {len(texts)} texts of {chars:.0f} chars on average, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
    )
    for b in batches:
        model_rate, gateway_rate = len(texts) / alone[b], len(texts) / gated[b]
        calls = -(-len(texts) // b)
        table.add_row(
            str(b),
            f"{model_rate:,.0f}",
            f"{model_rate / baseline:.1f}" if baseline else "-",
            f"{gateway_rate:,.0f}",
            f"{gateway_rate / baseline:.1f}" if baseline else "-",
            f"{(gated[b] - alone[b]) / calls * 1e6:,.0f} us",
        )
    console.print(table)

    hop = await thread_hop_s()
    per_char = min(alone[b] / (len(texts) * chars) for b in batches if b >= 32)
    console.print(
        f"batched, the model takes {per_char * 1e9:.0f} ns a character ({1 / per_char / 1e6:.1f} MB/s); "
        f"a hop to a thread costs {hop * 1e6:.0f} us, 10% of a batch of {10 * hop / per_char:,.0f} "
        f"characters; a batch of INLINE_EMBED_CHARS={INLINE_EMBED_CHARS} characters holds the loop "
        f"about {INLINE_EMBED_CHARS * per_char * 1e3:.2f} ms inline"
    )
    await gateway.aclose()


if __name__ == "__main__":
    asyncio.run(main())
