import random

import pytest

from agents.gateway.backoff import Backoff
from agents.gateway.breaker import CircuitBreaker
from agents.gateway.pricing import Price, PriceTable, Usage
from agents.gateway.ratelimit import RateLimiter
from streams.errors import ConfigError


def test_backoff_honours_hints_jitters_and_never_outlives_the_budget() -> None:
    backoff = Backoff(base_s=0.5, cap_s=8.0, max_retries=3)
    rng = random.Random(3)
    delays = [backoff.delay_s(2, hint_s=None, remaining_s=None, rng=rng) for _ in range(300)]
    assert (
        all(d is not None and 0 <= d <= 1.0 for d in delays) and len({round(d or 0, 5) for d in delays}) > 250
    )
    assert backoff.delay_s(1, hint_s=2.0, remaining_s=10.0) == 2.0  # Retry-After wins
    assert backoff.delay_s(1, hint_s=2.0, remaining_s=1.5) is None  # but not past the deadline
    assert backoff.delay_s(4, hint_s=None, remaining_s=None) is None  # out of retries


def test_breaker_opens_on_failure_rate_cools_down_and_probes_once() -> None:
    breaker = CircuitBreaker(window_s=10, min_calls=4, failure_rate=0.5, cooldown_s=5)
    for t, ok in [(0, True), (1, False), (2, True)]:
        assert breaker.allow(t)
        breaker.record(ok, t)
    assert breaker.state == "closed"  # 1 of 3: below min_calls
    breaker.record(False, 3)
    assert breaker.state == "open" and not breaker.allow(4)  # 2 of 4 failed
    assert breaker.allow(8.5)  # cooled down: one probe
    assert breaker.state == "half_open" and not breaker.allow(8.6)  # only one
    breaker.record(False, 9)
    assert breaker.state == "open" and not breaker.allow(13)
    assert breaker.allow(14.5)
    breaker.record(True, 15)
    assert breaker.state == "closed" and breaker.allow(15)


def test_breaker_forgets_failures_outside_the_window() -> None:
    breaker = CircuitBreaker(window_s=10, min_calls=4, failure_rate=0.5, cooldown_s=5)
    for t in (0, 1, 2):
        breaker.record(False, t)
    for t in (20, 21, 22, 23):
        breaker.record(True, t)
    assert breaker.state == "closed"
    # The failures that left the window no longer count: 2 of 6 in it now fail, not 5 of 9.
    breaker.record(False, 24)
    breaker.record(False, 25)
    assert breaker.state == "closed"
    breaker.record(False, 26)  # 3 of 7
    assert breaker.state == "closed"
    breaker.record(False, 27)  # 4 of 8: half
    assert breaker.state == "open"


def test_breaker_keeps_up_with_many_calls_in_its_window() -> None:
    """Its failure count is kept as calls come and go: no walk of the window per call (the walk
    cost a busy route hundreds of microseconds a call, bench/embeddings.py under cProfile)."""
    import time

    breaker = CircuitBreaker(window_s=3600, min_calls=10**9)
    started = time.perf_counter()
    for t in range(100_000):
        breaker.record(t % 3 != 0, t * 0.001)
    assert time.perf_counter() - started < 1.0  # a walk per call would take minutes


def test_rate_limiter_slows_a_burst_to_the_configured_rate() -> None:
    limiter = RateLimiter(requests_per_minute=60, tokens_per_minute=6000)
    waits = [limiter.reserve(10, now=0.0) for _ in range(70)]
    assert waits[:60] == [0.0] * 60  # the bucket starts full
    assert waits[60] == pytest.approx(1.0) and waits[69] == pytest.approx(10.0)  # then one a second
    # Token limit: a 3000-token call right after 3000 tokens waits for refill.
    tokens = RateLimiter(tokens_per_minute=6000)
    assert tokens.reserve(6000, 0.0) == 0.0
    assert tokens.reserve(3000, 0.0) == pytest.approx(30.0)
    assert RateLimiter().reserve(10**6, 0.0) == 0.0  # no limits configured


def test_cost_uses_the_table_cache_hits_are_free_and_unknown_models_fail_loudly() -> None:
    table = PriceTable({"big": Price(input=3.0, output=15.0, cached_input=0.3)})
    usage = Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=2000)
    assert table.cost("big", usage) == pytest.approx((1000 * 3 + 500 * 15 + 2000 * 0.3) / 1e6)
    assert table.cost("big", usage, cache_hit=True) == 0.0
    with pytest.raises(ConfigError, match="no price for model 'small'"):
        table.cost("small", usage)
