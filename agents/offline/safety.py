"""The offline safety screen: rules plus a small trained classifier, for tickets and drafts.

Two local mechanisms, named for what they are:

- **rules** (regular expressions, a Luhn check): secrets (API keys, private keys, passwords
  written out), personal data (emails, phone numbers, card numbers) and well-known injection
  phrases. Secrets and personal data are *redacted*; injection phrases *block*.
- **a classifier** (TF-IDF + logistic regression, trained at first use on the labelled
  examples in ``agents/data/safety.jsonl``) scoring ``safe`` / ``injection`` / ``unsafe``.
  It blocks when a harmful label is the most likely one and at least ``block_at`` probable.

:func:`Screen.check` is pure and returns a :class:`Verdict`: ``pass``, ``redact`` (with the
cleaned text) or ``block`` (with the reasons). Nothing here is an LLM or calls the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agents.offline.classifier import load_examples, text_pipeline

__all__ = ["EXAMPLES", "Finding", "Screen", "Verdict", "find_sensitive", "luhn_valid"]

EXAMPLES = Path(__file__).parents[1] / "data" / "safety.jsonl"

Action = Literal["pass", "redact", "block"]


@dataclass(frozen=True)
class Finding:
    kind: str  # email, phone, card, secret (redacted); injection, threat (blocked)
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_PHONE = re.compile(r"(?<![\w-])\+?\d[\d ().-]{7,}\d\b")
_SECRETS = [
    re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_-]{16,}\b"),  # OpenAI-style and similar keys
    re.compile(r"\blum_(?:live|test)_[A-Za-z0-9]{12,}\b"),  # the demo product's API keys
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub tokens
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    re.compile(r"(?i)\b(?:password|passwd|pwd)\s*(?:is|:|=)\s*\S+"),
]
_INJECTION = re.compile(
    r"(?i)\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+|the\s+|your\s+)*(?:previous|prior|above|earlier)"
    r"\s+(?:instructions|rules|prompts?|messages)"
    r"|\b(?:reveal|print|show|repeat|output)\s+(?:me\s+)?(?:your|the)\s+(?:system|hidden|initial)\s+prompt"
    r"|\byou\s+are\s+now\s+(?:DAN|in\s+developer\s+mode|an?\s+unrestricted)"
    r"|\bjailbreak"
)
_THREAT = re.compile(
    r"(?i)\bI(?:'ll|\s+will|\s+am\s+going\s+to)\s+(?:hurt|kill|harm|come\s+(?:for|after))\b"
    r"|\bwhere\s+(?:you|your\s+[\w ]{1,30}?)\s+lives?\b"
)


def find_sensitive(text: str) -> list[Finding]:
    """Secrets, personal data and injection phrases, left to right, without overlaps."""
    found: list[Finding] = []
    for pattern in _SECRETS:
        found += [Finding("secret", m.start(), m.end()) for m in pattern.finditer(text)]
    found += [Finding("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(Finding("card", m.start(), m.end()))
    # E.164 allows at most 15 digits: longer runs are order or account numbers.
    found += [
        Finding("phone", m.start(), m.end())
        for m in _PHONE.finditer(text)
        if 7 <= sum(ch.isdigit() for ch in m.group()) <= 15
    ]
    found += [Finding("injection", m.start(), m.end()) for m in _INJECTION.finditer(text)]
    found += [Finding("threat", m.start(), m.end()) for m in _THREAT.finditer(text)]
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[Finding] = []
    for f in found:
        if kept and f.start < kept[-1].end:
            continue  # a card number is not also a phone number
        kept.append(f)
    return kept


_BLOCKING = {"injection": "prompt injection", "threat": "threat"}


@dataclass(frozen=True)
class Verdict:
    action: Action
    reasons: tuple[str, ...]
    text: str  # the text to pass on: redacted when action is "redact"
    scores: dict[str, float]

    @property
    def blocked(self) -> bool:
        return self.action == "block"


def _redact(text: str, findings: list[Finding]) -> str:
    out, last = [], 0
    for f in findings:
        out += [text[last : f.start], f"[redacted {f.kind}]"]
        last = f.end
    out.append(text[last:])
    return "".join(out)


class Screen:
    def __init__(self, texts: list[str], labels: list[str], block_at: float = 0.6) -> None:
        self._pipeline = text_pipeline(class_weight="balanced").fit(texts, labels)
        self.block_at = block_at

    @classmethod
    def trained(cls, path: Path = EXAMPLES, block_at: float = 0.6) -> Screen:
        return cls(*load_examples(path, label="label"), block_at)

    def scores(self, text: str) -> dict[str, float]:
        return self.scores_many([text])[0]

    def scores_many(self, texts: list[str]) -> list[dict[str, float]]:
        labels = [str(label) for label in self._pipeline.classes_]
        return [
            {label: round(float(p), 4) for label, p in zip(labels, row, strict=True)}
            for row in self._pipeline.predict_proba(texts)
        ]

    def check(
        self,
        text: str,
        block_labels: tuple[str, ...] = ("injection", "unsafe"),
        also: Callable[[str], list[Finding]] = find_sensitive,
    ) -> Verdict:
        """``block_labels``: the classifier labels that block. Tickets are screened for both;
        drafts only for ``unsafe`` (injection is a property of what people send, and a draft
        that obeyed one shows as unsafe content or as a leaked secret)."""
        return self.check_many([text], block_labels, also)[0]

    def check_many(
        self,
        texts: list[str],
        block_labels: tuple[str, ...] = ("injection", "unsafe"),
        also: Callable[[str], list[Finding]] = find_sensitive,
    ) -> list[Verdict]:
        """:meth:`check` for many texts with one classifier call (see :mod:`agents.offline.batching`)."""
        found = [also(text) for text in texts]
        sensitive = [[f for f in findings if f.kind not in _BLOCKING] for findings in found]
        # The classifier reads the redacted text: an email address or a card number in a
        # legitimate ticket is personal data to remove, not evidence of abuse.
        redacted = [_redact(text, s) for text, s in zip(texts, sensitive, strict=True)]
        scored = self.scores_many(redacted)
        return [
            self._verdict(*args, block_labels)
            for args in zip(texts, found, sensitive, redacted, scored, strict=True)
        ]

    def _verdict(
        self,
        text: str,
        findings: list[Finding],
        sensitive: list[Finding],
        redacted: str,
        scores: dict[str, float],
        block_labels: tuple[str, ...],
    ) -> Verdict:
        reasons: list[str] = []
        for kind, label in _BLOCKING.items():
            hits = [f for f in findings if f.kind == kind]
            if hits:
                reasons.append(f"{label} (rule): '{text[hits[0].start : hits[0].end][:60]}'")
        worst = max(block_labels, key=lambda label: scores.get(label, 0.0))
        if scores.get(worst, 0.0) >= self.block_at and scores[worst] == max(scores.values()):
            reasons.append(f"{worst} (classifier, p={scores[worst]:.2f})")
        if reasons:
            return Verdict("block", tuple(reasons), text, scores)
        if sensitive:
            kinds = sorted({f.kind for f in sensitive})
            return Verdict("redact", tuple(f"redacted {k}" for k in kinds), redacted, scores)
        return Verdict("pass", (), text, scores)
