"""Fact checking against the shipped knowledge base: claims, evidence, verdicts, score."""

import pytest

from agents.content.factcheck import (
    FactChecker,
    FactReport,
    content_terms,
    critique_lines,
    numbers,
    split_claims,
)
from agents.offline.retriever import DOCS, FAQ, KnowledgeSource


@pytest.fixture(scope="module")
def docs() -> KnowledgeSource:
    return KnowledgeSource("docs", DOCS)


@pytest.fixture(scope="module")
def checker(docs: KnowledgeSource) -> FactChecker:
    return FactChecker(docs)


def test_claims_are_the_checkable_sentences_of_the_body() -> None:
    body = (
        "# Resetting your password\n\n"
        "## Why it matters\n\n"
        "A reset link is valid for 60 minutes. Read on. Did you know?\n\n"
        "Reset emails come from no-reply@lumen.example, so check your spam folder.\n"
    )
    assert split_claims(body) == [
        "A reset link is valid for 60 minutes.",
        "Reset emails come from no-reply@lumen.example, so check your spam folder.",
    ]


def test_numbers_and_terms_are_normalised() -> None:
    assert numbers("up to 3,000 requests, 99.9% uptime, two certificates, one seat") == {"3000", "99.9", "2"}
    assert numbers("SHA256 and 2FA and v1") == frozenset()
    assert content_terms("Invoices billed") == content_terms("invoice billing")


def test_a_true_claim_is_supported_with_evidence_from_the_right_doc(checker: FactChecker) -> None:
    verdict = checker.judge("A password reset link is valid for 60 minutes.")
    assert verdict.verdict == "supported"
    assert verdict.source == "docs-password-reset"
    assert "valid for 60 minutes" in verdict.evidence
    assert verdict.confidence >= 0.6


def test_a_wrong_number_is_contradicted_by_the_sentence_with_the_right_one(checker: FactChecker) -> None:
    verdict = checker.judge("A password reset link is valid for 30 minutes.")
    assert verdict.verdict == "contradicted"
    assert verdict.source == "docs-password-reset"
    # Not waved through by "locked for 30 minutes" in the same passage.
    assert "valid for 60 minutes" in verdict.evidence
    assert checker.judge("Invitations expire after 14 days.").verdict == "contradicted"
    assert checker.judge("Invitations expire after 7 days.").verdict == "supported"


def test_number_words_count_as_numbers(checker: FactChecker) -> None:
    assert checker.judge("Lumen accepts up to two certificates at the same time.").verdict == "supported"
    assert checker.judge("Lumen accepts up to three certificates at the same time.").verdict == "contradicted"
    assert (
        checker.judge("Enterprise workspaces can get up to 3000 requests per minute.").verdict == "supported"
    )


def test_a_missing_or_added_negation_is_a_contradiction(checker: FactChecker) -> None:
    verdict = checker.judge("Monthly subscriptions are refundable.")
    assert (verdict.verdict, verdict.source) == ("contradicted", "docs-refund-policy")
    assert checker.judge("Monthly subscriptions are not refundable.").verdict == "supported"


def test_a_negation_in_another_clause_of_the_evidence_does_not_count(checker: FactChecker) -> None:
    # The evidence goes on "..., and no refund is issued for the remaining time."
    verdict = checker.judge("Downgrades take effect at the end of the current billing period.")
    assert verdict.verdict == "supported"
    assert "no refund" in verdict.evidence


def test_an_off_topic_claim_is_unverifiable(checker: FactChecker) -> None:
    verdict = checker.judge("Lumen ships a free espresso machine with every subscription.")
    assert verdict.verdict == "unverifiable"
    assert checker.judge("Quantum gravity bends spacetime near neutron stars.").verdict == "unverifiable"


def test_several_sources_are_searched(docs: KnowledgeSource) -> None:
    claim = "Double charges are always refunded in full."
    assert FactChecker(docs).judge(claim).source == "docs-refund-policy"
    both = FactChecker(docs, KnowledgeSource("faq", FAQ)).judge(claim)
    assert (both.verdict, both.source, both.confidence) == ("supported", "faq-refunds", 1.0)


def test_the_score_averages_the_verdicts(checker: FactChecker) -> None:
    report = checker.check(
        "# Title\n\nBackups are kept for 35 days. Backups are kept for 90 days.\n\n"
        "Lumen ships a free espresso machine with every subscription.\n"
    )
    assert [c.verdict for c in report.claims] == ["supported", "contradicted", "unverifiable"]
    assert report.score == pytest.approx((1 + 0 + 0.5) / 3, abs=1e-3)
    assert checker.check("# Only a title\n") == FactReport(1.0, ())


def test_critique_lines_name_the_claim_and_the_evidence(checker: FactChecker) -> None:
    report = checker.check(
        "Backups are kept for 35 days. Backups are kept for 90 days. "
        "Lumen ships a free espresso machine with every subscription."
    )
    assert critique_lines(report) == [
        "factcheck: contradicted: Backups are kept for 90 days. | evidence: "
        "Backups are kept for 35 days, after which deleted data cannot be recovered.",
        "factcheck: unverifiable: Lumen ships a free espresso machine with every subscription.",
    ]
