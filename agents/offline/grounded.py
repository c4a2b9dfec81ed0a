"""The offline models that answer a grounded prompt: small deterministic programs, not LLMs,
served by the local provider (:mod:`agents.gateway.providers.local`) under these names:

- ``local-extractive`` composes a grounded answer from the numbered sources in the prompt:
  it picks the source sentences that share the most (stemmed) words with the question, in the
  order of the sources, and cites each as ``[n]``. It never writes a fact that is not in a source.
- ``local-reply`` writes a short templated acknowledgement for requests that need no documents
  (feedback, cancellations), naming the intent given in the prompt.

Both read the same prompt a hosted model would get (:func:`grounded_prompt`), so switching a
stage between ``local`` and a real provider is a change of ``models.yaml``, nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import Stemmer

__all__ = [
    "GROUNDED_MODELS",
    "Source",
    "answer_extractive",
    "answer_reply",
    "compose_extractive",
    "grounded_prompt",
]

SYSTEM = (
    "You are the support assistant of Lumen. Answer the customer's question using only the "
    "numbered sources; cite each fact with its number in brackets, like [2]. If the sources do "
    "not answer the question, say so and offer to hand over to a human agent. Never repeat "
    "secrets or personal data."
)


@dataclass(frozen=True)
class Source:
    title: str
    url: str
    text: str


def grounded_prompt(question: str, intent: str, sources: Sequence[Source]) -> list[dict[str, str]]:
    """The user message a stage sends: intent, numbered sources, then the question."""
    lines = [f"Intent: {intent}", "Sources:"]
    for n, s in enumerate(sources, 1):
        lines += [f"[{n}] {s.title} ({s.url})", s.text]
    if not sources:
        lines.append("(none)")
    lines += ["Question:", question]
    return [{"role": "user", "content": "\n".join(lines)}]


_SOURCE_HEAD = re.compile(r"^\[(\d+)\] (.*) \((\S+)\)$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "there",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "yours",
        "please",
        "thanks",
        "thank",
        "hi",
        "hello",
    ]
)
_STEM = Stemmer.Stemmer("english")


def _parse(prompt: str) -> tuple[str, str, list[str]]:
    intent, question, sources = "", "", []
    lines = prompt.splitlines()
    in_question = False
    for i, line in enumerate(lines):
        if in_question:
            question += ("\n" if question else "") + line
        elif line.startswith("Intent: "):
            intent = line[len("Intent: ") :]
        elif line == "Question:":
            in_question = True
        elif _SOURCE_HEAD.match(line) and i + 1 < len(lines):
            sources.append(lines[i + 1])
    return intent, question, sources


def _terms(text: str) -> set[str]:
    return set(_STEM.stemWords([w for w in _WORD.findall(text.lower()) if w not in _STOP]))


def _opening(question: str) -> str:
    first = _SENTENCE.split(question.strip(), maxsplit=1)[0]
    return first if len(first) <= 90 else first[:87].rstrip() + "..."


def compose_extractive(question: str, sources: Sequence[str], max_sentences: int = 3) -> str:
    """The best-matching source sentences, each cited; an honest hand-over when none match."""
    wanted = _terms(question)
    scored: list[tuple[int, int, int, str]] = []  # (-overlap, source, position, sentence)
    for n, text in enumerate(sources, 1):
        for pos, sentence in enumerate(_SENTENCE.split(text.strip())):
            overlap = len(wanted & _terms(sentence))
            if overlap:
                scored.append((-overlap, n, pos, sentence))
    best = sorted(scored)[:max_sentences]
    opening = f'About "{_opening(question)}":'
    if not best:
        return (
            f"{opening} I could not find this in our documentation, so I am handing your request "
            "to a support agent who will reply by email."
        )
    # Keep the chosen sentences in reading order so the answer flows like the docs do.
    body = " ".join(f"{sentence} [{n}]" for _, n, _, sentence in sorted(best, key=lambda s: (s[1], s[2])))
    return f"{opening} {body}"


_REPLIES = {
    "feedback": (
        "Thank you for taking the time to write to us. I have passed your message to the Lumen "
        "product team, who read every piece of feedback, and we will let you know when it shapes "
        "a change."
    ),
    "cancellation": (
        "I am sorry to see you go. I have forwarded your request to our billing team, who will "
        "confirm the cancellation and its effective date by email; you keep access until then."
    ),
}


def compose_reply(question: str, intent: str) -> str:
    reply = _REPLIES.get(
        intent, "Thanks for reaching out. A support agent will look into this and reply by email."
    )
    return f'About "{_opening(question)}": {reply}'


def answer_extractive(prompt: str) -> str:
    """``local-extractive``: the prompt as :func:`grounded_prompt` wrote it -> a cited answer."""
    _intent, question, sources = _parse(prompt)
    return compose_extractive(question or prompt, sources)


def answer_reply(prompt: str) -> str:
    """``local-reply``: the prompt -> a templated acknowledgement naming its intent."""
    intent, question, _sources = _parse(prompt)
    return compose_reply(question or prompt, intent)


GROUNDED_MODELS: Mapping[str, Callable[[str], str]] = {
    "local-extractive": answer_extractive,
    "local-reply": answer_reply,
}
