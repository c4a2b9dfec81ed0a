"""Local models behind the provider interface: the offline default when no provider is set up.

These are small deterministic programs, not LLMs, named for what they do:

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
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import Stemmer

from agents.gateway.errors import RequestRejected
from agents.gateway.pricing import Usage
from agents.gateway.sse import estimate_tokens
from agents.providers import ChatRequest, Completion, StreamPiece

__all__ = ["LOCAL_MODELS", "LocalProvider", "Source", "compose_extractive", "grounded_prompt"]

LOCAL_MODELS = ("local-extractive", "local-reply", "local-writer", "local-lexicon", "local-summary")

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


class LocalProvider:
    """The local models as a provider: no network, no cost, deterministic."""

    def __init__(self, name: str = "local") -> None:
        self.name = name

    def _answer(self, request: ChatRequest) -> str:
        prompt = "\n".join(str(m.get("content", "")) for m in request.messages)
        intent, question, sources = _parse(prompt)
        if request.model == "local-extractive":
            return compose_extractive(question or prompt, sources)
        if request.model == "local-reply":
            return compose_reply(question or prompt, intent)
        if request.model == "local-writer":
            from agents.content.writer import write_from_prompt  # the content pipeline's writer

            return write_from_prompt(prompt)
        if request.model in ("local-lexicon", "local-summary"):
            from agents.market.prompts import answer_signals, answer_summary  # the market pipeline's

            return answer_signals(prompt) if request.model == "local-lexicon" else answer_summary(prompt)
        raise RequestRejected(f"the local provider has no model '{request.model}' (it has {LOCAL_MODELS})")

    async def complete(self, request: ChatRequest, timeout_s: float) -> Completion:
        started = time.perf_counter()
        text = self._answer(request)
        usage = Usage(request.prompt_tokens_estimate(), estimate_tokens(text))
        return Completion(text, request.model, "stop", usage, self.name, time.perf_counter() - started)

    async def stream(self, request: ChatRequest, timeout_s: float) -> AsyncIterator[StreamPiece]:
        completion = await self.complete(request, timeout_s)
        words = completion.text.split(" ")
        for i, word in enumerate(words):
            yield StreamPiece(text=word if i == 0 else " " + word)
        yield StreamPiece(final=completion)

    async def aclose(self) -> None:
        return None
