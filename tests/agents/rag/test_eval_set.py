"""The shipped retrieval question set (agents/data/kb/eval/retrieval.jsonl) is well formed and
honest: every relevant id is a document of the shipped knowledge base, both splits are there, and
no question is copied out of a document."""

import json
import re
from collections import Counter

from agents.offline.retriever import DOCS, FAQ
from agents.rag.evaluate import EVAL_SET, SPLITS, STYLES, load_questions


def documents() -> dict[str, str]:
    """Document id -> every text field of the row, lower case, spaces collapsed."""
    found = {}
    for path in (DOCS, FAQ):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                found[row["id"]] = normalise(" ".join(str(v) for k, v in row.items() if k != "id"))
    return found


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def test_the_set_loads_against_the_knowledge_base() -> None:
    docs = documents()
    questions = load_questions(EVAL_SET, known_ids=docs.keys())
    assert len(questions) >= 150
    assert len({q.id for q in questions}) == len(questions)
    splits = Counter(q.split for q in questions)
    assert set(splits) == set(SPLITS)
    assert 0.5 <= splits["heldout"] / len(questions) <= 0.7
    assert set(Counter(q.style for q in questions)) == set(STYLES)


def test_every_document_is_the_answer_to_some_question() -> None:
    docs = documents()
    answered = {d for q in load_questions(EVAL_SET) for d in q.relevant}
    assert answered == set(docs)


def test_no_question_is_copied_from_a_document() -> None:
    texts = documents().values()
    copied = [q.id for q in load_questions(EVAL_SET) if any(normalise(q.question) in t for t in texts)]
    assert copied == []
    questions = [normalise(q.question) for q in load_questions(EVAL_SET)]
    assert len(set(questions)) == len(questions)


def test_the_demo_question_that_bm25_misses_is_held_out() -> None:
    (demo,) = [q for q in load_questions(EVAL_SET) if q.question.startswith("We'd like to embed one of")]
    assert demo.split == "heldout"
    assert demo.relevant[0] == "docs-embedding-dashboards"
