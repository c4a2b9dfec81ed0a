"""One call to one route: the single attempt ``ModelGateway.complete``, ``ModelGateway.stream``
and ``ModelGateway.embed`` make, so waits, timeouts, spans and books cannot drift apart.

In order (:meth:`AttemptRunner.run`):

1. no time left on the deadline: :class:`DeadlineExceeded` before anything is reserved, called
   or counted against the route's circuit;
2. reserve the route's client-side rate limit; a wait that does not fit in what is left fails at
   once, else it is slept, and the deadline is checked again;
3. call with a timeout no longer than what is left, in a CLIENT span ``{operation} {model}``
   (``chat`` or ``embeddings``) that is current while the provider works (never across a yield
   to the consumer);
4. how to call is the caller's :data:`Call`: :func:`whole` awaits one completion,
   :func:`streamed` drives the provider's stream, :func:`embedded` awaits one batch of vectors
   (as unit rows); either way the attempt passes text deltas on and ends with the answer;
5. close the books: an :class:`Attempt` (latency, usage, cost at the table's price; a broken
   stream's partial usage is billed), gen_ai metrics and span attributes, and the breaker hears
   the outcome unless the error says nothing about the provider's health.

The route loop (which route, when to retry, when to fall back) is :mod:`agents.gateway.gateway`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
from opentelemetry import trace
from opentelemetry.metrics import Meter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from agents.gateway.errors import (
    ContentRefused,
    ContextTooLong,
    ProviderError,
    RequestRejected,
    ServerError,
    StreamBroken,
)
from agents.gateway.policy import Route, time_left
from agents.gateway.pricing import PriceTable, Usage
from agents.gateway.providers.protocol import ChatRequest, Completion, EmbeddingRequest, Embeddings, Provider
from agents.gateway.ratelimit import RateLimiter
from streams.errors import ConfigError, DeadlineExceeded, error_type

__all__ = ["Attempt", "AttemptRunner", "Call", "embedded", "streamed", "whole"]


@dataclass(frozen=True)
class Attempt:
    provider: str
    model: str
    outcome: str  # "ok" or the error type
    latency_s: float
    usage: Usage
    cost_usd: float


Request = TypeVar("Request", bound=ChatRequest | EmbeddingRequest)
Answer = TypeVar("Answer", bound=Completion | Embeddings)

# How an attempt talks to the provider: pieces of text, then the answer (a completion or vectors).
Call = Callable[[Provider, Request, float], AsyncIterator[str | Answer]]


async def whole(
    provider: Provider, request: ChatRequest, timeout_s: float
) -> AsyncGenerator[str | Completion, None]:
    """Await the completion: a call without streaming is a stream of its answer alone."""
    yield await provider.complete(request, timeout_s)


async def streamed(
    provider: Provider, request: ChatRequest, timeout_s: float
) -> AsyncGenerator[str | Completion, None]:
    """Drive the provider's stream, delta by delta; closing this closes the provider's stream
    (and so its response), whether it is left mid-way or at its end."""
    pieces = provider.stream(request, timeout_s)
    try:
        async for piece in pieces:
            if piece.final is not None:
                yield piece.final
                return
            yield piece.text
    finally:
        if isinstance(pieces, AsyncGenerator):
            await pieces.aclose()


async def embedded(
    provider: Provider, request: EmbeddingRequest, timeout_s: float
) -> AsyncGenerator[str | Embeddings, None]:
    """Await one batch of vectors, checked against the inputs and made unit rows (zero rows stay
    zero), so every provider's vectors are alike for a dot product."""
    answer = await provider.embed(request, timeout_s)
    vectors = np.asarray(answer.vectors, dtype=np.float32)
    dimensions = answer.dimensions if request.dimensions is None else request.dimensions
    if vectors.ndim != 2 or vectors.shape != (len(request.inputs), dimensions):
        raise ServerError(
            f"{provider.name}: {vectors.shape} vectors for {len(request.inputs)} inputs of "
            f"{dimensions} dimensions"
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    yield replace(answer, vectors=unit)


# Errors that say nothing about the provider's health do not count against its circuit.
_NOT_THE_PROVIDERS_FAULT = (RequestRejected, ContextTooLong, ContentRefused)


class AttemptRunner:
    """Makes one attempt on one route; owns the per-call metrics. ``record(route, ok)`` tells the
    route's circuit breaker how a call went (the gateway owns the breakers); ``ok`` None says the
    call it let through ended without an outcome, so a half-open circuit is not held waiting."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        prices: PriceTable,
        limits: Mapping[str, RateLimiter],
        *,
        record: Callable[[Route, bool | None], None],
        tracer: trace.Tracer,
        meter: Meter,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._providers = providers
        self._prices = prices
        self._limits = limits
        self._record = record
        self._tracer = tracer
        self._clock = clock
        self._sleep = sleep
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of each model call",
            explicit_bucket_boundaries_advisory=[0.01 * 2**i for i in range(14)],
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens per model call",
            explicit_bucket_boundaries_advisory=[4**i for i in range(14)],
        )
        self._cost = meter.create_counter(
            "podium.gen_ai.cost", unit="USD", description="What model calls cost"
        )

    async def run(
        self,
        route: Route,
        request: Request,
        timeout_s: float,
        deadline: float | None,
        call: Call[Request, Answer],
        attempts: list[Attempt],
    ) -> AsyncGenerator[str | Answer, None]:
        """Text deltas, then the answer (a :class:`Completion` or :class:`Embeddings`); the
        attempt is appended to ``attempts`` whatever its outcome. Raises the provider's error once
        it is booked, or :class:`DeadlineExceeded` when no call fits in what is left (steps 1-2:
        nothing booked)."""
        recorded = False
        try:
            async with contextlib.aclosing(
                self._run(route, request, timeout_s, deadline, call, attempts)
            ) as run:
                async for piece in run:
                    if not isinstance(piece, str):
                        recorded = True
                    yield piece
        except ProviderError as exc:
            recorded = not isinstance(exc, _NOT_THE_PROVIDERS_FAULT)
            raise
        finally:
            if not recorded:
                self._record(route, None)

    async def _run(
        self,
        route: Route,
        request: Request,
        timeout_s: float,
        deadline: float | None,
        call: Call[Request, Answer],
        attempts: list[Attempt],
    ) -> AsyncGenerator[str | Answer, None]:
        provider = self._providers.get(route.provider)
        if provider is None:  # a route from a record (an index version), not from models.yaml
            known = ", ".join(sorted(self._providers))
            raise ConfigError(
                f"no provider {route.provider!r} in models.yaml (it has {known}): keep the provider"
                f" that serves {route.model} while an index version of that model is in use"
            )
        timeout = await self._wait_for_turn(route, request, timeout_s, deadline)
        attrs = {
            "gen_ai.operation.name": request.operation,
            "gen_ai.provider.name": route.provider,
            "gen_ai.request.model": route.model,
        }
        # Started, not made current: the consumer runs between pieces, in its own context.
        span = self._tracer.start_span(f"{request.operation} {route.model}", kind=SpanKind.CLIENT)
        if span.is_recording():
            span.set_attributes(
                {
                    **attrs,
                    "gen_ai.system": route.provider,  # the name gen_ai.provider.name replaced
                    **_request_attributes(request),
                    "podium.gateway.timeout_s": timeout,
                }
            )
        started = self._clock()
        pieces = call(provider, replace(request, model=route.model), timeout)
        try:
            try:
                while True:
                    with trace.use_span(span):  # current while the provider works on this piece
                        piece = await anext(pieces, None)
                    if piece is None:
                        raise StreamBroken(f"{route.provider}: the answer ended without its final piece")
                    if not isinstance(piece, str):
                        break
                    yield piece
            except ProviderError as exc:
                attempt = self._failed(route, exc, self._clock() - started, attempts)
                self._observe(span, attempt, {**attrs, "error.type": attempt.outcome})
                span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
                raise
            final = piece
            attempt = Attempt(
                route.provider,
                route.model,
                "ok",
                self._clock() - started,
                final.usage,
                self._prices.cost(route.model, final.usage),
            )
            attempts.append(attempt)  # booked before anything else can fail: it was paid for
            self._record(route, True)
            self._observe(span, attempt, {**attrs, "gen_ai.response.model": final.model})
            if span.is_recording():
                span.set_attributes(_answer_attributes(final))
            span.end()
            yield final
        finally:
            if span.is_recording():  # an SDK span stops recording once it has ended
                span.end()
            if isinstance(pieces, AsyncGenerator):
                await pieces.aclose()  # a stream left mid-way (or at its end) closes its response

    async def _wait_for_turn(
        self, route: Route, request: ChatRequest | EmbeddingRequest, timeout_s: float, deadline: float | None
    ) -> float:
        """Wait for the route's rate limit within the deadline; the timeout the call may use."""
        left = time_left(deadline, self._clock())
        if left is not None and left <= 0:
            raise DeadlineExceeded("no budget left for a model call")
        limiter = self._limits.get(route.provider)
        worst = request.worst_case()
        expected = worst.input_tokens + worst.output_tokens
        wait = 0.0 if limiter is None else limiter.reserve(expected, self._clock())
        if wait > 0:
            if left is not None and wait >= left:
                raise DeadlineExceeded(f"rate limit of {route.provider} needs {wait:.2f}s; {left:.2f}s left")
            await self._sleep(wait)
            left = time_left(deadline, self._clock())
            if left is not None and left <= 0:  # no doomed call to count against the circuit
                raise DeadlineExceeded("no budget left for a model call")
        return timeout_s if left is None else min(timeout_s, left)

    def _failed(self, route: Route, exc: ProviderError, latency_s: float, attempts: list[Attempt]) -> Attempt:
        """Book a failed call (a broken stream's usage is billed) and tell the route's breaker."""
        usage = exc.partial_usage or Usage()
        attempt = Attempt(
            route.provider,
            route.model,
            error_type(exc),
            latency_s,
            usage,
            self._prices.cost(route.model, usage),
        )
        attempts.append(attempt)
        if not isinstance(exc, _NOT_THE_PROVIDERS_FAULT):
            self._record(route, False)
        return attempt

    def _observe(self, span: trace.Span, attempt: Attempt, attrs: dict[str, str]) -> None:
        """One model call in the trace and the metrics (gen_ai names; cost in podium.cost.usd)."""
        usage = attempt.usage
        self._duration.record(attempt.latency_s, attrs)
        self._tokens.record(
            usage.input_tokens + usage.cache_read_tokens, {**attrs, "gen_ai.token.type": "input"}
        )
        if attrs["gen_ai.operation.name"] != "embeddings":  # an embedding writes no tokens
            self._tokens.record(usage.output_tokens, {**attrs, "gen_ai.token.type": "output"})
        if attempt.cost_usd:
            self._cost.add(attempt.cost_usd, attrs)
        if span.is_recording():
            span.set_attributes(
                {
                    **attrs,
                    "gen_ai.usage.input_tokens": usage.input_tokens,
                    "gen_ai.usage.output_tokens": usage.output_tokens,
                    "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
                    "podium.usage.estimated": usage.estimated,
                    "podium.cost.usd": round(attempt.cost_usd, 10),
                }
            )


def _request_attributes(request: ChatRequest | EmbeddingRequest) -> dict[str, AttributeValue]:
    if isinstance(request, EmbeddingRequest):
        return {"podium.embeddings.inputs": len(request.inputs)}
    return {"gen_ai.request.max_tokens": request.max_tokens}


def _answer_attributes(answer: Completion | Embeddings) -> dict[str, AttributeValue]:
    if isinstance(answer, Embeddings):
        return {"gen_ai.embeddings.dimension.count": answer.dimensions}
    return {"gen_ai.response.finish_reasons": [answer.finish_reason]} if answer.finish_reason else {}
