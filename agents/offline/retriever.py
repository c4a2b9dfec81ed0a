"""The offline retriever: BM25 over passages, several sources merged.

:class:`Bm25Index` is the one lexical index of the project: bm25s over passages' title and
text (milliseconds for a few hundred passages) with English stop words and a Snowball stemmer,
so "billed" finds "billing". The hybrid retriever (:mod:`agents.rag.retriever`) builds one over
an index version's chunks; a :class:`KnowledgeSource` is one over a JSON-lines file shipped in
the repo (the content pipeline and the billing agent's docs search read the knowledge base
that way). Another retriever (a vector store, a search API) fits the :class:`Retriever` protocol.

:func:`merge` is the pure part: interleave several sources' ranked lists, drop duplicates (same
passage id, or near-identical text from two sources) and keep the best ``k``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import bm25s
import Stemmer

__all__ = ["DOCS", "FAQ", "Bm25Index", "KnowledgeSource", "Passage", "Retriever", "merge"]

KB = Path(__file__).parents[1] / "data" / "kb"
DOCS = KB / "docs.jsonl"
FAQ = KB / "faq.jsonl"


@dataclass(frozen=True)
class Passage:
    id: str
    source: str
    title: str
    url: str
    text: str
    score: float


class Retriever(Protocol):
    name: str

    async def search(self, query: str, k: int) -> list[Passage]: ...


# bm25s logs every index build at DEBUG on a logger it configures itself.
logging.getLogger("bm25s").setLevel(logging.WARNING)

_STEMMER = Stemmer.Stemmer("english")
_WORD = re.compile(r"[a-z0-9]+")


class Bm25Index:
    """Passages indexed once; :meth:`search` gives the best ``k`` with their BM25 scores."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        self.passages = list(passages)
        self._index = bm25s.BM25()
        if self.passages:  # bm25s cannot index nothing; an empty index finds nothing
            corpus = [f"{p.title}. {p.text}" for p in self.passages]
            self._index.index(_tokenize(corpus), show_progress=False)

    def search(self, query: str, k: int) -> list[Passage]:
        # In process and fast: no thread (PyStemmer's stemmer is not thread-safe either).
        tokens = _tokenize([query])
        if not tokens.vocab or not self.passages:  # nothing but stop words: no evidence either way
            return []
        k = min(k, len(self.passages))
        ids, scores = self._index.retrieve(tokens, k=k, show_progress=False)
        found = []
        for i, score in zip(ids[0], scores[0], strict=True):
            if score > 0:
                p = self.passages[int(i)]
                found.append(Passage(p.id, p.source, p.title, p.url, p.text, round(float(score), 4)))
        return found


class KnowledgeSource:
    """One collection of passages from a JSON-lines file: docs rows have ``title`` and ``text``,
    FAQ rows ``question`` and ``answer`` (the question is indexed with the answer)."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        passages: list[Passage] = []
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            title = row.get("title") or row["question"]
            text = row.get("text") or row["answer"]
            passages.append(Passage(row["id"], name, title, row["url"], text, 0.0))
        self._index = Bm25Index(passages)
        self.passages = self._index.passages

    async def search(self, query: str, k: int) -> list[Passage]:
        return self.search_now(query, k)

    def search_now(self, query: str, k: int) -> list[Passage]:
        return self._index.search(query, k)


def _tokenize(texts: list[str]) -> bm25s.tokenization.Tokenized:
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, show_progress=False)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _near_duplicate(a: Passage, b: Passage, threshold: float = 0.8) -> bool:
    wa, wb = _words(a.text), _words(b.text)
    if not wa or not wb:
        return False
    return len(wa & wb) / len(wa | wb) >= threshold


def merge(results: Sequence[Sequence[Passage]], k: int) -> list[Passage]:
    """Round-robin over the sources' ranked lists (each source's best first, since BM25 scores
    of different collections are not comparable), skipping duplicates, up to ``k`` passages."""
    merged: list[Passage] = []
    depth = max((len(r) for r in results), default=0)
    for rank in range(depth):
        for ranked in results:
            if rank >= len(ranked) or len(merged) >= k:
                continue
            candidate = ranked[rank]
            if any(candidate.id == p.id or _near_duplicate(candidate, p) for p in merged):
                continue
            merged.append(candidate)
    return merged
