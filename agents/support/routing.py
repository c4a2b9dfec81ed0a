"""The support pipeline's decisions, free of I/O: where a ticket goes, what the budget allows,
which sources an answer cites, and what a degraded answer says.

Routes (topic names are the public contract):

- ``rejected``: the input screen blocks it (prompt injection, abuse) -> ``support.rejected``;
- ``cache``: the same question (or, by the semantic cache, the same question put another way,
  for the same tenant and intent) was answered and screened before -> ``support.responses``;
- ``direct``: feedback and cancellations, confidently classified -> ``support.direct`` (small model);
- ``rag``: everything else, including uncertain classifications -> ``support.rag``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DIRECT_INTENTS",
    "Budget",
    "RetrievalPlan",
    "RouteDecision",
    "answer_key",
    "cited_numbers",
    "degraded_answer",
    "plan_retrieval",
    "route_ticket",
]

Route = Literal["rag", "direct", "cache", "rejected"]

DIRECT_INTENTS = frozenset({"feedback", "cancellation"})


@dataclass(frozen=True)
class RouteDecision:
    route: Route
    reason: str


def route_ticket(
    intent: str,
    confidence: float,
    *,
    blocked_because: Sequence[str] = (),
    cached: bool = False,
    direct_at: float = 0.5,
) -> RouteDecision:
    if blocked_because:
        return RouteDecision("rejected", "; ".join(blocked_because))
    if cached:
        return RouteDecision("cache", "answered and screened before")
    if intent in DIRECT_INTENTS and confidence >= direct_at:
        return RouteDecision("direct", f"{intent} (p={confidence:.2f}) needs no documents")
    if intent in DIRECT_INTENTS:
        return RouteDecision("rag", f"{intent} but unsure (p={confidence:.2f} < {direct_at}): documents help")
    return RouteDecision("rag", f"{intent} (p={confidence:.2f}) needs documents")


def answer_key(body: str, scope: str = "support") -> str:
    """The answer cache's key: the question with case and spacing normalised, within a scope
    (answers made under one configuration are not served under another)."""
    normal = " ".join(body.lower().split())
    return f"{scope}:" + hashlib.sha256(normal.encode()).hexdigest()


@dataclass(frozen=True)
class Budget:
    """What is left of a request's latency budget, in seconds (None: no deadline)."""

    remaining_s: float | None

    def allows(self, seconds: float) -> bool:
        return self.remaining_s is None or self.remaining_s >= seconds

    @property
    def spent(self) -> bool:
        return self.remaining_s is not None and self.remaining_s <= 0

    def cap(self, seconds: float, reserve_s: float = 0.0) -> float:
        """A timeout no longer than what is left after keeping ``reserve_s`` for later stages."""
        if self.remaining_s is None:
            return seconds
        return max(0.0, min(seconds, self.remaining_s - reserve_s))


@dataclass(frozen=True)
class RetrievalPlan:
    mode: Literal["hybrid", "bm25"]
    timeout_s: float
    reason: str = ""


def plan_retrieval(
    budget: Budget,
    *,
    timeout_s: float = 1.0,
    dense_needs_s: float = 2.0,
    reserve_s: float = 1.0,
) -> RetrievalPlan:
    """Hybrid search (BM25 and dense, fused) when time allows; with less than ``dense_needs_s``
    left, BM25 alone: no embedding call, in process, well under a millisecond (generating and
    screening still need their share of the budget)."""
    timeout = budget.cap(timeout_s, reserve_s)
    if budget.allows(dense_needs_s):
        return RetrievalPlan("hybrid", timeout)
    left = f"{budget.remaining_s:.2f}s" if budget.remaining_s is not None else "?"
    return RetrievalPlan(
        "bm25", timeout, f"bm25 only: {left} left, the dense half needs {dense_needs_s:.1f}s"
    )


_CITE = re.compile(r"\[(\d+)\]")


def cited_numbers(answer: str, sources: int) -> list[int]:
    """The source numbers an answer cites, in first-cited order; out-of-range markers dropped."""
    seen: list[int] = []
    for match in _CITE.finditer(answer):
        n = int(match.group(1))
        if 1 <= n <= sources and n not in seen:
            seen.append(n)
    return seen


def degraded_answer(articles: Sequence[tuple[str, str]]) -> str:
    """What a customer reads when no full answer could be drafted in time: the best-matching
    articles when retrieval found some (cited), and a human follow-up either way. The reason
    is recorded on the response's steps, not shown to the customer."""
    text = "Thanks for your message. We could not prepare a complete answer right away"
    if articles:
        links = "; ".join(f"{title} ({url}) [{n}]" for n, (title, url) in enumerate(articles, 1))
        return f"{text}. These articles look most relevant: {links}. A support agent will follow up by email."
    return f"{text}, so a support agent will follow up by email."
