import random

import pytest

from streams.errors import PermanentError, TransientError, UnknownSchema
from streams.runtime.retry import DeadLetter, RetryLater, RetryNow, RetryPolicy, decide

POLICY = RetryPolicy(
    attempts_per_round=3, backoff_base_s=0.1, backoff_max_s=1.0, retry_topic_delays_s=(5.0, 30.0)
)


def test_not_retryable_goes_straight_to_the_dlq() -> None:
    d = decide(POLICY, PermanentError("bad input"), attempt_in_round=1, round=0, remaining_s=None)
    assert d == DeadLetter("permanent", "PermanentError: bad input")
    d = decide(POLICY, UnknownSchema("?"), attempt_in_round=1, round=0, remaining_s=None)
    assert isinstance(d, DeadLetter) and d.error_type == "unknown_schema"


def test_in_process_then_retry_topic_then_dlq() -> None:
    err = TransientError("429")
    assert isinstance(decide(POLICY, err, attempt_in_round=1, round=0, remaining_s=None), RetryNow)
    assert isinstance(decide(POLICY, err, attempt_in_round=2, round=0, remaining_s=None), RetryNow)
    assert decide(POLICY, err, attempt_in_round=3, round=0, remaining_s=None) == RetryLater(5.0, 1)
    assert decide(POLICY, err, attempt_in_round=3, round=1, remaining_s=None) == RetryLater(30.0, 2)
    last = decide(POLICY, err, attempt_in_round=3, round=2, remaining_s=None)
    assert isinstance(last, DeadLetter) and "gave up after 9 attempts" in last.reason
    assert POLICY.max_attempts == 9


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(7)
    samples = [POLICY.backoff_s(1, rng) for _ in range(500)]
    assert 0 <= min(samples) < 0.01 and max(samples) <= 0.1
    assert max(POLICY.backoff_s(10, rng) for _ in range(500)) <= 1.0
    assert len({round(s, 6) for s in samples}) > 400  # jitter, not a fixed delay


def test_the_budget_bounds_every_retry() -> None:
    err = TransientError("slow")
    spent = decide(POLICY, err, attempt_in_round=1, round=0, remaining_s=-0.1)
    assert isinstance(spent, DeadLetter) and spent.error_type == "deadline_exceeded"
    later = decide(POLICY, err, attempt_in_round=3, round=0, remaining_s=2.0)  # 5 s delay > 2 s left
    assert isinstance(later, DeadLetter) and later.error_type == "deadline_exceeded"


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts_per_round=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_base_s=2, backoff_max_s=1)
