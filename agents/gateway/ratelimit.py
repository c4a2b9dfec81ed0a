"""Client-side rate limits: requests per minute and tokens per minute, as token buckets.

A worker asks before each call how long to wait so that it stays under both limits, and slows
down before the provider has to answer 429. Pure: the caller passes the time and sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    per_minute: float
    level: float | None = None  # full at first use; negative while callers are queued
    at: float = 0.0

    def wait_for(self, amount: float, now: float) -> float:
        if self.level is None:
            self.level, self.at = self.per_minute, now
        rate = self.per_minute / 60.0
        self.level = min(self.per_minute, self.level + (now - self.at) * rate)
        self.at = now
        # Reserve now (the level may go negative): concurrent callers queue up fairly.
        self.level -= amount
        return 0.0 if self.level >= 0 else -self.level / rate


@dataclass
class RateLimiter:
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    _requests: _Bucket | None = field(default=None, init=False)
    _tokens: _Bucket | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.requests_per_minute:
            self._requests = _Bucket(self.requests_per_minute)
        if self.tokens_per_minute:
            self._tokens = _Bucket(self.tokens_per_minute)

    def reserve(self, tokens: int, now: float) -> float:
        """Seconds to wait before sending a call expected to use ``tokens`` tokens."""
        waits = [0.0]
        if self._requests is not None:
            waits.append(self._requests.wait_for(1, now))
        if self._tokens is not None:
            waits.append(self._tokens.wait_for(min(tokens, self._tokens.per_minute), now))
        return max(waits)
