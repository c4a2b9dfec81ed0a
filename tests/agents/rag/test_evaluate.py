"""Scoring retrieval: recall@k and MRR@k over distinct document ids, the loader's checks, and the
report of a deterministic search function."""

import json
from pathlib import Path

import pytest
from rich.console import Console

from agents.rag.evaluate import (
    EvalQuestion,
    EvalSetError,
    distinct,
    evaluate,
    load_questions,
    mrr_at,
    recall_at,
    render,
)


def test_distinct_keeps_the_first_occurrence() -> None:
    assert distinct(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_recall_counts_the_share_of_relevant_documents_in_the_first_k() -> None:
    assert recall_at(["x", "a", "y", "b"], ["a", "b"], 2) == 0.5
    assert recall_at(["x", "a", "y", "b"], ["a", "b"], 4) == 1.0
    assert recall_at(["x", "y"], ["a"], 5) == 0.0
    # A document's second chunk does not push another document out of the first k.
    assert recall_at(["x", "x", "x", "a"], ["a"], 2) == 1.0
    with pytest.raises(ValueError):
        recall_at(["a"], [], 5)


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_document() -> None:
    assert mrr_at(["a", "b"], ["a"], 10) == 1.0
    assert mrr_at(["x", "x", "y", "b", "a"], ["a", "b"], 10) == pytest.approx(1 / 3)
    assert mrr_at(["x", "y", "a"], ["a"], 2) == 0.0
    assert mrr_at([], ["a"], 10) == 0.0


def row(id: str, **overrides: object) -> dict[str, object]:
    return {
        "id": id,
        "question": f"question {id}",
        "relevant": ["d1"],
        "split": "tune",
        "style": "terse",
    } | overrides


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    return path


def test_load_reads_the_rows_in_order(tmp_path: Path) -> None:
    path = write(tmp_path / "set.jsonl", [row("q1"), row("q2", relevant=["d2", "d1"], split="heldout")])
    assert load_questions(path, known_ids={"d1", "d2"}) == [
        EvalQuestion("q1", "question q1", ("d1",), "tune", "terse"),
        EvalQuestion("q2", "question q2", ("d2", "d1"), "heldout", "terse"),
    ]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([row("q1"), row("q1")], "'q1' is used twice"),
        ([row("q1", relevant=["nope"])], "not in the knowledge base: \\['nope'\\]"),
        ([row("q1", relevant=[])], "'relevant' must be a non-empty list"),
        ([row("q1", relevant=["d1", "d1"])], "names a document twice"),
        ([row("q1", split="train")], "'split' must be one of"),
        ([row("q1", style="poem")], "'style' must be one of"),
        ([row("q1", question="  ")], "'question' must be a non-empty string"),
        ([{"id": "q1"}], "'question' must be"),
    ],
)
def test_load_refuses_a_malformed_set_naming_the_line(
    tmp_path: Path, rows: list[dict[str, object]], message: str
) -> None:
    path = write(tmp_path / "set.jsonl", rows)
    with pytest.raises(EvalSetError, match=message) as caught:
        load_questions(path, known_ids={"d1"})
    assert f"{path}:{len(rows)}" in str(caught.value)


def test_load_refuses_a_line_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text("{not json\n")
    with pytest.raises(EvalSetError, match=":1: not JSON"):
        load_questions(path)


QUESTIONS = [
    EvalQuestion("q1", "reset password", ("pw", "pw-faq"), "heldout", "terse"),
    EvalQuestion("q2", "embed a dashboard", ("embed",), "heldout", "long"),
    EvalQuestion("q3", "tuning only", ("pw",), "tune", "typo"),
]

# What each mode returns per question: chunk ids already mapped to documents, some repeated.
ANSWERS = {
    "bm25": {"reset password": ["pw", "pw", "x"], "embed a dashboard": ["a", "b", "c", "d", "e", "embed"]},
    "dense": {"reset password": ["x", "pw-faq"], "embed a dashboard": ["x", "embed"]},
    "hybrid": {"reset password": ["pw", "pw-faq"], "embed a dashboard": ["embed"]},
}


async def fixed_search(query: str, mode: str, k: int) -> list[str]:
    assert query != "tuning only", "a question of the other split was asked"
    return ANSWERS[mode][query][:k]


async def test_evaluate_scores_each_mode_on_one_split() -> None:
    report = await evaluate(fixed_search, QUESTIONS)
    assert report.split == "heldout"
    bm25, dense, hybrid = (report.score(m) for m in ("bm25", "dense", "hybrid"))
    # bm25: q1 finds one of two relevant at rank 1; q2's document is 6th, past recall@5, in MRR@10.
    assert bm25.recall_at_5 == pytest.approx((0.5 + 0.0) / 2)
    assert bm25.mrr_at_10 == pytest.approx((1.0 + 1 / 6) / 2)
    assert bm25.missed == ("q2",)
    assert bm25.recall_by_style == {"long": 0.0, "terse": 0.5}
    assert dense.recall_at_5 == pytest.approx(0.75) and dense.mrr_at_10 == pytest.approx(0.5)
    assert hybrid.recall_at_5 == 1.0 and hybrid.mrr_at_10 == 1.0 and hybrid.missed == ()
    assert {s.count for s in report.scores} == {2}
    with pytest.raises(KeyError):
        report.score("rerank")


async def test_evaluate_asks_only_the_modes_given_and_refuses_an_empty_split() -> None:
    report = await evaluate(fixed_search, QUESTIONS, modes=("dense",))
    assert [s.mode for s in report.scores] == ["dense"]
    with pytest.raises(ValueError, match="no question in the 'tune' split"):
        await evaluate(fixed_search, QUESTIONS[:2], split="tune")
    with pytest.raises(ValueError, match="split must be one of"):
        await evaluate(fixed_search, QUESTIONS, split="train")


async def test_the_table_shows_every_mode_with_its_figures() -> None:
    console = Console(width=100, record=True)
    console.print(render(await evaluate(fixed_search, QUESTIONS)))
    text = console.export_text()
    assert "heldout" in text
    for line in ("bm25 ", "0.250", "0.583", "hybrid", "1.000"):
        assert line in text
