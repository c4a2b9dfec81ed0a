"""Whether two requests may share an answer, beyond their embeddings being close: pure, no I/O.

Embeddings of a short question are dominated by its wording, so "cancel my subscription" and
"cancel an invoice", or "charged $49" and "charged $99", sit closer than many true repeats do
(the false hits of LiteLLM #12234, #29086). :func:`disagreement` names the first thing that must
agree and does not, in this order:

1. numbers: digits, amounts, number words and ordinals ("twice", "second"), months and weekdays;
2. negation: not, no, never, n't, without, cannot, ... on one side only;
3. named things: ids (A-1001, INV-2024-0031, 2FA), emails, URLs, quoted strings, acronyms (SSO,
   PDF), capitalised words not at a sentence start (plan and product names) and known product
   and format names in any case (okta, csv); a name on one side agrees with the same word,
   uncapitalised, on the other;
4. direction: "X instead of Y", "X rather than Y" and "from X to Y" read the other way round
   ("billed monthly instead of yearly" against "yearly instead of monthly");
5. subject: the content words (stems after stop words). Every content word of each side needs a
   counterpart on the other: the same stem or, with ``similar`` given, a word whose similarity
   reaches ``word_threshold`` (the embedding model's word vectors, see
   :func:`word_similarity`). A word on one side only is a disagreement too: a missed repeat
   costs one model call, a false hit serves a wrong answer.

What it does not see: word order beyond those three constructions, and meaning that no single
word carries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import Stemmer

__all__ = ["Terms", "WordSimilarity", "disagreement", "terms", "terms_disagreement"]

WordSimilarity = Callable[[str, str], float]

_URL = re.compile(r"\b(?:https?://|www\.)[^\s,;!?)\"']+", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|(?<![\w'])'([^']+)'(?![\w'])")
_MONEY = re.compile(
    r"[$€£]\s?(\d[\d,]*(?:\.\d+)?)|(\d[\d,]*(?:\.\d+)?)\s?(?:usd|eur|gbp|dollars?|euros?)\b", re.I
)
# Letters and digits in one token (A-1001, INV-2024-0031, 2FA, SHA256, v2): an identifier.
_ID = re.compile(r"\b(?:[A-Za-z]+[-_]?\d[\w-]*|\d+[-_]?[A-Za-z][\w-]*)\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A word (with its apostrophe, straight or typographic: "can't", "doesn\u2019t") or a sentence end.
_TOKEN = re.compile("[A-Za-z]+(?:['\u2019][A-Za-z]+)?|[.!?]")

_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
    "once": "1", "twice": "2", "thrice": "3", "double": "2", "triple": "3",
    "dozen": "12", "half": "0.5", "first": "1st", "second": "2nd", "third": "3rd",
    "fourth": "4th", "fifth": "5th", "tenth": "10th",
}  # fmt: skip
_DATES = {
    "january", "february", "march", "april", "june", "july", "august", "september", "october",
    "november", "december", "jan", "feb", "aug", "sept", "oct", "nov", "dec", "monday", "tuesday",
    "wednesday", "thursday", "friday", "saturday", "sunday", "today", "yesterday", "tomorrow",
}  # fmt: skip
_NEGATIONS = {
    "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "without",
    "cannot", "cant", "wont", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent",
    "havent", "hasnt", "hadnt", "shouldnt", "wouldnt", "couldnt", "aint", "unable",
}  # fmt: skip
# Products, formats and protocols users name in lower case as often as not.
_KNOWN_NAMES = {
    "csv", "pdf", "png", "xlsx", "excel", "json", "slack", "teams", "okta", "azure", "google",
    "bigquery", "snowflake", "redshift", "postgres", "mysql", "salesforce", "hubspot", "stripe",
    "paypal", "saml", "scim", "sms", "sso", "api", "ios", "android", "zapier", "looker", "tableau",
}  # fmt: skip
# English function words and what support questions wrap around their subject.
_STOP = {
    "a", "an", "the", "i", "me", "my", "mine", "myself", "we", "our", "ours", "us", "you", "your",
    "it", "its", "this", "that", "these", "those", "there", "here", "is", "am", "are", "was",
    "were", "be", "been", "being", "do", "does", "did", "doing", "done", "have", "has", "had",
    "having", "can", "could", "would", "should", "will", "shall", "may", "might", "must", "how",
    "what", "which", "whom", "whose", "why", "when", "where", "to", "of", "in", "on", "at", "by",
    "for", "from", "with", "about", "into", "onto", "as", "so", "and", "or", "but", "if", "then",
    "than", "too", "very", "just", "also", "any", "some", "all", "every", "each", "get", "got",
    "getting", "please", "pls", "hi", "hello", "hey", "thanks", "thank", "want", "wanted",
    "need", "needs", "like", "way", "possible", "able", "try", "trying", "know", "tell", "help",
    "ok", "okay", "really", "still", "again", "ever", "anymore", "now", "currently", "many",
    "much", "s", "t", "d", "ll", "m", "re", "ve", "im", "id", "ive", "whats", "hows", "go",
    "let", "lets", "sure", "up", "more", "extra", "additional", "someone", "somebody",
    "anyone", "anybody", "instead", "rather",
}  # fmt: skip
_CONTRACTIONS = {"can't": "can", "won't": "will", "shan't": "shall"}

_stemmer = Stemmer.Stemmer("english")

_FILLER = r"(?:(?:the|a|an|my|our|your)\s+)?"
# (what is left, what is taken): "from X to Y", "Y instead of X", "Y rather than X".
_FROM_TO = re.compile(rf"\bfrom\s+{_FILLER}([a-z0-9]+)(?:\s+plan)?\s+to\s+{_FILLER}([a-z0-9]+)")
_INSTEAD = re.compile(r"\b([a-z0-9]+)\s+(?:instead\s+of|rather\s+than)\s+" + _FILLER + r"([a-z0-9]+)")


def _directions(text: str) -> frozenset[tuple[str, str]]:
    lower = text.lower()
    found = {(m[1], m[2]) for m in _FROM_TO.finditer(lower)}
    found |= {(m[2], m[1]) for m in _INSTEAD.finditer(lower)}
    return frozenset((_stemmer.stemWord(x), _stemmer.stemWord(y)) for x, y in found)


@dataclass(frozen=True)
class Terms:
    """What of a request must agree with another's for the two to share an answer."""

    numbers: frozenset[str]
    negated: bool
    names: frozenset[str]  # lower case
    words: dict[str, str]  # content stem -> the word as written (lower case)
    plain: frozenset[str]  # every lower-case word, to match a name written uncapitalised
    directions: frozenset[tuple[str, str]] = frozenset()  # (from, to) stems


