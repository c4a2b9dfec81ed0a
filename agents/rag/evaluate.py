"""Retrieval measured against a labelled question set: recall@k and MRR@k per search mode.

The set is JSON lines, one question a row::

    {"id": "q001", "question": "...", "relevant": ["docs-...", "faq-..."],
     "split": "tune" | "heldout", "style": "paraphrase" | ...}

``relevant`` lists the ids of the documents that answer the question, best first. The shipped
set (218 questions over the 80 documents of agents/data/kb) was written by hand the way users
ask: paraphrases, typos, other words than the documents', terse keywords, long tickets and
indirect descriptions of a symptom; many name a document and its FAQ twin. Parameters
(fusion constants, candidate depths) are chosen on ``tune``; ``heldout`` is what is reported,
and nothing is tuned on it.

Scoring is pure: a search's ranked ids are first reduced to document ids in order, keeping the
first occurrence (several chunks of one document count once, at the best chunk's rank), then

- recall@k: the share of a question's relevant documents found in the first ``k``;
- MRR@k: 1 / the rank of the first relevant document within the first ``k``, else 0.

:func:`evaluate` asks a search function for each question and mode and knows nothing of how the
search is done (in-process BM25 and numpy in ``bench/``, the store and the gateway in the CLI).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from streams import ConfigError

__all__ = [
    "EVAL_SET",
    "MODES",
    "SPLITS",
    "STYLES",
    "EvalQuestion",
    "EvalSetError",
    "ModeScore",
    "Report",
    "Search",
    "distinct",
    "evaluate",
    "load_questions",
    "mrr_at",
    "recall_at",
    "render",
]

EVAL_SET = Path(__file__).parents[1] / "data" / "kb" / "eval" / "retrieval.jsonl"
MODES = ("bm25", "dense", "hybrid")
SPLITS = ("tune", "heldout")
STYLES = ("paraphrase", "typo", "synonym", "terse", "long", "indirect")
RECALL_K = 5
MRR_K = 10

Search = Callable[[str, str, int], Awaitable[list[str]]]
"""``search(query, mode, k)``: document (or chunk-mapped document) ids, best first."""


class EvalSetError(ConfigError):
    """The question set is malformed: the message names the file, the line and the field."""


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    relevant: tuple[str, ...]
    split: str
    style: str


def load_questions(path: Path = EVAL_SET, known_ids: Collection[str] | None = None) -> list[EvalQuestion]:
    """Every row of the set, validated: unique ids, a known split and style, a non-empty list of
    distinct relevant ids and, when ``known_ids`` is given, each of them in the knowledge base."""
    questions: list[EvalQuestion] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalSetError(f"{where}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise EvalSetError(f"{where}: a row must be an object")
        question = _question(row, where)
        if question.id in seen:
            raise EvalSetError(f"{where}: id {question.id!r} is used twice")
        seen.add(question.id)
        if known_ids is not None:
            unknown = [d for d in question.relevant if d not in known_ids]
            if unknown:
                raise EvalSetError(f"{where}: relevant ids not in the knowledge base: {unknown}")
        questions.append(question)
    return questions


def _question(row: dict[str, object], where: str) -> EvalQuestion:
    for field in ("id", "question", "split", "style"):
        value = row.get(field)
        if not isinstance(value, str) or not value.strip():
            raise EvalSetError(f"{where}: {field!r} must be a non-empty string")
    relevant = row.get("relevant")
    if not isinstance(relevant, list) or not relevant or not all(isinstance(d, str) and d for d in relevant):
        raise EvalSetError(f"{where}: 'relevant' must be a non-empty list of document ids")
    if len(set(relevant)) != len(relevant):
        raise EvalSetError(f"{where}: 'relevant' names a document twice")
    if row["split"] not in SPLITS:
        raise EvalSetError(f"{where}: 'split' must be one of {SPLITS}, not {row['split']!r}")
    if row["style"] not in STYLES:
        raise EvalSetError(f"{where}: 'style' must be one of {STYLES}, not {row['style']!r}")
    return EvalQuestion(
        id=str(row["id"]),
        question=str(row["question"]),
        relevant=tuple(relevant),
        split=str(row["split"]),
        style=str(row["style"]),
    )


def distinct(ids: Iterable[str]) -> list[str]:
    """The ids in order, each at its first occurrence only (chunks of one document count once)."""
    return list(dict.fromkeys(ids))


def recall_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of ``relevant`` among the first ``k`` distinct ids of ``ranked``."""
    if not relevant:
        raise ValueError("recall needs at least one relevant id")
    found = set(distinct(ranked)[:k]) & set(relevant)
    return len(found) / len(set(relevant))


def mrr_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1 / the rank of the first relevant id among the first ``k`` distinct ids, else 0."""
    for rank, id_ in enumerate(distinct(ranked)[:k], start=1):
        if id_ in relevant:
            return 1.0 / rank
    return 0.0


@dataclass(frozen=True)
class ModeScore:
    mode: str
    recall_at_5: float
    mrr_at_10: float
    count: int
    missed: tuple[str, ...]  # ids of the questions with no relevant document in the first 5
    recall_by_style: dict[str, float]


@dataclass(frozen=True)
class Report:
    split: str
    scores: tuple[ModeScore, ...]

    def score(self, mode: str) -> ModeScore:
        for s in self.scores:
            if s.mode == mode:
                return s
        raise KeyError(mode)


async def evaluate(
    search: Search,
    questions: Sequence[EvalQuestion],
    modes: Sequence[str] = MODES,
    split: str = "heldout",
) -> Report:
    """Each question of ``split`` asked once per mode, in order; the means per mode."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    chosen = [q for q in questions if q.split == split]
    if not chosen:
        raise ValueError(f"no question in the {split!r} split")
    scores = []
    for mode in modes:
        recalls: list[float] = []
        reciprocal: list[float] = []
        missed: list[str] = []
        by_style: dict[str, list[float]] = defaultdict(list)
        for q in chosen:
            ranked = distinct(await search(q.question, mode, MRR_K))
            recall = recall_at(ranked, q.relevant, RECALL_K)
            recalls.append(recall)
            by_style[q.style].append(recall)
            reciprocal.append(mrr_at(ranked, q.relevant, MRR_K))
            if recall == 0.0:
                missed.append(q.id)
        scores.append(
            ModeScore(
                mode=mode,
                recall_at_5=_mean(recalls),
                mrr_at_10=_mean(reciprocal),
                count=len(chosen),
                missed=tuple(missed),
                recall_by_style={s: _mean(v) for s, v in sorted(by_style.items())},
            )
        )
    return Report(split=split, scores=tuple(scores))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def render(report: Report, title: str | None = None) -> Table:
    """One row per mode: recall@5, MRR@10, the questions asked and the ones missed (no relevant
    document in the first 5); the best figure of each column in bold."""
    table = Table(title=title or f"retrieval on the {report.split} split")
    for column in ("mode", f"recall@{RECALL_K}", f"MRR@{MRR_K}", "questions", "missed"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    best_recall = max(s.recall_at_5 for s in report.scores)
    best_mrr = max(s.mrr_at_10 for s in report.scores)
    for s in report.scores:
        recall = f"{s.recall_at_5:.3f}"
        mrr = f"{s.mrr_at_10:.3f}"
        table.add_row(
            s.mode,
            f"[bold]{recall}[/]" if s.recall_at_5 == best_recall else recall,
            f"[bold]{mrr}[/]" if s.mrr_at_10 == best_mrr else mrr,
            str(s.count),
            str(len(s.missed)),
        )
    return table
