"""The semantic cache on the shipped pairs, and what a lookup costs.

    .venv/bin/python bench/semantic_cache.py [--threshold 0.80]    (make bench-semcache)

1. quality, per split of ``agents/data/gateway/semantic_pairs.jsonl`` (request a answered and
   cached, request b looked up in the same scope): the hit rate on paraphrases (should hit) and
   the false-hit rate on near misses (must not), for similarity alone at a few thresholds and
   for the guarded cache (similarity and :func:`~agents.gateway.semantic_guard.disagreement`),
   and for the guard's option of letting content words agree by their word vectors.
   The threshold is chosen on ``tune`` only; ``heldout`` says how that choice generalises.
2. latency of ``SemanticCache.lookup`` (WordLlama embedding of the request + the search) and of
   the search alone, at 1,000 and 10,000 entries in one scope (the entries: the pairs' texts with
   account numbers appended, so each is distinct and the guard runs on real candidates).

The embedding model is the offline one (WordLlama l2_supercat, 256 dimensions); no Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agents.gateway.semantic_cache import SemanticCache, scope_of
from agents.gateway.semantic_guard import disagreement
from agents.offline.embedder import EMBEDDING_MODEL, WordLlamaEmbedder

PAIRS = Path(__file__).parents[1] / "agents" / "data" / "gateway" / "semantic_pairs.jsonl"
BASELINE = (0.70, 0.80, 0.85, 0.90, 0.95)
GUARDED = (0.50, 0.60, 0.70, 0.80, 0.90)
WORDS = (0.45, 0.55, 0.65)  # word-similarity thresholds of the guard's option


def quality(embedder: WordLlamaEmbedder, threshold: float) -> None:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    a = embedder.embed([r["a"] for r in rows])
    b = embedder.embed([r["b"] for r in rows])
    similarity = np.sum(a * b, axis=1)
    agree = np.array([disagreement(r["a"], r["b"]) is None for r in rows])
    # The guard's option: content words also agree when their WordLlama vectors (a word embedded
    # alone: the mean of its tokens) are this close. Measured here, not used by the cache.
    words: dict[str, npt.NDArray[np.float32]] = {}

    def similar(x: str, y: str) -> float:
        for w in (x, y):
            if w not in words:
                words[w] = embedder.embed([w])[0]
        return float(words[x] @ words[y])

    agree_words = {
        wt: np.array([disagreement(r["a"], r["b"], similar, wt) is None for r in rows]) for wt in WORDS
    }
    kinds = np.array([r["kind"] for r in rows])
    splits = np.array([r["split"] for r in rows])
    print(f"pairs: {PAIRS.name}, embedding {EMBEDDING_MODEL} (256 dimensions)")
    print(f"{'split':<8} {'cache':<32} {'paraphrase hits':>16} {'near-miss false hits':>21}")
    for split in ("tune", "heldout"):
        para = (splits == split) & (kinds == "paraphrase")
        near = (splits == split) & (kinds == "near_miss")
        cases = [(f"similarity >= {t:.2f}", similarity >= t) for t in BASELINE]
        cases += [
            (f"guarded, similarity >= {t:.2f}", (similarity >= t) & agree)
            for t in sorted({threshold, *GUARDED})
        ]
        cases += [
            (f"guarded+words {wt:.2f}, >= {threshold:.2f}", (similarity >= threshold) & agreed)
            for wt, agreed in agree_words.items()
        ]
        for label, hit in cases:
            p, n = int(hit[para].sum()), int(hit[near].sum())
            print(
                f"{split:<8} {label:<32} {p:>3}/{para.sum():<3} {p / para.sum():6.1%}"
                f" {n:>7}/{near.sum():<3} {n / near.sum():6.1%}"
            )
    near_all = kinds == "near_miss"
    passed = [rows[i] for i in np.flatnonzero(near_all & agree & (similarity >= threshold))]
    for row in passed:
        print(f"  false hit at {threshold:.2f}: {row['a']!r} / {row['b']!r} ({row['split']})")


async def latency(embedder: WordLlamaEmbedder, sizes: Sequence[int], lookups: int) -> None:
    async def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return embedder.embed(texts)

    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    texts = [t for r in rows for t in (r["a"], r["b"])]
    scope = scope_of("bench", "billing")
    rng = random.Random(13)
    print(
        f"\n{'entries':>8} {'lookup p50':>11} {'p99':>8} {'search p50':>11} {'p99':>8}"
        f"  (ms, {lookups} lookups; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    for size in sizes:
        cache = SemanticCache(embed, embedding_model=EMBEDDING_MODEL, dimensions=256, max_per_scope=size)
        stored = [f"{texts[i % len(texts)]} (account A-{i})" for i in range(size)]
        vectors = embedder.embed(stored)
        for text, vector in zip(stored, vectors, strict=True):
            await cache.remember(text, scope, "answer", "m", vector=vector)
        asked = [f"{rng.choice(texts)} (account A-{rng.randrange(size)})" for _ in range(lookups)]
        whole, search = [], []
        for text in asked:
            started = time.perf_counter()
            await cache.lookup(text, scope)
            whole.append((time.perf_counter() - started) * 1000)
        for text, vector in zip(asked, embedder.embed(asked), strict=True):
            started = time.perf_counter()
            cache.search(text, vector, scope)
            search.append((time.perf_counter() - started) * 1000)

        def p(values: list[float], q: int) -> float:
            return statistics.quantiles(values, n=100)[q - 1]

        print(
            f"{size:>8} {p(whole, 50):>11.3f} {p(whole, 99):>8.3f}"
            f" {p(search, 50):>11.3f} {p(search, 99):>8.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threshold", type=float, default=0.80, help="the guarded cache's (chosen on tune)")
    parser.add_argument("--lookups", type=int, default=1000)
    args = parser.parse_args()
    embedder = WordLlamaEmbedder.load()
    quality(embedder, args.threshold)
    asyncio.run(latency(embedder, (1_000, 10_000), args.lookups))


if __name__ == "__main__":
    main()
