"""Lumen's brand voice as checkable rules, read from ``agents/data/content/style_guide.yaml``.

:func:`check_style` reads an article line by line (headings get the word rules only, since a
title is not a sentence) and reports one :class:`StyleFinding` per occurrence:

- ``hype``: a hype or filler word ("revolutionary", "very");
- ``punctuation``: shouting punctuation ("!");
- ``all-caps``: a word in capitals that is not a known acronym ("NOW");
- ``reader-address``: the reader in the third person ("users can") instead of "you";
- ``long-sentence``: a sentence over the guide's word limit.

The score is ``1 - sum of penalties`` (floored at 0), each finding costing its rule's entry in
:data:`PENALTIES`: words that oversell cost more than habits that only read heavily, so one hype
word is forgivable and three are not. Advice for the mechanical fixes is phrased
``replace "<old>" with "<new>"`` or ``at most <n> words per sentence``; the local writer acts on
exactly these phrasings, a hosted model reads them as plain instructions.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from agents.content.factcheck import split_sentences

__all__ = [
    "PENALTIES",
    "STYLE_GUIDE",
    "STYLE_PREFIX",
    "StyleFinding",
    "StyleGuide",
    "StyleReport",
    "check_style",
    "critique_lines",
    "phrase_pattern",
]

STYLE_GUIDE = Path(__file__).parents[1] / "data" / "content" / "style_guide.yaml"
STYLE_PREFIX = "style: "

PENALTIES: Mapping[str, float] = MappingProxyType(
    {"hype": 0.10, "punctuation": 0.10, "all-caps": 0.05, "reader-address": 0.05, "long-sentence": 0.05}
)

_TOKEN = re.compile(r"[A-Za-z0-9]+")
_EXCERPT_WORDS = 8


@dataclass(frozen=True)
class StyleGuide:
    max_sentence_words: int
    hype: Mapping[str, str]  # word -> replacement ("" deletes the word)
    punctuation: Mapping[str, str]
    reader_address: Mapping[str, str]  # third-person phrase -> "you" phrase
    acronyms: frozenset[str]

    @classmethod
    def load(cls, path: Path = STYLE_GUIDE) -> StyleGuide:
        """Read and validate a guide; a ValueError names the file and the key at fault."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of rules at the top level")
        unknown = set(data) - _KEYS
        if unknown:
            raise ValueError(f"{path}: unknown key '{sorted(unknown)[0]}' (known: {sorted(_KEYS)})")
        limit = _required(data, "max_sentence_words", path)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"{path}: 'max_sentence_words' must be a positive integer, not {limit!r}")
        acronyms = _required(data, "acronyms", path)
        if not isinstance(acronyms, list) or not all(isinstance(a, str) for a in acronyms):
            raise ValueError(f"{path}: 'acronyms' must be a list of words")
        return cls(
            limit,
            _replacements(data, "hype", path),
            _replacements(data, "punctuation", path),
            _replacements(data, "reader_address", path),
            frozenset(acronyms),
        )


_KEYS = frozenset({"max_sentence_words", "hype", "punctuation", "reader_address", "acronyms"})


def _required(data: dict[str, Any], key: str, path: Path) -> Any:
    if key not in data:
        raise ValueError(f"{path}: missing key '{key}'")
    return data[key]


def _replacements(data: dict[str, Any], key: str, path: Path) -> Mapping[str, str]:
    table = _required(data, key, path)
    if not isinstance(table, dict):
        raise ValueError(f"{path}: '{key}' must map each phrase to its replacement")
    for old, new in table.items():
        if not isinstance(old, str) or not old.strip() or not isinstance(new, str):
            raise ValueError(f"{path}: '{key}.{old}' must map text to text (use \"\" to delete)")
    return MappingProxyType({old.lower(): new for old, new in table.items()})


@dataclass(frozen=True)
class StyleFinding:
    rule: str
    excerpt: str
    advice: str


@dataclass(frozen=True)
class StyleReport:
    score: float  # 1 - sum of PENALTIES per finding, floored at 0
    findings: tuple[StyleFinding, ...]


def _excerpt(sentence: str) -> str:
    words = sentence.split()
    return sentence if len(words) <= _EXCERPT_WORDS else " ".join(words[:_EXCERPT_WORDS]) + " ..."


@functools.lru_cache(maxsize=1024)  # a guide's phrases, compiled once
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A phrase as whole words, case-insensitive; hyphens belong to the word ("game-changing")."""
    body = r"\s+".join(re.escape(part) for part in phrase.split())
    return re.compile(rf"(?<![\w-]){body}(?![\w-])", re.IGNORECASE)


def _replace(old: str, new: str) -> str:
    return f'replace "{old}" with "{new}"'


def _word_findings(text: str, guide: StyleGuide) -> list[StyleFinding]:
    found = []
    for rule, table in (("hype", guide.hype), ("reader-address", guide.reader_address)):
        for old, new in table.items():
            for match in phrase_pattern(old).finditer(text):
                found.append(StyleFinding(rule, match.group(), _replace(match.group(), new)))
    for mark, calm in guide.punctuation.items():
        found += [StyleFinding("punctuation", _excerpt(text), _replace(mark, calm))] * text.count(mark)
    for token in _TOKEN.findall(text):
        capitals = sum(c.isupper() for c in token)
        if capitals >= 2 and token == token.upper() and token not in guide.acronyms:
            found.append(StyleFinding("all-caps", token, _replace(token, token.lower())))
    return found


def check_style(text: str, guide: StyleGuide) -> StyleReport:
    findings: list[StyleFinding] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            findings += _word_findings(line.lstrip("# "), guide)
            continue
        for sentence in split_sentences(line):
            findings += _word_findings(sentence, guide)
            words = len(sentence.split())
            if words > guide.max_sentence_words:
                advice = f"split it: at most {guide.max_sentence_words} words per sentence ({words} now)"
                findings.append(StyleFinding("long-sentence", _excerpt(sentence), advice))
    score = max(0.0, 1.0 - sum(PENALTIES[f.rule] for f in findings))
    return StyleReport(round(score, 3), tuple(findings))


def critique_lines(report: StyleReport) -> list[str]:
    """``style: <rule>: <excerpt> | <advice>``, one line per distinct finding."""
    lines = [f"{STYLE_PREFIX}{f.rule}: {f.excerpt} | {f.advice}" for f in report.findings]
    return list(dict.fromkeys(lines))
