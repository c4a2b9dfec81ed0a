"""Retrieval quality of BM25, dense and hybrid search over the shipped knowledge base, measured
in process on the labelled question set (agents/data/kb/eval/retrieval.jsonl).

    .venv/bin/python bench/retrieval_quality.py [--k 60] [--depth 40] [--weights 1,1] [--grid]

- bm25: agents/offline/retriever.py's index over the docs and the FAQ together (the passages
  both KnowledgeSources read, in one Bm25Index so their scores compare), "title. text" indexed.
- bm25-sources, for reference: what the support pipeline does today, each KnowledgeSource
  searched alone and the two lists interleaved by ``merge`` (round-robin, near duplicates out).
- dense: WordLlamaEmbedder over the same 80 passages embedded as "title. text", brute-force
  cosine in numpy (rows are unit, so a dot product).
- hybrid: reciprocal rank fusion of the two lists, each cut to ``--depth`` candidates, with the
  constant ``--k`` and the ``--weights`` (bm25, dense).

The fusion parameters were chosen with ``--grid`` on the tune split only (it never reads the
held-out questions); the run then prints recall@5 and MRR@10 per mode on both splits, and the
held-out questions each mode missed (no relevant document in the first 5), and hybrid's margin
over each mode with a paired bootstrap interval.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from agents.offline.embedder import WordLlamaEmbedder
from agents.offline.retriever import DOCS, FAQ, Bm25Index, KnowledgeSource, merge
from agents.rag.evaluate import (
    EvalQuestion,
    Report,
    distinct,
    evaluate,
    load_questions,
    mrr_at,
    recall_at,
    render,
)
from agents.rag.fusion import reciprocal_rank_fusion

# Chosen on the tune split with --grid: k 30, 60 and 100 score the same there and 60 is the
# usual constant; 40 candidates per list and more score the same, 20 a little lower; equal
# weights beat leaning either way.
K = 60
DEPTH = 40
WEIGHTS = (1.0, 1.0)
MODES = ("bm25", "bm25-sources", "dense", "hybrid")


class InProcessSearch:
    """The three modes over one corpus, in this process: ``search(query, mode, k)``."""

    def __init__(self, k: int = K, depth: int = DEPTH, weights: tuple[float, float] = WEIGHTS) -> None:
        self.passages = KnowledgeSource("docs", DOCS).passages + KnowledgeSource("faq", FAQ).passages
        self.ids = [p.id for p in self.passages]
        self.bm25 = Bm25Index(self.passages)
        self.sources = [KnowledgeSource("docs", DOCS), KnowledgeSource("faq", FAQ)]
        self.embedder = WordLlamaEmbedder.load()
        self.matrix = self.embedder.embed([f"{p.title}. {p.text}" for p in self.passages])
        self.k, self.depth, self.weights = k, depth, weights

    def lexical(self, query: str, n: int) -> list[str]:
        return [p.id for p in self.bm25.search(query, n)]

    def dense(self, query: str, n: int) -> list[str]:
        similarity = self.matrix @ self.embedder.embed([query])[0]
        return [self.ids[i] for i in np.argsort(-similarity, kind="stable")[:n]]

    async def search(self, query: str, mode: str, n: int) -> list[str]:
        if mode == "bm25":
            return self.lexical(query, n)
        if mode == "bm25-sources":
            return [p.id for p in merge([s.search_now(query, n) for s in self.sources], n)]
        if mode == "dense":
            return self.dense(query, n)
        if mode == "hybrid":
            lists = [self.lexical(query, self.depth), self.dense(query, self.depth)]
            return [id_ for id_, _ in reciprocal_rank_fusion(lists, k=self.k, weights=self.weights, limit=n)]
        raise ValueError(f"unknown mode {mode!r}")


def grid(search: InProcessSearch, questions: list[EvalQuestion], console: Console) -> None:
    """Every (k, depth, dense weight) on the tune split, best recall@5 + MRR@10 first."""
    results = []
    for k, depth, dense_weight in itertools.product(
        (1, 5, 10, 20, 30, 60, 100), (5, 10, 20, 40, 80), (0.5, 0.75, 1.0, 1.5, 2.0)
    ):
        search.k, search.depth, search.weights = k, depth, (1.0, dense_weight)
        score = asyncio.run(evaluate(search.search, questions, modes=("hybrid",), split="tune")).scores[0]
        results.append(
            (score.recall_at_5 + score.mrr_at_10, score.recall_at_5, score.mrr_at_10, k, depth, dense_weight)
        )
    table = Table(title="hybrid on the tune split, best 15 of the grid")
    for column in ("k", "depth", "dense weight", "recall@5", "MRR@10"):
        table.add_column(column, justify="right")
    for _, recall, mrr, k, depth, dense_weight in sorted(results, reverse=True)[:15]:
        table.add_row(str(k), str(depth), f"{dense_weight:g}", f"{recall:.3f}", f"{mrr:.3f}")
    console.print(table)


def missed(report: Report, questions: list[EvalQuestion], console: Console) -> None:
    text = {q.id: q.question for q in questions}
    for score in report.scores:
        if score.mode == "bm25-sources":
            continue
        console.print(f"[bold]{score.mode}[/] missed on {report.split} ({len(score.missed)}):")
        for id_ in score.missed:
            console.print(f"  {id_} {text[id_]}")


def margins(search: InProcessSearch, questions: list[EvalQuestion], console: Console) -> None:
    """Hybrid minus each other mode on the held-out questions, with a 95% paired bootstrap
    interval (5,000 resamples of the questions): how much of the margin 132 questions can show."""
    held = [q for q in questions if q.split == "heldout"]
    per: dict[str, list[tuple[float, float]]] = {}
    for mode in MODES:
        per[mode] = []
        for q in held:
            ranked = distinct(asyncio.run(search.search(q.question, mode, 10)))
            per[mode].append((recall_at(ranked, q.relevant, 5), mrr_at(ranked, q.relevant, 10)))
    rng = random.Random(13)
    samples = [[rng.randrange(len(held)) for _ in held] for _ in range(5000)]
    table = Table(title="hybrid minus each mode, held out (95% paired bootstrap interval)")
    for column in ("mode", "recall@5", "MRR@10"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode in MODES[:-1]:
        cells = []
        for metric in (0, 1):
            diff = [h[metric] - o[metric] for h, o in zip(per["hybrid"], per[mode], strict=True)]
            means = sorted(sum(diff[i] for i in sample) / len(sample) for sample in samples)
            mean = sum(diff) / len(diff)
            cells.append(f"{mean:+.3f} [{means[125]:+.3f}, {means[4874]:+.3f}]")
        table.add_row(mode, *cells)
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=K)
    parser.add_argument("--depth", type=int, default=DEPTH)
    parser.add_argument("--weights", default=",".join(f"{w:g}" for w in WEIGHTS), help="bm25,dense")
    parser.add_argument("--grid", action="store_true", help="search the fusion parameters on tune only")
    args = parser.parse_args()
    console = Console()
    started = time.perf_counter()
    bm25_weight, dense_weight = (float(w) for w in args.weights.split(","))
    search = InProcessSearch(args.k, args.depth, (bm25_weight, dense_weight))
    questions = load_questions(known_ids=set(search.ids))
    console.print(
        f"{len(search.passages)} passages, {len(questions)} questions "
        f"({sum(q.split == 'tune' for q in questions)} tune, {sum(q.split == 'heldout' for q in questions)} "
        f"held out); indexed in {time.perf_counter() - started:.2f} s"
    )
    if args.grid:
        grid(search, questions, console)
        return
    console.print(
        f"hybrid = RRF(bm25 top {search.depth}, dense top {search.depth}), k={search.k}, "
        f"weights bm25 {bm25_weight:g} / dense {dense_weight:g}"
    )
    for split in ("tune", "heldout"):
        report = asyncio.run(evaluate(search.search, questions, modes=MODES, split=split))
        console.print(render(report))
        if split == "heldout":
            styles = Table(title="recall@5 per style, held out")
            styles.add_column("mode")
            for style in report.scores[0].recall_by_style:
                styles.add_column(style, justify="right")
            for score in report.scores:
                styles.add_row(score.mode, *(f"{v:.2f}" for v in score.recall_by_style.values()))
            console.print(styles)
            missed(report, questions, console)
    margins(search, questions, console)


if __name__ == "__main__":
    main()
