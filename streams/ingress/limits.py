"""Per caller limits of the HTTP gateway: a token bucket for the rate and a count of requests in
flight, decided without I/O (the clock is an argument), so tests run them without waiting.

A request is first held against the caller's concurrency (a refused one spends no token), then
against its bucket; an admitted one holds a slot until :meth:`Limiter.release`. A refusal is a
:class:`~streams.errors.Throttled` whose ``retry_after_s`` is when a token will be there (for the
rate) or one second (for concurrency: nobody can know when a request in flight ends).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streams.errors import Throttled
from streams.ingress.keys import Limits

__all__ = ["Limiter", "TokenBucket", "retry_after_header"]

CONCURRENCY_RETRY_S = 1.0


class TokenBucket:
    """``rate_per_s`` tokens a second up to ``capacity``; starts full."""

    def __init__(self, rate_per_s: float, capacity: float, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self._tokens = capacity
        self._at = now

    def tokens(self, now: float) -> float:
        # A clock that goes back (it should not: callers pass a monotonic one) refills nothing.
        return min(self.capacity, self._tokens + max(0.0, now - self._at) * self.rate_per_s)

    def take(self, now: float) -> float:
        """Spend one token: 0.0 when there was one, else the seconds until there will be (and
        nothing is spent)."""
        self._tokens = self.tokens(now)
        self._at = max(self._at, now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s


@dataclass
class _Gate:
    limits: Limits
    bucket: TokenBucket | None
    in_flight: int = 0


class Limiter:
    """Every caller's bucket and in-flight count, by the caller's id (a key id, a JWT subject)."""

    def __init__(self, forget_after: int = 10_000) -> None:
        self._gates: dict[str, _Gate] = {}
        self._forget_after = forget_after

    def admit(self, who: str, limits: Limits, now: float) -> None:
        """Take a slot for one request of ``who`` or raise :class:`Throttled`."""
        if limits.rate_per_s is None and limits.concurrency is None:
            return
        gate = self._gate(who, limits, now)
        if limits.concurrency is not None and gate.in_flight >= limits.concurrency:
            raise Throttled(
                f"{gate.in_flight} requests of this caller are in flight, its limit is "
                f"{limits.concurrency}: wait for one to end",
                CONCURRENCY_RETRY_S,
            )
        if gate.bucket is not None and (wait := gate.bucket.take(now)) > 0:
            raise Throttled(
                f"over this caller's rate limit of {limits.rate_per_s:g} requests/s "
                f"(bursts of {gate.bucket.capacity:g}): a token comes in {wait:.2f}s",
                wait,
            )
        gate.in_flight += 1

    def release(self, who: str, limits: Limits) -> None:
        """The end of a request :meth:`admit` let in."""
        if limits.rate_per_s is None and limits.concurrency is None:
            return
        gate = self._gates.get(who)
        if gate is not None and gate.in_flight > 0:
            gate.in_flight -= 1

    def in_flight(self, who: str) -> int:
        gate = self._gates.get(who)
        return 0 if gate is None else gate.in_flight

    def _gate(self, who: str, limits: Limits, now: float) -> _Gate:
        gate = self._gates.get(who)
        if gate is None or gate.limits != limits:  # new, or its limits changed in the keys file
            bucket = None
            if limits.rate_per_s is not None:
                bucket = TokenBucket(limits.rate_per_s, limits.capacity, now)
            if gate is None and len(self._gates) >= self._forget_after:
                self._forget_idle(now)
            gate = _Gate(limits, bucket, gate.in_flight if gate is not None else 0)
            self._gates[who] = gate
        return gate

    def _forget_idle(self, now: float) -> None:
        """Drop callers with nothing in flight and a full bucket: forgetting them changes nothing
        (bearer tokens bring callers the gateway has never seen; this keeps their memory bounded)."""
        for who, gate in list(self._gates.items()):
            full = gate.bucket is None or gate.bucket.tokens(now) >= gate.bucket.capacity
            if gate.in_flight == 0 and full:
                del self._gates[who]


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` takes whole seconds: rounded up, at least 1 (0 would invite a hot loop)."""
    return str(max(1, math.ceil(seconds)))
