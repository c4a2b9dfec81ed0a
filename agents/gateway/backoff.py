"""How long to wait before the next try: exponential backoff with full jitter, the provider's
own hint when it gives one, and never past the request's deadline. Pure: the caller sleeps."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    cap_s: float = 8.0
    max_retries: int = 2

    def delay_s(
        self, retry: int, *, hint_s: float | None, remaining_s: float | None, rng: random.Random | None = None
    ) -> float | None:
        """Seconds before retry number ``retry`` (1-based), or None when it must not happen.

        A server hint (Retry-After) replaces the jittered delay; either way the wait plus a
        minimal call must fit in what is left of the budget.
        """
        if retry > self.max_retries:
            return None
        if hint_s is not None:
            delay = hint_s
        else:
            delay = (rng or random).uniform(0.0, min(self.cap_s, self.base_s * 2 ** (retry - 1)))
        if remaining_s is not None and delay >= remaining_s:
            return None
        return delay
