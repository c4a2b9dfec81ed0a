"""Fact-checking an article against the knowledge base: claims, evidence sentences, verdicts.

A claim is a sentence of the article body with enough content words to be checked. For each
claim the checker

1. asks the BM25 index for the :data:`TOP_PASSAGES` best passages,
2. picks the evidence *sentence* in them that covers the most of the claim's stemmed content
   words (ties go to the sentence whose numbers agree, then to the better-ranked passage),
3. judges the claim by that one sentence: **supported** when it covers at least
   :data:`SUPPORTED_MIN_OVERLAP` of the claim and states every number the claim states, with the
   same polarity (no "not" on one side only); **contradicted** when it covers at least
   :data:`CONTRADICTED_MIN_OVERLAP` (the same subject) but states other numbers or the opposite
   polarity; **unverifiable** otherwise.

Judging by the single best sentence is deliberate: a wrong number ("valid for 30 minutes") often
appears in some other sentence about a neighbouring subject ("locked for 30 minutes"), and a
checker that took any agreeing sentence would wave it through.

The text primitives (sentences, stemmed content terms, numbers) live here because checking is
what they are for; the writer, style check and SEO reuse them so all four split text alike.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

import Stemmer

from agents.offline.retriever import KnowledgeSource, Passage

__all__ = [
    "CONTRADICTED_MIN_OVERLAP",
    "FACT_PREFIX",
    "MIN_CLAIM_TERMS",
    "SUPPORTED_MIN_OVERLAP",
    "TOP_PASSAGES",
    "ClaimVerdict",
    "FactChecker",
    "FactReport",
    "Verdict",
    "content_terms",
    "critique_lines",
    "numbers",
    "split_claims",
    "split_sentences",
]

# Passages read per claim: the answer is nearly always in the first; three absorb BM25's
# occasional preference for a passage that repeats the query words.
TOP_PASSAGES = 3
# A sentence with fewer content words ("Read on.") states nothing a source could confirm.
MIN_CLAIM_TERMS = 3
# Share of the claim's content terms the evidence sentence must contain.
SUPPORTED_MIN_OVERLAP = 0.6
# Calling a claim wrong needs more certainty that the sentence is about the same thing.
CONTRADICTED_MIN_OVERLAP = 0.7
# What a verdict is worth in the score; contradictions count fully against the article.
_VERDICT_SCORE = {"supported": 1.0, "unverifiable": 0.5, "contradicted": 0.0}

# The critique line prefix the writer reads (see agents.content.writer).
FACT_PREFIX = "factcheck: "

Verdict = Literal["supported", "contradicted", "unverifiable"]

# Split after . ! ? only before a capital, digit or quote, so "app.lumen.example" and "99.9%"
# stay whole.
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])")
_CLAUSE = re.compile(r"[,;:]\s+|\s+(?:and|but|while|whereas)\s+")
_WORD = re.compile(r"[a-z0-9]+")
# A number standing alone: "3,000", "99.9", "203.0.113.10"; not the digits of "v1" or "2FA".
_NUMBER = re.compile(r"(?<![\w.,])\d+(?:,\d{3})*(?:\.\d+)*(?!\w)")
# Number words a writer may use for a digit the docs give. "one" is left out: it is mostly a
# pronoun ("one of four roles"), and reading it as 1 invents disagreements.
_NUMBER_WORDS = {
    w: str(n)
    for n, w in enumerate(
        ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"], 2
    )
} | {"fifteen": "15", "twenty": "20", "thirty": "30", "sixty": "60", "ninety": "90"}
# "no" before "-" or "@" is part of "no-reply@...", not a negation.
_NEGATION = re.compile(r"\b(?:not|never|cannot|no)\b(?![-@])|n't\b", re.IGNORECASE)
# "lumen" too: the product's name is in every passage and tells nothing apart.
# (A paragraph of words reads better than 80 quoted strings, hence the noqa.)
_STOP = frozenset(
    """a about after all also an and any are as at be been before but by can could do does each
    for from has have how i if in into is it its may me more must my no not of on once only or
    our per so such than that the their them then there these they this those to up us was we
    what when where which while who why will with within without you your yours lumen""".split()  # noqa: SIM905
)
_STEM = Stemmer.Stemmer("english")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def content_terms(text: str) -> frozenset[str]:
    """Stemmed words that carry meaning: no stop words, no bare numbers."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP and not w.isdigit()]
    return frozenset(_STEM.stemWords(words))


def numbers(text: str) -> frozenset[str]:
    found = {m.group().replace(",", "") for m in _NUMBER.finditer(text)}
    found |= {_NUMBER_WORDS[w] for w in _WORD.findall(text.lower()) if w in _NUMBER_WORDS}
    return frozenset(found)


