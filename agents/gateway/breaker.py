"""A circuit breaker per provider+model: failure rate over a sliding window, cooldown, probe.

closed --(failure rate >= threshold over >= min_calls in the window)--> open
open --(cooldown passed)--> half-open: exactly one probe call is let through
half-open --(probe succeeds)--> closed;  --(probe fails)--> open again

Time is passed in, so tests and the gateway share one clock and nothing sleeps here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["CircuitBreaker"]


@dataclass
class CircuitBreaker:
    window_s: float = 30.0
    min_calls: int = 5
    failure_rate: float = 0.5
    cooldown_s: float = 15.0
    state: str = "closed"  # closed | open | half_open
    opened_at: float = 0.0
    _calls: deque[tuple[float, bool]] = field(default_factory=deque)
    _failures: int = 0  # among _calls, kept as they come and go: no walk of the window per call
    _probing: bool = False

    def allow(self, now: float) -> bool:
        if self.state == "open" and now - self.opened_at >= self.cooldown_s:
            self.state, self._probing = "half_open", False
        if self.state == "closed":
            return True
        if self.state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def release(self) -> None:
        """A call let through ended with no outcome (its caller gave up, the deadline passed
        before it was made, the request itself was at fault): a half-open circuit lets the next
        call be its trial, instead of waiting for an outcome that never comes."""
        self._probing = False

    def record(self, ok: bool, now: float) -> None:
        if self.state == "half_open":
            if ok:
                self.state = "closed"
                self._calls.clear()
                self._failures = 0
            else:
                self._open(now)
            self._probing = False
            return
        self._calls.append((now, ok))
        self._failures += not ok
        while self._calls and now - self._calls[0][0] > self.window_s:
            _, success = self._calls.popleft()
            self._failures -= not success
        calls = len(self._calls)
        if calls >= self.min_calls and self._failures / calls >= self.failure_rate:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state, self.opened_at = "open", now
        self._calls.clear()
        self._failures = 0
