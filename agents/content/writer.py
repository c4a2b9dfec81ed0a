"""The ``local-writer`` model: drafts an article from a brief, offline and deterministically.

It is a small program, not an LLM. Like ``local-extractive`` (agents.offline.grounded) it reads the very
prompt a hosted model would get (:func:`article_prompt`), so a stage switches between the two by
configuration alone. What it writes:

1. a title line, ``# <Topic>``;
2. a paragraph per point: the point as a sentence, its facts kept verbatim (the writer repeats
   what the brief claims, right or wrong, so a false point becomes a false claim for the fact
   checker to catch), then the source sentence or clause that shares the most content words
   with the point and says something not already written;
3. each "must include" line as its own paragraph, verbatim, in every draft.

Critique lines (cumulative: pass every round's lines, since the writer keeps no state) revise
only what the writer wrote itself, never a "must include" line:

- ``factcheck: contradicted: <claim> | evidence: <sentence>``: the claim becomes the evidence;
- ``factcheck: unverifiable: <claim>``: the claim is dropped;
- ``style: <rule>: <excerpt> | replace "<old>" with "<new>"``: the phrase is replaced everywhere;
- ``style: long-sentence: <excerpt> | ... at most <n> words ...``: longer sentences are split.

The audience is part of the prompt for hosted models; the local writer does not vary its tone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agents.content.factcheck import FACT_PREFIX, MIN_CLAIM_TERMS, content_terms, split_sentences
from agents.content.style import STYLE_PREFIX, phrase_pattern
from agents.offline.grounded import Source

__all__ = [
    "MODEL",
    "WRITER_MODELS",
    "ArticleAsk",
    "article_prompt",
    "parse_article_prompt",
    "write_article",
    "write_from_prompt",
]

MODEL = "local-writer"
# A source sentence supports a point only if it shares this many content words with it.
SUPPORT_MIN_SHARED = 2

INSTRUCTIONS = (
    "Write a short article for the Lumen blog on the topic below, for the audience named. Make "
    "one paragraph per point, backed by the numbered sources; state no fact that is not in a point "
    "or a source. Include every 'Must include' line verbatim. Apply every critique line."
)


@dataclass(frozen=True)
class ArticleAsk:
    topic: str
    audience: str
    points: tuple[str, ...]
    must_include: tuple[str, ...]
    sources: tuple[Source, ...]
    critique: tuple[str, ...]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _items(values: Sequence[str]) -> list[str]:
    return [f"- {_one_line(v)}" for v in values] or ["(none)"]


def article_prompt(
    topic: str,
    audience: str,
    points: Sequence[str],
    must_include: Sequence[str],
    sources: Sequence[Source],
    critique: Sequence[str],
) -> list[dict[str, str]]:
    """One user message with labelled sections; every value is kept on one line."""
    lines = [INSTRUCTIONS, f"Topic: {_one_line(topic)}", f"Audience: {_one_line(audience)}"]
    lines += ["Points:", *_items(points), "Must include:", *_items(must_include), "Sources:"]
    for n, s in enumerate(sources, 1):
        lines += [f"[{n}] {_one_line(s.title)} ({s.url})", _one_line(s.text)]
    if not sources:
        lines.append("(none)")
    lines += ["Critique:", *_items(critique)]
    return [{"role": "user", "content": "\n".join(lines)}]


_SOURCE_HEAD = re.compile(r"^\[(\d+)\] (.*) \((\S+)\)$")
_LISTS = {"Points:": "points", "Must include:": "must_include", "Critique:": "critique"}


def parse_article_prompt(text: str) -> ArticleAsk:
    """Read :func:`article_prompt`'s message back; lines outside the sections are ignored."""
    topic = audience = section = ""
    lists: dict[str, list[str]] = {name: [] for name in _LISTS.values()}
    sources: list[Source] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        head = _SOURCE_HEAD.match(line)
        if line.startswith("Topic: "):
            topic, section = line.removeprefix("Topic: "), ""
        elif line.startswith("Audience: "):
            audience, section = line.removeprefix("Audience: "), ""
        elif line in _LISTS or line == "Sources:":
            section = _LISTS.get(line, "sources")
        elif section == "sources" and head and i + 1 < len(lines):
            sources.append(Source(head[2], head[3], lines[i + 1]))
            i += 1  # the next line is this source's text, whatever it looks like
        elif section in lists and line.startswith("- "):
            lists[section].append(line.removeprefix("- "))
        i += 1
    points, must, critique = (tuple(lists[k]) for k in ("points", "must_include", "critique"))
    return ArticleAsk(topic, audience, points, must, tuple(sources), critique)


@dataclass(frozen=True)
class _Revision:
    """What the critique asks for, keyed by the normalised sentence it names."""

    replace: Mapping[str, str]  # contradicted claim -> evidence
    drop: frozenset[str]  # unverifiable claims
    phrases: tuple[tuple[str, str], ...]  # style: old -> new, in critique order
    max_words: int | None  # the longest sentence the style check accepts, when it said


_FACT = re.compile(rf"^{re.escape(FACT_PREFIX)}(contradicted|unverifiable): (.*?)(?: \| evidence: (.*))?$")
_REPLACE = re.compile(r'replace "(.+)" with "(.*)"$')
_LIMIT = re.compile(r"at most (\d+) words")


