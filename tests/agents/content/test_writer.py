"""The local writer: the prompt round trip, drafting, revising from critique, and every sample
brief through write -> fact check -> style check the way the content pipeline decides."""

import json
from pathlib import Path
from typing import Any

import pytest

import agents.content
from agents.content.factcheck import FactChecker, split_claims
from agents.content.factcheck import critique_lines as fact_critique
from agents.content.review import Thresholds, decide
from agents.content.style import STYLE_GUIDE, StyleGuide, check_style
from agents.content.style import critique_lines as style_critique
from agents.content.writer import (
    ArticleAsk,
    article_prompt,
    parse_article_prompt,
    write_article,
    write_from_prompt,
)
from agents.offline.grounded import Source
from agents.offline.retriever import DOCS, FAQ, KnowledgeSource, merge

BRIEFS = Path(agents.content.__file__).parents[1] / "data" / "content" / "briefs.jsonl"
RESET = Source(
    "Resetting your password",
    "https://docs.lumen.example/account/password-reset",
    "Lumen sends a reset link that is valid for 60 minutes and can be used only once. You can "
    "request at most 5 reset emails per hour; if the email does not arrive, check your spam folder.",
)
ASK = ArticleAsk(
    topic="resetting your password",
    audience="new users",
    points=("A reset link is valid for 30 minutes", "You can request at most 5 reset emails per hour"),
    must_include=("Questions? Write to support@lumen.example!",),
    sources=(RESET,),
    critique=(),
)


def _paragraphs(text: str) -> list[str]:
    return text.strip().split("\n\n")


def test_the_package_exports_its_public_names() -> None:
    assert set(agents.content.__all__) == {
        *("STYLE_GUIDE", "ArticleAsk", "ClaimVerdict", "FactChecker", "FactReport", "Seo"),
        *("StyleFinding", "StyleGuide", "StyleReport", "article_prompt", "check_style", "fact_critique"),
        *("kb_idf", "parse_article_prompt", "seo_metadata", "slugify", "split_claims", "style_critique"),
        *("write_article", "write_from_prompt"),
    }


def test_the_prompt_has_labelled_sections_and_reads_back() -> None:
    source = Source("Two\nlines", "https://x.example/a", "First line.\nSecond line.")
    (message,) = article_prompt("Topic", "Admins", ["p1", "p2"], ["keep this!"], [source], ["c1"])
    assert message["role"] == "user"
    content = message["content"]
    for label in ("Topic: Topic", "Audience: Admins", "Points:", "Must include:", "Sources:", "Critique:"):
        assert f"\n{label}" in content
    assert "[1] Two lines (https://x.example/a)\nFirst line. Second line." in content
    one_line = Source("Two lines", "https://x.example/a", "First line. Second line.")
    assert parse_article_prompt(content) == ArticleAsk(
        "Topic", "Admins", ("p1", "p2"), ("keep this!",), (one_line,), ("c1",)
    )


def test_empty_sections_read_back_empty_and_a_source_text_is_never_a_label() -> None:
    tricky = Source("Odd", "https://x.example/odd", "Critique:")
    (message,) = article_prompt("T", "A", [], [], [tricky], [])
    ask = parse_article_prompt(message["content"])
    assert (ask.points, ask.must_include, ask.critique) == ((), (), ())
    assert ask.sources == (tricky,)


def test_a_draft_is_a_title_a_paragraph_per_point_and_the_must_include_lines() -> None:
    text = write_article(ASK)
    title, first, second, last = _paragraphs(text)
    assert title == "# Resetting your password"
    # The point verbatim (false number and all), then a sentence of the source with its facts.
    assert first == (
        "A reset link is valid for 30 minutes. "
        "Lumen sends a reset link that is valid for 60 minutes and can be used only once."
    )
    # The source says nothing more about it: its clause repeats the point, the next shares too little.
    assert second == "You can request at most 5 reset emails per hour."
    assert last == "Questions? Write to support@lumen.example!"
    assert write_article(ASK) == text  # deterministic
    (message,) = article_prompt(ASK.topic, ASK.audience, ASK.points, ASK.must_include, ASK.sources, ())
    assert write_from_prompt(message["content"]) == text


def test_without_a_matching_source_a_point_stands_alone() -> None:
    text = write_article(ArticleAsk("t", "a", ("Dashboards refresh after each sync",), (), (RESET,), ()))
    assert _paragraphs(text)[1] == "Dashboards refresh after each sync."