def split_claims(body: str) -> list[str]:
    """The checkable sentences of an article: headings and questions skipped, and sentences
    with fewer than :data:`MIN_CLAIM_TERMS` content words."""
    claims = []
    for line in body.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        for sentence in split_sentences(line):
            if not sentence.endswith("?") and len(content_terms(sentence)) >= MIN_CLAIM_TERMS:
                claims.append(sentence)
    return claims


@dataclass(frozen=True)
class ClaimVerdict:
    claim: str
    verdict: Verdict
    evidence: str  # the best evidence sentence, "" when no passage shares a word
    source: str  # the id of the passage the evidence comes from
    confidence: float  # the overlap for a verdict on evidence; 1 - overlap for unverifiable


@dataclass(frozen=True)
class FactReport:
    score: float  # mean of supported=1, unverifiable=0.5, contradicted=0; 1.0 with no claims
    claims: tuple[ClaimVerdict, ...]


@dataclass(frozen=True)
class _Candidate:
    overlap: float
    numbers_agree: bool
    sentence: str
    passage: Passage


def _negated(text: str) -> bool:
    return _NEGATION.search(text) is not None


def _polarity_differs(claim: str, evidence: str) -> bool:
    """Compare "not" clause by clause: "Downgrades apply at the end of the period, and no refund
    is issued" must not make "Downgrades apply at the end of the period" look contradicted."""
    evidence_clauses = [c for c in _CLAUSE.split(evidence) if content_terms(c)]
    for clause in _CLAUSE.split(claim):
        terms = content_terms(clause)
        if len(terms) < 2 or not evidence_clauses:
            continue
        nearest = max(evidence_clauses, key=lambda c: len(terms & content_terms(c)))
        if terms & content_terms(nearest) and _negated(clause) != _negated(nearest):
            return True
    return False


@functools.lru_cache(maxsize=4096)
def _read(passage: str) -> tuple[tuple[str, frozenset[str], frozenset[str]], ...]:
    """A passage's sentences with their stems and numbers: the knowledge base is fixed, so each
    passage is read once, not once per claim that retrieves it."""
    return tuple((s, content_terms(s), numbers(s)) for s in split_sentences(passage))


class FactChecker:
    """Checks claims against one or more knowledge sources (the product docs, the FAQ)."""

    def __init__(self, source: KnowledgeSource, *more: KnowledgeSource) -> None:
        self.sources = (source, *more)

    def _best(self, claim: str) -> _Candidate | None:
        terms, wanted = content_terms(claim), numbers(claim)
        best: tuple[tuple[float, bool, int], _Candidate] | None = None
        for source in self.sources:
            for rank, passage in enumerate(source.search_now(claim, TOP_PASSAGES)):
                for sentence, sentence_terms, sentence_numbers in _read(passage.text):
                    overlap = len(terms & sentence_terms) / len(terms)
                    agree = wanted <= sentence_numbers
                    key = (overlap, agree, -rank)
                    if overlap > 0 and (best is None or key > best[0]):
                        best = key, _Candidate(overlap, agree, sentence, passage)
        return best[1] if best else None

    def judge(self, claim: str) -> ClaimVerdict:
        if not content_terms(claim):
            return ClaimVerdict(claim, "unverifiable", "", "", 1.0)
        found = self._best(claim)
        if found is None:
            return ClaimVerdict(claim, "unverifiable", "", "", 1.0)
        overlap = round(found.overlap, 3)
        flipped = _polarity_differs(claim, found.sentence)
        verdict: Verdict = "unverifiable"
        if overlap >= SUPPORTED_MIN_OVERLAP and found.numbers_agree and not flipped:
            verdict = "supported"
        elif overlap >= CONTRADICTED_MIN_OVERLAP and (
            flipped or (not found.numbers_agree and numbers(found.sentence))
        ):
            verdict = "contradicted"
        confidence = round(1 - overlap, 3) if verdict == "unverifiable" else overlap
        return ClaimVerdict(claim, verdict, found.sentence, found.passage.id, confidence)

    def check(self, body: str) -> FactReport:
        verdicts = tuple(self.judge(claim) for claim in split_claims(body))
        if not verdicts:
            return FactReport(1.0, ())
        score = sum(_VERDICT_SCORE[v.verdict] for v in verdicts) / len(verdicts)
        return FactReport(round(score, 3), verdicts)


def critique_lines(report: FactReport) -> list[str]:
    """One line per claim to fix, in the form the writer acts on:
    ``factcheck: contradicted: <claim> | evidence: <sentence>`` and
    ``factcheck: unverifiable: <claim>``."""
    lines = []
    for v in report.claims:
        if v.verdict == "contradicted":
            lines.append(f"{FACT_PREFIX}contradicted: {v.claim} | evidence: {v.evidence}")
        elif v.verdict == "unverifiable":
            lines.append(f"{FACT_PREFIX}unverifiable: {v.claim}")
    return lines
