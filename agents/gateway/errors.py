"""What a provider's failure means for the gateway, decided from the HTTP answer alone.

Each error carries the flags the gateway acts on, so no caller needs an isinstance chain:

``retryable``   the same call may succeed later (rate limit, overload, 5xx, timeout, broken stream)
``failover``    switch to the next model in the chain *now*, without waiting
``fallback_to`` which kind of alternate helps: ``any``, ``longer_context`` or ``other_policy``

::

    PodiumError (streams.errors)
    ├── ProviderError
    │   ├── RateLimited      429 rate_limit_exceeded / rate_limit_error   retryable
    │   ├── QuotaExhausted   429 insufficient_quota, spend limits         failover (any)
    │   ├── Overloaded       529 / overloaded_error, mid-stream too       retryable, failover (any)
    │   ├── ServerError      5xx                                          retryable
    │   ├── Unreachable      connect error, timeout, reset                retryable
    │   ├── StreamBroken     stream cut or error event after 200          retryable, failover (any)
    │   ├── ContextTooLong   context window exceeded                      failover (longer_context)
    │   ├── ContentRefused   content policy refusal                       failover (other_policy)
    │   ├── RequestRejected  400, 401, 403, 404 and other 4xx             neither
    │   ├── LocalModelFailed a local model raised (its own bug or bad     failover (any)
    │   │                    input): no HTTP answer, the same call
    │   │                    would fail the same way
    │   ├── CostCapReached   no route fits the request's cost cap (not    neither
    │   │   │                an HTTP answer: nothing was called)
    │   │   └── BudgetExhausted  the tenant's day or month budget has     neither
    │   │                    no room for the route's worst case
    │   ├── BudgetUnavailable the budget ledger did not answer a           retryable
    │   │                    reservation in time (the call is not made)
    │   ├── StructuredOutputInvalid                                       neither
    │   │                    the reply did not match its JSON Schema,
    │   │                    even after one repair round: the calls made
    │   └── GatewayError     every route failed: the attempts and         the last error's
    │                        decisions on the way                         retryable and reason
    └── DeadlineExceeded (streams.errors)
        └── BudgetSpent      the deadline left no time for (another)      neither
                             call: the attempts and decisions so far

The gateway raises only the last two: a provider's error ends up as the ``last`` of a
:class:`GatewayError`, and a deadline that runs out as a :class:`BudgetSpent` (which callers
that know only :mod:`streams.errors` still see as the ``DeadlineExceeded`` it is).
:func:`agents.gateway.structured.complete_structured` adds :class:`StructuredOutputInvalid`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agents.gateway.pricing import Usage
from streams.errors import DeadlineExceeded, PodiumError

if TYPE_CHECKING:
    from agents.gateway.attempt import Attempt
    from agents.gateway.gateway import GatewayResult

__all__ = [
    "BudgetExhausted",
    "BudgetSpent",
    "BudgetUnavailable",
    "ContentRefused",
    "ContextTooLong",
    "CostCapReached",
    "GatewayError",
    "LocalModelFailed",
    "Overloaded",
    "ProviderError",
    "QuotaExhausted",
    "RateLimited",
    "RequestRejected",
    "ServerError",
    "StreamBroken",
    "StructuredOutputInvalid",
    "Unreachable",
    "classify_response",
    "may_have_billed",
]


class ProviderError(PodiumError):
    retryable = False
    failover = False
    fallback_to = "any"
    dead_letter_reason = "provider"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s
        # What a broken stream had used when it broke (counted, marked estimated): it is billed.
        self.partial_usage: Usage | None = None
        # False only when the request certainly never left this process (no connection was
        # made): see may_have_billed.
        self.sent = sent


class RateLimited(ProviderError):
    retryable = True
    dead_letter_reason = "rate_limited"


class QuotaExhausted(ProviderError):
    failover = True
    dead_letter_reason = "quota_exhausted"


class Overloaded(ProviderError):
    retryable = True
    failover = True
    dead_letter_reason = "overloaded"


class ServerError(ProviderError):
    retryable = True
    dead_letter_reason = "provider_5xx"


class Unreachable(ProviderError):
    retryable = True
    dead_letter_reason = "provider_unreachable"


class StreamBroken(ProviderError):
    retryable = True
    failover = True
    dead_letter_reason = "stream_broken"


class ContextTooLong(ProviderError):
    failover = True
    fallback_to = "longer_context"
    dead_letter_reason = "context_too_long"


class ContentRefused(ProviderError):
    failover = True
    fallback_to = "other_policy"
    dead_letter_reason = "content_refused"


class RequestRejected(ProviderError):
    dead_letter_reason = "request_rejected"


class LocalModelFailed(ProviderError):
    """A model run in this process raised. It is deterministic, so the same call fails again
    (not retryable); the next route of the chain may well answer (failover)."""

    failover = True
    dead_letter_reason = "local_model_failed"


class CostCapReached(ProviderError):
    """No route of the chain fits what the request may still spend (nothing was called)."""

    dead_letter_reason = "cost_cap"


class BudgetExhausted(CostCapReached):
    """The tenant's day or month budget (the ledger's decision) leaves no room for any route's
    worst case: a cap like the per-request one, answered the same way (degraded)."""

    dead_letter_reason = "budget_exhausted"


class BudgetUnavailable(ProviderError):
    """The budget ledger did not answer in time: the call is not made (spend it cannot vouch for
    would slip past the budget), and a later try may find the ledger's owner back."""

    retryable = True
    dead_letter_reason = "budget_unavailable"