def _revision(critique: Sequence[str]) -> _Revision:
    replace: dict[str, str] = {}
    drop: set[str] = set()
    phrases: dict[tuple[str, str], None] = {}
    limits: list[int] = []
    for line in critique:
        if fact := _FACT.match(line):
            if fact[1] == "contradicted" and fact[3]:
                replace[_one_line(fact[2])] = fact[3]
            elif fact[1] == "unverifiable":
                drop.add(_one_line(fact[2]))
        elif line.startswith(STYLE_PREFIX) and " | " in line:
            advice = line.rsplit(" | ", 1)[1]
            if found := _REPLACE.match(advice):
                phrases[(found[1], found[2])] = None
            elif limit := _LIMIT.search(advice):
                limits.append(int(limit[1]))
    return _Revision(replace, frozenset(drop), tuple(phrases), min(limits, default=None))


def _capital(sentence: str) -> str:
    """Upper-case the first letter unless the first word has its own casing ("iOS", "lum_live_")."""
    first = sentence.split(" ", 1)[0]
    return sentence[:1].upper() + sentence[1:] if first.islower() and first.isalpha() else sentence


def _as_sentence(text: str) -> str:
    text = _capital(_one_line(text).strip(" ,;:"))
    return text if text.endswith((".", "!", "?")) else text + "."


def _rephrase(text: str, phrases: Sequence[tuple[str, str]]) -> str:
    for old, new in phrases:
        if any(c.isalnum() for c in old):
            text = phrase_pattern(old).sub(new.replace("\\", "\\\\"), text)  # "\\1" stays literal
        else:  # punctuation: "!" -> "."
            text = re.sub(r"\.{2,}", ".", text.replace(old, new))
    return _capital(re.sub(r"\s+([,.;:])", r"\1", _one_line(text)))


# Where a long sentence may be cut, best first: after a semicolon or colon, before "and", "but"
# or "so" after a comma, before any "and", after any comma. Never before "because" or "which":
# what follows them does not stand alone.
_CUTS = tuple(
    re.compile(p) for p in (r"(?<=;) ", r"(?<=:) ", r"(?<=,) (?=(?:and|but|so) )", r" (?=and )", r"(?<=,) ")
)


def _split_long(sentence: str, max_words: int | None) -> list[str]:
    if max_words is None or len(sentence.split()) <= max_words:
        return [sentence]
    middle = len(sentence) // 2
    for cut in _CUTS:
        spots = [m.start() for m in cut.finditer(sentence)]
        spots = [s for s in spots if min(len(sentence[:s].split()), len(sentence[s:].split())) >= 3]
        if spots:
            at = min(spots, key=lambda s: abs(s - middle))
            head = _as_sentence(sentence[:at])
            tail = _as_sentence(re.sub(r"^and ", "", sentence[at:].strip()))
            return _split_long(head, max_words) + _split_long(tail, max_words)
    return [sentence]  # nowhere to cut without breaking a phrase: leave it to the reader


def _fact_fix(sentence: str, rev: _Revision) -> str | None:
    key = _one_line(sentence)
    if key in rev.drop:
        return None
    return rev.replace.get(key, sentence)


def _revise(sentence: str, rev: _Revision) -> list[str]:
    """Facts first (the critique names the sentence as it was written), then wording, then
    length; the pieces of a split sentence are checked against the critique again."""
    fixed = _fact_fix(sentence, rev)
    if fixed is None:
        return []
    pieces = (_fact_fix(p, rev) for p in _split_long(_rephrase(fixed, rev.phrases), rev.max_words))
    return [_rephrase(p, rev.phrases) for p in pieces if p is not None]


def _candidates(sources: Sequence[Source]) -> list[list[str]]:
    """Per source, its sentences cut at semicolons into clauses that stand alone."""
    found = []
    for source in sources:
        clauses = [c for sentence in split_sentences(source.text) for c in sentence.split("; ")]
        found.append([_as_sentence(c) for c in clauses if len(content_terms(c)) >= MIN_CLAIM_TERMS])
    return found


def _support(
    point: str, candidates: Sequence[Sequence[str]], written: Sequence[frozenset[str]]
) -> str | None:
    """From the source closest to the point (the one with the sentence sharing most content words
    with it), the sentence sharing most that says something new: its words are not all within one
    sentence already written. Staying in that source keeps a stray sentence elsewhere, sharing
    only "plan" and "Enterprise", from standing in as support. The first wins a tie."""
    wanted = content_terms(point)
    scored = [[(len(wanted & content_terms(c)), c) for c in source] for source in candidates]
    if not scored:
        return None
    closest = max(scored, key=lambda source: max((n for n, _ in source), default=0))
    fresh = [
        (n, c)
        for n, c in closest
        if n >= SUPPORT_MIN_SHARED and not any(content_terms(c) <= w for w in written)
    ]
    return max(fresh, key=lambda nc: nc[0])[1] if fresh else None


def write_article(ask: ArticleAsk) -> str:
    rev = _revision(ask.critique)
    candidates = _candidates(ask.sources)
    written: list[frozenset[str]] = []
    paragraphs = []
    for point in ask.points:
        sentences = [s for unit in split_sentences(_as_sentence(point)) for s in _revise(unit, rev)]
        written += [content_terms(s) for s in sentences]
        support = _support(point, candidates, written)
        if support is not None:
            extra = _revise(support, rev)
            sentences += extra
            written += [content_terms(s) for s in extra]
        if sentences:
            paragraphs.append(" ".join(sentences))
    paragraphs += [_one_line(line) for line in ask.must_include]
    title = "# " + _rephrase(_capital(_one_line(ask.topic)), rev.phrases)
    return "\n\n".join([title, *paragraphs]) + "\n"


def write_from_prompt(prompt: str) -> str:
    """The model's whole turn: read the prompt, write the article."""
    return write_article(parse_article_prompt(prompt))


# What the local provider serves for this pipeline (registered where the gateway is built).
WRITER_MODELS = {"local-writer": write_from_prompt}
