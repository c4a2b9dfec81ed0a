"""search_docs: the shipped knowledge base searched in process, each hit with title, url, snippet."""

from __future__ import annotations

import pytest

from agents.billing.docs import MAX_HITS, SNIPPET_CHARS, DocSearch, KnowledgeBase, search_docs


def test_a_double_charge_finds_the_refund_policy_first() -> None:
    found = search_docs("I was charged twice for November")
    assert isinstance(found, DocSearch) and found.query == "I was charged twice for November"
    assert len(found.hits) == 3
    best = found.hits[0]
    assert (best.title, best.url) == ("Refund policy", "https://docs.lumen.example/billing/refunds")
    assert best.snippet.startswith("Monthly subscriptions are not refundable")


def test_the_faq_is_searched_beside_the_docs() -> None:
    urls = [h.url for h in search_docs("How do I get our VAT number on invoices?", k=5).hits]
    assert "https://docs.lumen.example/billing/vat-tax-id" in urls
    assert "https://lumen.example/faq#vat-invoice" in urls


def test_snippets_are_cut_at_a_word_and_marked() -> None:
    hits = search_docs("refund annual subscription duplicate charges", k=MAX_HITS).hits
    cut = [h.snippet for h in hits if h.snippet.endswith(" ...")]
    assert cut, "no passage was long enough to be cut"
    assert all(len(s) <= SNIPPET_CHARS + len(" ...") for s in cut)
    assert all(not s[: -len(" ...")].endswith(" ") for s in cut)


def test_k_bounds_the_hits_and_is_checked() -> None:
    assert len(search_docs("billing", k=1).hits) == 1
    for k in (0, MAX_HITS + 1):
        with pytest.raises(ValueError, match="k must be between 1 and 10"):
            search_docs("billing", k=k)


def test_a_query_of_stop_words_finds_nothing() -> None:
    assert KnowledgeBase().search("the and of", k=3).hits == []
