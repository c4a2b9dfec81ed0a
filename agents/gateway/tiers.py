"""Routing by complexity: the cheapest adequate model tier for each request, decided by rules
in well under a millisecond, and the saving against always using the largest tier.

The score (0..1) rises with length, several questions or parts, reasoning words (why, compare,
explain, step by step, prove, trade-off), code, and an intent the classifier marks as hard.
Tiers are ordered cheapest first; a request goes to the first tier whose ``max_score`` covers it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from agents.gateway.pricing import PriceTable, Usage

__all__ = ["Tier", "TierLedger", "choose_tier", "complexity_score"]

_REASONING = re.compile(
    r"\b(why|explain|compare|comparison|trade-?offs?|step by step|prove|analy[sz]e|design|debug|"
    r"root cause|reason(ing)?|evaluate|pros and cons|implications?)\b",
    re.IGNORECASE,
)
_CODE = re.compile(r"```|\bdef |\bclass |\bSELECT\b|;\s*$|\{\s*\"|</?\w+>", re.MULTILINE)
_PARTS = re.compile(r"^\s*(\d+[.)]|[-*])\s+", re.MULTILINE)
HARD_INTENTS = frozenset({"technical", "legal", "billing_dispute", "complaint"})


def complexity_score(text: str, intent: str | None = None) -> float:
    words = len(text.split())
    score = min(words / 400, 0.35)
    score += min(text.count("?"), 3) * 0.05
    score += min(len(_REASONING.findall(text)), 3) * 0.12
    score += 0.15 if _CODE.search(text) else 0.0
    score += min(len(_PARTS.findall(text)), 4) * 0.03
    score += 0.15 if intent in HARD_INTENTS else 0.0
    return round(min(score, 1.0), 4)


@dataclass(frozen=True)
class Tier:
    name: str
    model: str
    max_score: float  # the hardest request this tier is adequate for


class _Scored(Protocol):
    @property
    def max_score(self) -> float: ...


T = TypeVar("T", bound=_Scored)


def choose_tier(score: float, tiers: Sequence[T]) -> T:
    """The first (cheapest) tier adequate for ``score``; the last (largest) otherwise."""
    for tier in tiers:
        if score <= tier.max_score:
            return tier
    return tiers[-1]


@dataclass
class TierLedger:
    """Share of requests per tier, and what they cost against always using ``largest``."""

    prices: PriceTable
    largest: str
    counts: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    cost_if_largest_usd: float = 0.0

    def record(self, tier: Tier, usage: Usage, cost_usd: float) -> None:
        self.counts[tier.name] = self.counts.get(tier.name, 0) + 1
        self.cost_usd += cost_usd
        self.cost_if_largest_usd += self.prices.cost(self.largest, usage)

    def shares(self) -> dict[str, float]:
        total = sum(self.counts.values()) or 1
        return {name: count / total for name, count in self.counts.items()}

    @property
    def saving_usd(self) -> float:
        return self.cost_if_largest_usd - self.cost_usd
