"""Search metadata for an article: title, description, keywords and URL slug, within the
lengths search engines display (a 60-character title, a 155-character description).

Keywords are the body's most frequent content words (stop words, numbers and words under three
letters left out), counted by stem so "sync", "syncs" and "synced" add up and shown in their
most frequent spelling. Given inverse document frequencies (:func:`kb_idf` over the knowledge
base), counts are weighted by them, so words every passage uses ("workspace", "settings") give
way to the ones that set this article apart.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from agents.content.factcheck import content_terms, split_sentences
from agents.offline.retriever import KnowledgeSource

__all__ = ["MAX_DESCRIPTION", "MAX_SLUG", "MAX_TITLE", "Seo", "kb_idf", "seo_metadata", "slugify"]

MAX_TITLE = 60
MAX_DESCRIPTION = 155
MAX_SLUG = 60
# Used when a title has no letters or digits left after transliteration (all CJK, say).
_FALLBACK_SLUG = "article"
# The title's words describe the article better than any body word, so they count double.
_TITLE_WEIGHT = 2

_WORD = re.compile(r"[a-z][a-z0-9]{2,}")
# Addresses are not keywords: "app.lumen.example", "privacy@lumen.example", "https://...".
_ADDRESS = re.compile(r"\S*(?:@|://|\.[a-z])\S*")
_DANGLING = " ,;:-/([{'\"&\u2013\u2014"  # with the en and em dash
# Words a cut title or description must not end on ("... about résumés and").
_TRAILING = frozenset(
    ["a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with"]
)
_NO_IDF: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True)
class Seo:
    title: str
    description: str
    keywords: tuple[str, ...]
    slug: str


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a space, with no punctuation left dangling."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    words = (head[: head.rfind(" ")] if " " in head else text[:limit]).split(" ")
    while len(words) > 1 and words[-1].lower().strip(_DANGLING + ".") in _TRAILING:
        words.pop()
    return " ".join(words).rstrip(_DANGLING + ".")


def _description(body: str) -> str:
    """Whole sentences from the start of the body while they fit; the first sentence cut short
    (and marked with an ellipsis) when even it does not."""
    lines = [line for line in body.splitlines() if not line.lstrip().startswith("#")]
    sentences = [s for line in lines for s in split_sentences(line)]
    picked = ""
    for sentence in sentences:
        joined = f"{picked} {sentence}".strip()
        if len(joined) > MAX_DESCRIPTION:
            break
        picked = joined
    if picked or not sentences:
        return picked
    return _cut(sentences[0], MAX_DESCRIPTION - 1) + "…"


def slugify(text: str, limit: int = MAX_SLUG) -> str:
    """Lower-case ASCII words joined by hyphens: accents dropped (NFKD), "Café & Co." -> "cafe-co"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > limit:
        slug = slug[: limit + 1]
        slug = slug[: slug.rfind("-")] if "-" in slug else slug[:limit]
    return slug.strip("-") or _FALLBACK_SLUG


def kb_idf(sources: Sequence[KnowledgeSource]) -> dict[str, float]:
    """Smoothed inverse document frequency of each stem over the sources' passages."""
    passages = [content_terms(f"{p.title}. {p.text}") for s in sources for p in s.passages]
    counts = Counter(term for terms in passages for term in terms)
    return {term: math.log((1 + len(passages)) / (1 + n)) + 1 for term, n in counts.items()}


def _keywords(title: str, body: str, limit: int, idf: Mapping[str, float]) -> tuple[str, ...]:
    weight: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = {}
    text = _ADDRESS.sub(" ", "\n".join([title] * _TITLE_WEIGHT + [body]).lower())
    for word in _WORD.findall(text):
        stems = content_terms(word)
        if not stems:
            continue  # a stop word
        (stem,) = stems
        weight[stem] += 1
        spellings.setdefault(stem, Counter())[word] += 1
    default_idf = max(idf.values(), default=1.0)  # a word the KB never uses is as rare as any
    ranked = sorted(weight, key=lambda s: (-weight[s] * idf.get(s, default_idf), s))
    words = [spellings[s].most_common(1)[0][0] for s in ranked]
    return tuple(dict.fromkeys(words))[:limit]


def seo_metadata(title: str, body: str, max_keywords: int = 6, idf: Mapping[str, float] = _NO_IDF) -> Seo:
    """Metadata for an article; ``body`` may start with its ``# Title`` line (it is skipped for
    the description). Without ``idf`` keywords are ranked by frequency alone."""
    title = " ".join(title.lstrip("# ").split())
    return Seo(
        title=_cut(title, MAX_TITLE),
        description=_description(body),
        keywords=_keywords(title, body, max_keywords, idf),
        slug=slugify(title),
    )
