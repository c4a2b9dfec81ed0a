"""Per-symbol signals from a news item, read with a finance lexicon.

This is not an LLM and not a trained model: a fixed list of phrases with hand-set weights,
so the same item always gives the same signals, offline and in microseconds. It reads the
obvious ("beats estimates", "cuts guidance", "recall") and misses sarcasm, context and
anything the lexicon does not name; a rationale lists the phrases it did use.

Scoring, per item:

1. Each lexicon phrase found in the title or summary adds its weight once per item (feeds
   often repeat the title as the summary; counting both would double every signal).
2. A phrase with a negator ("no", "not", "does not expect", "denies", ...) among the few words
   before it, in the same clause, counts with the opposite sign at half weight: denying an
   event is weaker news than the event.
3. ``strength = tanh(|score|)`` squashes the sum into 0..1; ``|score| < NEUTRAL_BAND`` is
   "neutral".

Every symbol of an item gets the same reading: the lexicon scores the item, not sentences.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_ALIASES", "NEUTRAL_BAND", "Direction", "Signal", "extract_signals", "find_symbols"]

Direction = Literal["up", "down", "neutral"]

# |score| below this reads as neutral: a single weak phrase (weight 0.2) is not a call.
NEUTRAL_BAND = 0.25
# Words searched before a phrase for a negator; a clause boundary (, ; . : ! ?) stops the search.
_NEGATION_WINDOW = 4
_NEGATION_SCALE = 0.5
_NEGATORS = frozenset(
    {"no", "not", "never", "without", "denies", "denied", "deny", "fails", "failed", "cannot", "unlikely"}
)

# Company names and tickers of the symbols in agents/data/market/ticks.jsonl (name -> symbol).
DEFAULT_ALIASES: Mapping[str, str] = {
    "acme": "ACME",
    "acme corp": "ACME",
    "globex": "GLBX",
    "glbx": "GLBX",
    "initech": "INTC",
    "intc": "INTC",
    "umbrella": "UMBR",
    "umbrella corp": "UMBR",
    "umbr": "UMBR",
}

# Up to three words between the parts of a phrase: "beats quarterly revenue estimates".
_GAP = r"(?:[\w'\-]+\s+){0,3}"


@dataclass(frozen=True)
class _Phrase:
    label: str
    weight: float
    pattern: re.Pattern[str]


def _phrase(label: str, weight: float, pattern: str) -> _Phrase:
    return _Phrase(label, weight, re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE))


_LEXICON: tuple[_Phrase, ...] = (
    _phrase(
        "beats estimates",
        1.0,
        rf"(?:beat|beats|beating|tops|topped|exceeds|exceeded|surpass(?:es|ed)?)"
        rf"\s+{_GAP}(?:estimates?|expectations|forecasts?|consensus)",
    ),
    _phrase(
        "misses estimates",
        -1.0,
        rf"(?:miss|misses|missed|missing|falls? short of|fell short of)"
        rf"\s+{_GAP}(?:estimates?|expectations|forecasts?|consensus)",
    ),
    _phrase(
        "raises guidance",
        1.0,
        rf"(?:raise|raises|raised|raising|lifts?|lifted|boosts?|boosted)"
        rf"\s+{_GAP}(?:guidance|forecast|outlook)",
    ),
    _phrase(
        "cuts guidance",
        -1.0,
        rf"(?:cut|cuts|cutting|lowers?|lowered|slash(?:es|ed)?|trims?|trimmed)"
        rf"\s+{_GAP}(?:guidance|forecast|outlook)",
    ),
    _phrase("profit warning", -0.9, r"profit warning|warns on (?:profit|earnings|sales)"),
    _phrase("record revenue", 0.9, r"record (?:quarterly |annual )?(?:revenue|sales|profits?|earnings)"),
    _phrase("buyback", 0.7, r"buybacks?|share repurchases?|buy back shares"),
    _phrase("raises dividend", 0.6, rf"(?:raises|raised|hikes|hiked|increases|increased)\s+{_GAP}dividend"),
    _phrase("upgrade", 0.8, r"upgrade|upgrades|upgraded|upgrading"),
    _phrase("downgrade", -0.8, r"downgrade|downgrades|downgraded|downgrading"),
    _phrase(
        "wins contract",
        0.7,
        rf"(?:win|wins|winning|won|awarded|secures|secured)\s+{_GAP}(?:contracts?|deals?|orders?)",
    ),
    _phrase("partnership", 0.5, r"partnership|partners with|teams up with|strategic alliance"),
    _phrase("regulatory approval", 0.6, r"approval|approves|approved|clearance"),
    _phrase("layoffs", -0.6, r"layoffs?|lays off|laid off|job cuts|cuts jobs|cut jobs"),
    _phrase("lawsuit", -0.6, r"lawsuits?|sues|sued|class action"),
    _phrase("recall", -0.7, r"recall|recalls|recalled|recalling"),
    _phrase("probe", -0.7, r"probe|probes|probing|investigation|investigates|investigating|subpoena(?:ed)?"),
    _phrase("data breach", -0.6, r"data breach|breach|hacked|cyberattack"),
    _phrase("bankruptcy", -1.2, r"bankruptcy|chapter 11|insolven(?:t|cy)|default(?:s|ed)? on"),
    _phrase("executive departure", -0.4, r"steps? down|stepping down|resigns?|resigned|resignation|ousted"),
    _phrase("shares rise", 0.4, r"shares (?:rise|rose|jump|jumped|surge|surged|soar|soared|rally|rallied)"),
    _phrase(
        "shares fall", -0.4, r"shares (?:fall|fell|drop|dropped|slump|slumped|tumble|tumbled|plunge|plunged)"
    ),
)

_WORD = re.compile(r"[a-z0-9']+")
_CLAUSE_END = re.compile(r"[,;.:!?]")


@dataclass(frozen=True)
class Signal:
    symbol: str
    direction: Direction
    strength: float  # 0..1, tanh of the absolute lexicon score
    rationale: str  # the phrases that drove it: "beats estimates (+), raises guidance (+)"


@dataclass(frozen=True)
class _Hit:
    position: int
    label: str
    weight: float
    negated: bool


def _negated(text: str, start: int) -> bool:
    before = _CLAUSE_END.split(text[:start].lower())[-1]
    words = _WORD.findall(before)[-_NEGATION_WINDOW:]
    return any(w in _NEGATORS or w.endswith("n't") for w in words)


def _hits(text: str) -> list[_Hit]:
    found: list[_Hit] = []
    for phrase in _LEXICON:
        match = phrase.pattern.search(text)
        if match is None:
            continue
        negated = _negated(text, match.start())
        weight = -phrase.weight * _NEGATION_SCALE if negated else phrase.weight
        found.append(_Hit(match.start(), phrase.label, weight, negated))
    return sorted(found, key=lambda h: h.position)


def _rationale(hits: Sequence[_Hit]) -> str:
    if not hits:
        return "no lexicon phrases matched"
    parts = []
    for hit in hits:
        sign = "+" if hit.weight > 0 else "-"
        parts.append(f"{hit.label} [negated] ({sign})" if hit.negated else f"{hit.label} ({sign})")
    return ", ".join(parts)


def find_symbols(text: str, aliases: Mapping[str, str]) -> list[str]:
    """Symbols whose alias appears in ``text`` as whole words (any case), in order of first mention.

    Longer aliases are tried first, so "Umbrella Corp" is found as one name, not as "Umbrella".
    """
    spans: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for name in sorted(aliases, key=len, reverse=True):
        for match in _name_pattern(name).finditer(text):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            taken.append((match.start(), match.end()))
            spans.append((match.start(), aliases[name]))
    return _unique(symbol for _, symbol in sorted(spans))


@functools.lru_cache(maxsize=1024)  # the aliases are few and fixed: compiled once each
def _name_pattern(name: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(w) for w in name.split())
    return re.compile(rf"(?<![\w]){words}(?![\w])", re.IGNORECASE)


def _unique(symbols: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for symbol in symbols:
        if symbol and symbol not in seen:
            seen.append(symbol)
    return seen


def extract_signals(
    title: str,
    summary: str,
    symbols: Sequence[str],
    aliases: Mapping[str, str] | None = None,
) -> list[Signal]:
    """One :class:`Signal` per symbol of a news item (none when no symbol is tagged or named).

    ``symbols`` are the item's own tags; only when there are none are symbols looked for in the
    text through ``aliases`` (``None`` means :data:`DEFAULT_ALIASES`; pass ``{}`` for none).
    """
    tagged = _unique([s.strip().upper() for s in symbols])
    text = f"{title}\n{summary}"
    if not tagged:
        tagged = find_symbols(text, DEFAULT_ALIASES if aliases is None else aliases)
    # Title before summary: a phrase counts once, where it is first seen (see rule 1 above).
    hits = _hits(title)
    seen = {h.label for h in hits}
    hits += [h for h in _hits(summary) if h.label not in seen]
    score = sum(h.weight for h in hits)
    direction: Direction = "neutral"
    if score >= NEUTRAL_BAND:
        direction = "up"
    elif score <= -NEUTRAL_BAND:
        direction = "down"
    strength = round(math.tanh(abs(score)), 4)
    return [Signal(symbol, direction, strength, _rationale(hits)) for symbol in tagged]
