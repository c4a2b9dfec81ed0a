"""Per caller limits as pure decisions: the clock is an argument, nothing waits."""

from __future__ import annotations

import pytest

from streams.errors import Throttled
from streams.ingress.keys import Limits
from streams.ingress.limits import Limiter, TokenBucket, retry_after_header


def test_a_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate_per_s=2, capacity=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)  # one token every 0.5 s
    assert bucket.take(100.25) == pytest.approx(0.25)  # a refusal spends nothing
    assert bucket.take(100.5) == 0.0
    assert bucket.tokens(1000.0) == 3  # never above capacity
    assert bucket.take(99.0) == pytest.approx(0.5)  # a clock that goes back refills nothing


def test_the_limiter_refuses_over_the_rate_with_when_to_retry() -> None:
    limiter, limits = Limiter(), Limits(rate_per_s=1, burst=2)
    limiter.admit("k1", limits, 0.0)
    limiter.admit("k1", limits, 0.0)
    with pytest.raises(Throttled, match="rate limit of 1 requests/s") as refused:
        limiter.admit("k1", limits, 0.2)
    assert refused.value.retry_after_s == pytest.approx(0.8) and refused.value.retryable
    limiter.admit("k2", limits, 0.2)  # another caller has a bucket of its own
    limiter.admit("k1", limits, 1.0)


def test_concurrency_holds_a_slot_until_release_and_a_refusal_spends_no_token() -> None:
    limiter, limits = Limiter(), Limits(rate_per_s=1, burst=2, concurrency=1)
    limiter.admit("k", limits, 0.0)
    with pytest.raises(Throttled, match="its limit is 1") as refused:
        limiter.admit("k", limits, 0.0)
    assert refused.value.retry_after_s == 1.0 and limiter.in_flight("k") == 1
    limiter.release("k", limits)
    limiter.admit("k", limits, 0.0)  # the second token is still there
    limiter.release("k", limits)
    limiter.release("k", limits)  # one release too many does not go below zero
    assert limiter.in_flight("k") == 0


def test_no_limits_keep_no_state_and_changed_limits_take_effect() -> None:
    limiter = Limiter()
    for _ in range(1000):
        limiter.admit("free", Limits(), 0.0)
    assert limiter.in_flight("free") == 0
    limiter.admit("k", Limits(rate_per_s=1, burst=1), 0.0)
    with pytest.raises(Throttled):
        limiter.admit("k", Limits(rate_per_s=1, burst=1), 0.0)
    limiter.admit("k", Limits(rate_per_s=1, burst=5), 0.0)  # the keys file gave it more


def test_idle_callers_are_forgotten_busy_ones_kept() -> None:
    limiter, limits = Limiter(forget_after=2), Limits(rate_per_s=1, burst=1, concurrency=5)
    limiter.admit("busy", limits, 0.0)
    limiter.admit("idle", limits, 0.0)
    limiter.release("idle", limits)
    limiter.admit("new", limits, 10.0)  # a third caller: idle (refilled, nothing in flight) goes
    assert limiter.in_flight("busy") == 1 and limiter.in_flight("new") == 1
    assert "idle" not in limiter._gates and "busy" in limiter._gates


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after_header(s) for s in (0.0, 0.01, 1.0, 1.2, 59.9)] == ["1", "1", "1", "2", "60"]
