import re

import pytest

from agents.gateway import errors
from agents.gateway.errors import (
    BudgetSpent,
    ContentRefused,
    ContextTooLong,
    GatewayError,
    Overloaded,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    ServerError,
    classify_response,
    retry_after_s,
)
from streams.errors import DeadlineExceeded, PodiumError, is_retryable


def openai(code: str, message: str = "", kind: str = "") -> dict[str, object]:
    return {"error": {"code": code, "type": kind, "message": message}}


def anthropic(kind: str, message: str = "") -> dict[str, object]:
    return {"type": "error", "error": {"type": kind, "message": message}}


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retryable", "failover"),
    [
        (429, openai("rate_limit_exceeded"), {"retry-after-ms": "1500"}, RateLimited, True, False),
        (
            429,
            openai("insufficient_quota", "You exceeded your current quota"),
            {},
            QuotaExhausted,
            False,
            True,
        ),
        (429, anthropic("rate_limit_error"), {"retry-after": "7"}, RateLimited, True, False),
        (529, anthropic("overloaded_error", "Overloaded"), {}, Overloaded, True, True),
        (500, openai("server_error"), {}, ServerError, True, False),
        (503, "upstream connect error", {}, ServerError, True, False),
        (408, {}, {}, ServerError, True, False),
        (
            400,
            openai("context_length_exceeded", "maximum context length is 8192 tokens"),
            {},
            ContextTooLong,
            False,
            True,
        ),
        (
            400,
            anthropic("invalid_request_error", "prompt is too long: 210000 tokens"),
            {},
            ContextTooLong,
            False,
            True,
        ),
        (400, openai("content_policy_violation"), {}, ContentRefused, False, True),
        (400, openai("invalid_value", "temperature must be <= 2"), {}, RequestRejected, False, False),
        (401, anthropic("authentication_error"), {}, RequestRejected, False, False),
        (403, {}, {}, RequestRejected, False, False),
        (404, openai("model_not_found"), {}, RequestRejected, False, False),
    ],
)
def test_each_answer_maps_to_the_right_decision(
    status: int, body: object, headers: dict[str, str], expected: type, retryable: bool, failover: bool
) -> None:
    error = classify_response(status, body, headers)
    assert type(error) is expected
    assert (error.retryable, error.failover, is_retryable(error)) == (retryable, failover, retryable)
    assert error.status == status and f"HTTP {status}" in str(error)


def test_fallback_kinds_say_which_alternate_helps() -> None:
    assert classify_response(400, openai("context_length_exceeded"), {}).fallback_to == "longer_context"
    assert classify_response(400, openai("content_policy_violation"), {}).fallback_to == "other_policy"
    assert classify_response(529, {}, {}).fallback_to == "any"


def test_retry_after_prefers_milliseconds_and_ignores_dates() -> None:
    assert retry_after_s({"Retry-After-Ms": "250", "Retry-After": "9"}) == 0.25
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert classify_response(429, openai("rate_limit_exceeded"), {"retry-after": "2"}).retry_after_s == 2.0


def test_every_gateway_error_is_drawn_in_the_tree_under_the_one_root() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == errors.__name__
    ]
    assert {"GatewayError", "BudgetSpent", "ProviderError"} <= {c.__name__ for c in classes}
    for cls in classes:
        assert issubclass(cls, PodiumError)
        assert re.search(rf"── {cls.__name__}\b", errors.__doc__ or ""), f"{cls.__name__} is not drawn"


def test_a_gateway_error_has_the_last_errors_flags_and_budget_spent_is_a_deadline() -> None:
    failed = GatewayError(RateLimited("HTTP 429: slow down", status=429), (), ("skipped oa/large",))
    assert failed.retryable and is_retryable(failed) and not failed.failover
    assert (failed.dead_letter_reason, failed.status, failed.decisions) == (
        "rate_limited",
        429,
        ("skipped oa/large",),
    )
    final = GatewayError(RequestRejected("HTTP 400: bad", status=400), ())
    assert not final.retryable and final.dead_letter_reason == "request_rejected"
    spent = BudgetSpent("no budget left for a model call", (), ())
    assert isinstance(spent, DeadlineExceeded) and not is_retryable(spent)
    assert spent.dead_letter_reason == "deadline_exceeded"
