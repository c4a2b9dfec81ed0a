"""Lumen's style guide: loading, each rule, the score and the critique lines."""

from pathlib import Path

import pytest

from agents.content.style import PENALTIES, STYLE_GUIDE, StyleGuide, check_style, critique_lines


@pytest.fixture(scope="module")
def guide() -> StyleGuide:
    return StyleGuide.load(STYLE_GUIDE)


def test_the_shipped_guide_loads(guide: StyleGuide) -> None:
    assert guide.max_sentence_words == 28
    assert guide.hype["revolutionary"] == "new"
    assert guide.hype["very"] == ""
    assert guide.punctuation == {"!": "."}
    assert {"API", "SSO", "2FA"} <= guide.acronyms


def test_clean_text_scores_full_marks(guide: StyleGuide) -> None:
    report = check_style("# API rate limits\n\nYou can make 600 requests per minute with one API key.", guide)
    assert report.score == 1.0
    assert report.findings == ()


def test_every_hype_word_is_found(guide: StyleGuide) -> None:
    for word, replacement in guide.hype.items():
        report = check_style(f"Our {word} dashboards load fast.", guide)
        assert [(f.rule, f.excerpt.lower()) for f in report.findings] == [("hype", word)], word
        assert report.findings[0].advice.endswith(f'with "{replacement}"')
        assert report.score == pytest.approx(1 - PENALTIES["hype"])


def test_hype_words_match_whole_words_only(guide: StyleGuide) -> None:
    assert check_style("Every sync runs on schedule.", guide).findings == ()  # "very" in "every"
    assert check_style("A revolutionary-ish idea.", guide).findings == ()


def test_shouting_is_found(guide: StyleGuide) -> None:
    report = check_style("Sync your data NOW! It is FREE.", guide)
    assert sorted((f.rule, f.excerpt) for f in report.findings if f.rule == "all-caps") == [
        ("all-caps", "FREE"),
        ("all-caps", "NOW"),
    ]
    assert [f.advice for f in report.findings if f.rule == "punctuation"] == ['replace "!" with "."']
    assert report.score == pytest.approx(1 - PENALTIES["punctuation"] - 2 * PENALTIES["all-caps"])
    assert check_style("Use SSO, SCIM and the API with 2FA on.", guide).findings == ()


def test_the_reader_is_addressed_as_you(guide: StyleGuide) -> None:
    (finding,) = check_style("Users can export any dashboard.", guide).findings
    assert (finding.rule, finding.advice) == ("reader-address", 'replace "Users can" with "you can"')


def test_long_sentences_are_found_and_headings_are_not_sentences(guide: StyleGuide) -> None:
    limit = guide.max_sentence_words
    at_limit = " ".join(["word"] * (limit - 1)) + " end."
    over = " ".join(["word"] * limit) + " end."
    assert check_style(at_limit, guide).findings == ()
    (finding,) = check_style(over, guide).findings
    assert finding.rule == "long-sentence"
    assert f"at most {limit} words" in finding.advice
    assert check_style("# " + over, guide).findings == ()
    title = check_style("# A revolutionary title", guide).findings
    assert [f.rule for f in title] == ["hype"]


def test_the_score_falls_with_each_finding_and_stops_at_zero(guide: StyleGuide) -> None:
    one = check_style("A very good tool.", guide).score
    two = check_style("A very, very good tool.", guide).score
    assert 1.0 > one > two
    assert check_style("Revolutionary! " * 20, guide).score == 0.0


def test_critique_lines_carry_the_advice_once(guide: StyleGuide) -> None:
    report = check_style("Wow! Wow!", guide)
    assert len(report.findings) == 2
    assert critique_lines(report) == ['style: punctuation: Wow! | replace "!" with "."']


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "guide.yaml"
    path.write_text(text)
    return path


GOOD = """max_sentence_words: 20
hype: {great: good}
punctuation: {"!": "."}
reader_address: {users can: you can}
acronyms: [API]
"""


def test_a_valid_custom_guide_loads(tmp_path: Path) -> None:
    guide = StyleGuide.load(_write(tmp_path, GOOD))
    assert (guide.max_sentence_words, dict(guide.hype), guide.acronyms) == (
        20,
        {"great": "good"},
        frozenset({"API"}),
    )


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("hype: [unclosed", "not valid YAML"),
        ("- a list\n", "mapping"),
        (GOOD.replace("max_sentence_words: 20\n", ""), "'max_sentence_words'"),
        (GOOD.replace("20", "long"), "'max_sentence_words'"),
        (GOOD.replace("20", "0"), "'max_sentence_words'"),
        (GOOD.replace("{great: good}", "[great]"), "'hype'"),
        (GOOD.replace("{great: good}", "{great: {too: deep}}"), "'hype.great'"),
        (GOOD.replace("[API]", "API"), "'acronyms'"),
        (GOOD + "banned: []\n", "unknown key 'banned'"),
    ],
)
def test_a_bad_guide_names_the_file_and_the_key(tmp_path: Path, text: str, names: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=r"guide\.yaml") as caught:
        StyleGuide.load(path)
    assert names in str(caught.value)