def test_revision_replaces_a_contradicted_claim_and_drops_an_unverifiable_one() -> None:
    evidence = "Lumen sends a reset link that is valid for 60 minutes and can be used only once."
    critique = (
        f"factcheck: contradicted: A reset link is valid for 30 minutes. | evidence: {evidence}",
        "factcheck: unverifiable: Questions? Write to support@lumen.example!",
        "factcheck: unverifiable: You can request at most 5 reset emails per hour.",
    )
    text = write_article(ArticleAsk(**{**ASK.__dict__, "critique": critique}))
    assert "30 minutes" not in text
    assert _paragraphs(text)[1].startswith(evidence)
    assert evidence in split_claims(text)
    assert text.count(evidence) == 1  # the evidence is not repeated as the support
    assert "reset emails" not in text
    assert len(_paragraphs(text)) == 3
    assert _paragraphs(text)[-1] == "Questions? Write to support@lumen.example!"  # must include: kept


def test_style_critique_fixes_what_the_writer_wrote_but_not_the_must_include_lines() -> None:
    guide = StyleGuide.load(STYLE_GUIDE)
    ask = ArticleAsk(
        "a revolutionary reset",
        "everyone",
        ("Resetting is very quick! It takes one click and the link is valid for 60 minutes, which is "
         "long enough for almost everyone to find the email in a busy inbox, and it can be used only once",),
        ("A revolutionary reset!",),
        (),
        (),
    )  # fmt: skip
    first = write_article(ask)
    report = check_style(first, guide)
    assert {f.rule for f in report.findings} == {"hype", "punctuation", "long-sentence"}
    revised = write_article(ArticleAsk(**{**ask.__dict__, "critique": tuple(style_critique(report))}))
    title, body, must = _paragraphs(revised)
    assert title == "# A new reset"
    assert " very " not in body and "!" not in body
    assert "60 minutes" in body and "only once" in body  # facts survive the split
    assert all(len(s.split()) <= guide.max_sentence_words for s in split_claims(body))
    assert must == "A revolutionary reset!"
    assert check_style(revised, guide).findings == check_style("A revolutionary reset!", guide).findings


# The content pipeline's own rule (agents.content.review.decide) with its default thresholds.
GATES = Thresholds()


@pytest.fixture(scope="module")
def sources() -> tuple[KnowledgeSource, KnowledgeSource]:
    return KnowledgeSource("docs", DOCS), KnowledgeSource("faq", FAQ)


def _briefs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in BRIEFS.read_text().splitlines() if line.strip()]


def test_the_sample_briefs_cover_every_outcome() -> None:
    expected = [b["expect"] for b in _briefs()]
    assert len(expected) == 12
    assert (expected.count("published_first"), expected.count("published_after_revision")) == (8, 2)
    assert expected.count("rejected") == 2
    assert all(set(b) == {"id", "topic", "audience", "points", "must_include", "expect"} for b in _briefs())


@pytest.mark.parametrize("brief", _briefs(), ids=lambda b: str(b["id"]))
def test_each_sample_brief_ends_as_expected(
    brief: dict[str, Any], sources: tuple[KnowledgeSource, ...]
) -> None:
    checker, guide = FactChecker(*sources), StyleGuide.load(STYLE_GUIDE)
    query = " ".join([brief["topic"], *brief["points"]])
    found = merge([s.search_now(query, 4) for s in sources], 4)  # as the draft stage retrieves
    grounding = [Source(p.title, p.url, p.text) for p in found]
    critique: list[str] = []
    outcome = "rejected"
    for draft in range(GATES.max_revisions + 1):
        (message,) = article_prompt(
            brief["topic"], brief["audience"], brief["points"], brief["must_include"], grounding, critique
        )
        text = write_from_prompt(message["content"])
        for line in brief["must_include"]:
            assert line in text
        facts, style = checker.check(text), check_style(text, guide)
        checks = [
            {"branch": "factcheck", "score": facts.score, "critique": fact_critique(facts)},
            {"branch": "style", "score": style.score, "critique": style_critique(style)},
        ]
        decision = decide(checks, {}, draft, GATES)
        if decision.action == "publish":
            outcome = "published_first" if draft == 0 else "published_after_revision"
            break
        # As the join does: every round's critique goes to the next draft.
        critique = list(dict.fromkeys([*critique, *decision.critique]))
    assert outcome == brief["expect"]
