"""The offline retriever: BM25 over the shipped knowledge bases, merged without duplicates."""

from agents.offline.retriever import DOCS, FAQ, KnowledgeSource, Passage, merge


def passage(id: str, source: str, text: str) -> Passage:
    return Passage(id, source, id, f"https://x/{id}", text, 1.0)


def test_a_question_finds_the_passage_that_answers_it() -> None:
    docs = KnowledgeSource("docs", DOCS)
    found = docs.search_now("How do I reset my password? I'm locked out", 3)
    assert found and "password" in (found[0].title + found[0].text).lower()
    assert all(p.source == "docs" and p.score > 0 for p in found)
    assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)


def test_word_forms_match_through_the_stemmer() -> None:
    faq = KnowledgeSource("faq", FAQ)
    assert faq.search_now("invoices billed", 5) == faq.search_now("invoice billing", 5)


def test_a_question_of_stop_words_or_unknown_words_finds_nothing() -> None:
    docs = KnowledgeSource("docs", DOCS)
    assert docs.search_now("what is it", 3) == []
    assert docs.search_now("zzqx vvbnm", 3) == []


def test_merge_interleaves_sources_and_drops_duplicates() -> None:
    docs = [
        passage("d1", "docs", "Reset your password from the login page."),
        passage("d2", "docs", "SSO setup"),
    ]
    faq = [
        passage("f1", "faq", "reset your password from the login page"),  # same text, other source
        passage("f2", "faq", "Invoices are emailed monthly."),
    ]
    merged = merge([docs, faq], k=4)
    assert [p.id for p in merged] == ["d1", "d2", "f2"]
    assert [p.id for p in merge([docs, faq], k=2)] == ["d1", "d2"]
    assert merge([docs, [docs[0]]], k=5) == docs  # the same passage id twice is kept once
    assert merge([], k=3) == []