def _number(text: str) -> str:
    value = text.replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value.lstrip("0") or "0"


def terms(text: str) -> Terms:
    directions = _directions(text)
    numbers: set[str] = set()
    names: set[str] = set()

    def take(pattern: re.Pattern[str], into: set[str], keep: Callable[[re.Match[str]], str]) -> None:
        nonlocal text
        for match in pattern.finditer(text):
            into.add(keep(match))
        text = pattern.sub(" , ", text)

    take(_URL, names, lambda m: m[0].lower().rstrip("/."))
    take(_EMAIL, names, lambda m: m[0].lower())
    take(_QUOTED, names, lambda m: " ".join((m[1] or m[2] or m[3]).lower().split()))
    take(_MONEY, numbers, lambda m: _number(m[1] or m[2]))
    take(_ID, names, lambda m: m[0].lower())
    take(_NUMBER, numbers, lambda m: _number(m[0]))
    negated = False
    words: dict[str, str] = {}
    plain: set[str] = set()
    start = True
    for match in _TOKEN.finditer(text):
        token = match[0]
        if token in ".!?":
            start = True
            continue
        lower = token.lower().replace("\u2019", "'")
        at_start, start = start, False
        if lower.endswith("n't"):
            negated = True
            lower = _CONTRACTIONS.get(lower, lower[:-3])
        bare = lower.replace("'", "")
        if bare in _NEGATIONS:
            negated = True
            continue
        if bare in _NUMBER_WORDS:
            numbers.add(_NUMBER_WORDS[bare])
            continue
        if bare in _DATES or (token == "May" and not at_start):
            numbers.add(bare)
            continue
        plain.add(bare)
        capitalised = token[0].isupper() and token != "I" and not lower.startswith("i'")
        if bare in _KNOWN_NAMES or (len(token) > 1 and token.isupper()) or (capitalised and not at_start):
            names.add(bare)
            continue
        if bare in _STOP or len(bare) < 2:
            continue
        words.setdefault(_stemmer.stemWord(bare), bare)
    return Terms(frozenset(numbers), negated, frozenset(names), words, frozenset(plain), directions)


def _listed(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "nothing"


def _unmatched(
    mine: dict[str, str], theirs: dict[str, str], similar: WordSimilarity | None, threshold: float
) -> list[str]:
    left = []
    for stem, word in mine.items():
        if stem in theirs:
            continue
        if similar is not None and any(similar(word, other) >= threshold for other in theirs.values()):
            continue
        left.append(word)
    return left


def terms_disagreement(
    a: Terms, b: Terms, similar: WordSimilarity | None = None, word_threshold: float = 0.55
) -> str | None:
    """:func:`disagreement` on terms already taken (a cache takes a stored request's once)."""
    if a.numbers != b.numbers:
        return f"numbers differ: {_listed(a.numbers - b.numbers)} vs {_listed(b.numbers - a.numbers)}"
    if a.negated != b.negated:
        return "negation differs"
    only_a = {n for n in a.names - b.names if n not in b.plain}
    only_b = {n for n in b.names - a.names if n not in a.plain}
    if only_a or only_b:
        return f"named things differ: {_listed(only_a)} vs {_listed(only_b)}"
    reversed_ = {(y, x) for x, y in b.directions} & a.directions
    if reversed_:
        x, y = min(reversed_)
        return f"direction differs: {x} to {y} vs {y} to {x}"
    # A name on one side written as a plain word on the other is that word on both.
    words_a = {k: v for k, v in a.words.items() if v not in b.names}
    words_b = {k: v for k, v in b.words.items() if v not in a.names}
    left_a = _unmatched(words_a, words_b, similar, word_threshold)
    left_b = _unmatched(words_b, words_a, similar, word_threshold)
    if left_a or left_b:
        return f"subject differs: {_listed(left_a)} vs {_listed(left_b)}"
    return None


def disagreement(
    a: str, b: str, similar: WordSimilarity | None = None, word_threshold: float = 0.55
) -> str | None:
    """None when the two requests may share an answer, else why not ("numbers differ: 3 vs 5",
    "negation differs", "named things differ: a-1001 vs a-1006", "subject differs:
    subscription vs invoice"). ``similar``: a word similarity (see the module docstring)."""
    return terms_disagreement(terms(a), terms(b), similar, word_threshold)
