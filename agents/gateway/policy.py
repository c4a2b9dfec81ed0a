"""What a call through the gateway may use: which routes in which order, how long each call may
take, how much money is left (:class:`CostCap`) and how much time (a deadline on the gateway's
clock, read with :func:`time_left`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agents.gateway.backoff import Backoff

__all__ = ["CallPolicy", "CostCap", "Route", "time_left"]


@dataclass(frozen=True)
class Route:
    provider: str
    model: str
    context_window: int = 8192
    # The least budget this route needs to be worth trying (a large model's usual latency).
    # With less left, the gateway skips to a faster route and records why.
    min_budget_s: float = 0.0


@dataclass(frozen=True)
class CostCap:
    """What a request may still spend: ``limit_usd`` in all, ``spent_usd`` of it already
    (earlier stages; the ``podium-cost-usd`` header). A route whose worst case (the prompt plus
    ``max_tokens`` of output at its price) does not fit is skipped, and the decision recorded."""

    limit_usd: float
    spent_usd: float = 0.0


@dataclass(frozen=True)
class CallPolicy:
    chain: tuple[Route, ...]
    backoff: Backoff = field(default_factory=Backoff)
    timeout_s: float = 30.0
    # What the chain's models do: "chat" (complete, stream) or "embeddings" (embed).
    operation: Literal["chat", "embeddings"] = "chat"
    dimensions: int | None = None  # embeddings: the vectors' length, asked of every route


def time_left(deadline: float | None, now: float) -> float | None:
    """Seconds until ``deadline`` (negative once it has passed), or None without a deadline."""
    return None if deadline is None else deadline - now