class StructuredOutputInvalid(ProviderError):
    """The structured reply did not match its schema, even after the one repair round.
    ``problem`` says what was wrong with the last reply; ``results`` are the calls made, and
    ``attempts`` all of their attempts, so what they cost is still accounted."""

    dead_letter_reason = "structured_output_invalid"

    def __init__(self, problem: str, results: tuple[GatewayResult, ...]) -> None:
        super().__init__(f"the reply did not match its schema after a repair round: {problem}")
        self.problem = problem
        self.results = results
        self.attempts = tuple(a for r in results for a in r.attempts)


class GatewayError(ProviderError):
    """Every route failed; carries the attempts so their cost is still accounted. Its flags
    are the last error's: the message may be retried, and dead-letters, as that error would."""

    def __init__(
        self, last: ProviderError, attempts: tuple[Attempt, ...], decisions: tuple[str, ...] = ()
    ) -> None:
        super().__init__(f"all routes failed; last: {last}", status=last.status)
        self.retryable = last.retryable
        self.dead_letter_reason = last.dead_letter_reason
        self.attempts = attempts
        self.decisions = decisions  # routes skipped on the way (open circuits, short budget)


class BudgetSpent(DeadlineExceeded):
    """The request's deadline left no time for (another) call; carries what was tried."""

    def __init__(self, message: str, attempts: tuple[Attempt, ...], decisions: tuple[str, ...]) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.decisions = decisions


def may_have_billed(exc: ProviderError) -> bool:
    """Whether a failed call may have reached a model that ran and billed more than the failure
    tells (so a budget must keep the call's worst case). Certain only when the provider did no
    work: the request never left (no connection), or the provider answered that it took none (a
    4xx, 429 included, or "not now": 503, 529). A timeout or a connection lost mid-request, a
    stream cut or ended by an error event, a 500 or a proxy's 502/504, or a failure whose cause
    is unknown (no status) may all have run the model."""
    if not exc.sent:
        return False
    status = exc.status
    return not (status is not None and (400 <= status < 500 or status in (503, 529)))


_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "spend_limit_exceeded", "billing_error"}
_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length"}
_CONTEXT_WORDS = (
    "context window",
    "context length",
    "maximum context",
    "prompt is too long",
    "too many tokens",
)
_POLICY_CODES = {"content_policy_violation", "content_filter"}


def _error_fields(body: Any) -> tuple[str, str, str]:
    """(code, type, message) from an OpenAI ``{"error": {...}}`` or Anthropic ``{"type": "error", ...}``."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", "", str(body)[:300] if body else ""
    return str(error.get("code") or ""), str(error.get("type") or ""), str(error.get("message") or "")


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` first (OpenAI), then ``retry-after`` in seconds; an HTTP date is ignored."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def classify_response(status: int, body: Any, headers: Mapping[str, str]) -> ProviderError:
    """The error for a non-2xx answer (``body``: the parsed JSON, or text when it was not JSON)."""
    code, kind, message = _error_fields(body)
    text = f"HTTP {status}: {message or code or kind or 'no detail'}"
    wait = retry_after_s(headers)
    lowered = f"{code} {kind} {message}".lower()
    if status == 429:
        if code in _QUOTA_CODES or kind in _QUOTA_CODES or "quota" in lowered or "spend limit" in lowered:
            return QuotaExhausted(text, status=status)
        return RateLimited(text, status=status, retry_after_s=wait)
    if status == 529 or kind == "overloaded_error":
        return Overloaded(text, status=status, retry_after_s=wait)
    if code in _CONTEXT_CODES or any(word in lowered for word in _CONTEXT_WORDS):
        return ContextTooLong(text, status=status)
    if code in _POLICY_CODES or kind in _POLICY_CODES or "content policy" in lowered:
        return ContentRefused(text, status=status)
    if status in (408, 409) or status >= 500:
        return ServerError(text, status=status, retry_after_s=wait)
    return RequestRejected(text, status=status)
