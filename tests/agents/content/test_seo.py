"""SEO metadata: lengths, whole words, keywords and slugs."""

import pytest

from agents.content.seo import MAX_DESCRIPTION, MAX_SLUG, MAX_TITLE, kb_idf, seo_metadata, slugify
from agents.offline.retriever import DOCS, KnowledgeSource

BODY = (
    "# Resetting your password\n\n"
    "A password reset link is valid for 60 minutes and can be used only once. "
    "You can request at most 5 reset emails per hour.\n\n"
    "After 10 failed sign-in attempts an account is locked for 30 minutes, and a successful "
    "password reset unlocks it immediately. Reset emails come from no-reply@lumen.example.\n"
)


def test_a_short_title_is_kept_and_a_long_one_cut_at_a_word() -> None:
    assert seo_metadata("# Resetting your password", BODY).title == "Resetting your password"
    long_title = "How to rotate your SAML signing certificate without downtime, and what to check afterwards"
    title = seo_metadata(long_title, BODY).title
    assert len(title) <= MAX_TITLE
    assert long_title.startswith(title)
    assert long_title[len(title)] in " ,"  # cut between words
    assert not title.endswith((",", "and", " "))


def test_the_description_is_whole_sentences_from_the_start_of_the_body() -> None:
    description = seo_metadata("Resetting your password", BODY).description
    assert description == (
        "A password reset link is valid for 60 minutes and can be used only once. "
        "You can request at most 5 reset emails per hour."
    )
    assert len(description) <= MAX_DESCRIPTION


def test_a_long_first_sentence_is_cut_at_a_word_without_dangling_punctuation() -> None:
    sentence = "Lumen connects to PostgreSQL, BigQuery and Snowflake, " * 6 + "and to CSV files."
    description = seo_metadata("Connectors", sentence).description
    assert len(description) <= MAX_DESCRIPTION
    assert description.endswith("…")
    assert description[-2] not in " ,;:-" and not description[:-1].endswith(" and")
    assert sentence.startswith(description[:-1])


def test_keywords_are_frequent_content_words_lower_case_and_unique() -> None:
    keywords = seo_metadata("Resetting your password", BODY, max_keywords=4).keywords
    assert keywords[:2] == ("reset", "password")
    assert len(keywords) == 4 == len(set(keywords))
    assert all(k == k.lower() and k.isalnum() and not k.isdigit() for k in keywords)
    assert not {"your", "the", "lumen", "example"} & set(keywords)


def test_kb_idf_demotes_words_every_passage_uses() -> None:
    idf = kb_idf([KnowledgeSource("docs", DOCS)])
    assert idf["workspac"] < idf["password"]  # keyed by stem
    body = "Workspace rules: every workspace needs a strong password, and each workspace password expires."
    assert seo_metadata("Rules", body).keywords[:3] == ("rules", "workspace", "password")
    assert seo_metadata("Rules", body, idf=idf).keywords[:3] == ("rules", "password", "workspace")


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Resetting your password", "resetting-your-password"),
        ("Crème brûlée & Zürich: 2FA setup!", "creme-brulee-zurich-2fa-setup"),
        ("  --Hello,   World!--  ", "hello-world"),
        ("日本語のタイトル", "article"),
    ],
)
def test_slugs_are_lower_case_ascii_with_hyphens(title: str, slug: str) -> None:
    assert slugify(title) == slug
    assert seo_metadata(title, BODY).slug == slug


def test_a_long_slug_is_cut_at_a_hyphen() -> None:
    slug = slugify("A very long title " * 10)
    assert len(slug) <= MAX_SLUG
    assert not slug.endswith("-")
    assert ("a-very-long-title-" * 10).startswith(slug + "-")
