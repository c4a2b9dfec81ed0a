"""What to do with a record whose handler failed: decided without I/O.

A failed run ends in exactly one of three places:

1. ``RetryNow``: run the handler again in this process after a backoff (exponential, full
   jitter), while this delivery round has attempts left and the latency budget allows it.
2. ``RetryLater``: publish the original bytes to ``<topic>.retry`` with a not-before time;
   the stage consumes its retry topic and runs the record again once the delay has passed.
3. ``DeadLetter``: not retryable, or out of rounds, or out of budget.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streams.errors import error_type, is_retryable

__all__ = ["DeadLetter", "Decision", "RetryLater", "RetryNow", "RetryPolicy", "decide"]


@dataclass(frozen=True)
class RetryPolicy:
    attempts_per_round: int = 3
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    # One delay per pass through the retry topic; empty means "no retry topic".
    retry_topic_delays_s: tuple[float, ...] = (5.0, 30.0)

    def __post_init__(self) -> None:
        if self.attempts_per_round < 1:
            raise ValueError("attempts_per_round must be at least 1")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff needs 0 <= backoff_base_s <= backoff_max_s")
        if any(d < 0 for d in self.retry_topic_delays_s):
            raise ValueError("retry_topic_delays_s must not be negative")

    @property
    def max_attempts(self) -> int:
        return self.attempts_per_round * (1 + len(self.retry_topic_delays_s))

    def backoff_s(self, attempt_in_round: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**(n-1))] (AWS architecture blog)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** max(attempt_in_round - 1, 0))
        return (rng or random).uniform(0.0, ceiling)


@dataclass(frozen=True)
class RetryNow:
    delay_s: float


@dataclass(frozen=True)
class RetryLater:
    delay_s: float
    next_round: int


@dataclass(frozen=True)
class DeadLetter:
    error_type: str
    reason: str


Decision = RetryNow | RetryLater | DeadLetter


def decide(
    policy: RetryPolicy,
    exc: BaseException,
    *,
    attempt_in_round: int,
    round: int,
    remaining_s: float | None,
    rng: random.Random | None = None,
) -> Decision:
    """``attempt_in_round`` counts runs already made in this delivery round (>= 1)."""
    kind = error_type(exc)
    message = f"{type(exc).__name__}: {exc}"
    if not is_retryable(exc):
        return DeadLetter(kind, message)
    if remaining_s is not None and remaining_s <= 0:
        return DeadLetter("deadline_exceeded", f"latency budget spent after {message}")
    if attempt_in_round < policy.attempts_per_round:
        delay = policy.backoff_s(attempt_in_round, rng)
        if remaining_s is None or delay < remaining_s:
            return RetryNow(delay)
        return DeadLetter("deadline_exceeded", f"no budget left for a retry after {message}")
    if round < len(policy.retry_topic_delays_s):
        delay = policy.retry_topic_delays_s[round]
        if remaining_s is None or delay < remaining_s:
            return RetryLater(delay, round + 1)
        return DeadLetter("deadline_exceeded", f"no budget left for a delayed retry after {message}")
    attempts = policy.attempts_per_round * (round + 1)
    return DeadLetter(kind, f"gave up after {attempts} attempts: {message}")
