"""The model gateway: one call through a fallback chain, with exactly one retry layer.

Layered the way httpx layers ``send``, one concern per layer, each written once:
:meth:`ModelGateway.complete` (the response cache), :meth:`ModelGateway.stream` and
:meth:`ModelGateway.embed` -> the route loop (``_route``) -> one attempt
(:mod:`agents.gateway.attempt`) -> the provider. They differ only in how the attempt calls:
awaiting the completion whole, driving the stream, or awaiting a batch of vectors. Embeddings
never touch the response cache (an entry is text), and a policy serves one operation: a chat
call on an embeddings policy, or the reverse, is refused before any route is tried.

For each route in the chain (provider + model), in order:

1. skip it when its circuit is open (no waiting for a provider that is known to be down), when
   its worst case does not fit the cost cap, or when the deadline leaves less than it needs and
   a faster route follows; every skip is a recorded decision;
1b. for a tenant with a day or month budget, reserve the route's worst case with the budget
   ledger (:mod:`agents.gateway.ledger`); a refusal skips the route like the cost cap does
   (a cheaper route may fit), no answer in time ends the call (:class:`BudgetUnavailable`);
   whatever the attempt ends as, the reservation is settled at what it cost (its billed usage;
   nothing when no call was made), and at no less than its worst case when the provider may
   have run it unseen (a timeout, a connection lost mid-request, a stream left mid-way: see
   :func:`~agents.gateway.errors.may_have_billed`);
2. wait for the client-side rate limit, but never past the request's deadline (the attempt);
3. call with a timeout no longer than what is left of the deadline (the attempt);
4. on success: close the books (usage -> cost at the table's price) and return (the attempt);
5. on failure, read the error's flags: ``failover`` moves to the next suitable route at once
   (a longer-context model for context errors, another provider for refusals); ``retryable``
   waits (Retry-After or jittered backoff, bounded by the deadline) and tries the same route
   again while the *shared* retry budget lasts, else moves on; anything else is final. A stream
   that already sent text always fails over, and says so with a :class:`Reset`.

Retries are counted for the whole call, so falling back does not restart the retry cycle.
Every attempt is recorded (provider, model, outcome, latency, usage, cost): the result carries
what was spent, including the estimated usage of streams that broke.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation

from agents.gateway.attempt import Answer, Attempt, AttemptRunner, Call, Request, embedded, streamed, whole
from agents.gateway.backoff import Backoff
from agents.gateway.breaker import CircuitBreaker
from agents.gateway.budget import Grant, SpendLedger
from agents.gateway.cache import ResponseCache, cache_key, cacheable
from agents.gateway.errors import (
    BudgetExhausted,
    BudgetSpent,
    BudgetUnavailable,
    CostCapReached,
    GatewayError,
    ProviderError,
    may_have_billed,
)
from agents.gateway.policy import CallPolicy, CostCap, Route, time_left
from agents.gateway.pricing import PriceTable, Usage
from agents.gateway.providers.protocol import ChatRequest, Completion, EmbeddingRequest, Embeddings, Provider
from agents.gateway.ratelimit import RateLimiter
from streams.errors import ConfigError, DeadlineExceeded, PodiumError, error_type
from streams.telemetry import Telemetry

__all__ = [
    "Attempt",
    "BudgetSpent",
    "CallPolicy",
    "CostCap",
    "EmbeddingResult",
    "GatewayError",
    "GatewayResult",
    "ModelGateway",
    "Reset",
    "Route",
    "StreamEvent",
]

log = logging.getLogger("podium.gateway")


@dataclass(frozen=True)
class GatewayResult:
    completion: Completion
    route: Route
    attempts: tuple[Attempt, ...]
    decisions: tuple[str, ...] = ()  # e.g. "skipped oa/large: 0.8s left, needs 2.0s"

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)

    @property
    def fallbacks(self) -> int:
        return len({(a.provider, a.model) for a in self.attempts}) - 1

    @property
    def retries(self) -> int:
        return len(self.attempts) - 1 - self.fallbacks

    @property
    def cache_hit(self) -> bool:
        return self.attempts[-1].outcome == "cache_hit"


@dataclass(frozen=True)
class EmbeddingResult:
    """The vectors (unit rows, in the texts' order), the route that made them, and every attempt
    on the way (what it cost: input tokens at the model's price)."""

    embeddings: Embeddings
    route: Route
    attempts: tuple[Attempt, ...]
    decisions: tuple[str, ...] = ()

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)

    @property
    def fallbacks(self) -> int:
        return max(0, len({(a.provider, a.model) for a in self.attempts}) - 1)

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1 - self.fallbacks)


Result = TypeVar("Result", GatewayResult, EmbeddingResult)


@dataclass(frozen=True)
class Reset:
    """The text streamed so far is void: the stream broke and an alternate starts over."""

    reason: str
    next_route: Route


StreamEvent = str | Reset | GatewayResult  # a text delta, a reset marker, or the end


_CIRCUIT_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class ModelGateway:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        prices: PriceTable,
        *,
        limits: Mapping[str, RateLimiter] | None = None,
        breaker: Callable[[], CircuitBreaker] = CircuitBreaker,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        telemetry: Telemetry | None = None,
        cache: ResponseCache | None = None,
        on_circuit: Callable[[str, str, str], None] | None = None,
        ledger: SpendLedger | None = None,
    ) -> None:
        """``on_circuit(provider, model, state)`` hears every change of a route's circuit;
        ``ledger``: where the calls of a tenant with a day or month budget reserve and settle."""
        self._providers = dict(providers)
        self._ledger = ledger
        self._on_circuit = on_circuit
        self._prices = prices
        self._limits = dict(limits or {})
        self._new_breaker = breaker
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self._clock = clock
        self._sleep = sleep
        self._cache = cache
        telemetry = telemetry or Telemetry.configure("none")
        meter = telemetry.meter("podium.gateway")
        self._attempt = AttemptRunner(
            self._providers,
            prices,
            self._limits,
            record=self._record,
            tracer=telemetry.tracer("podium.gateway"),
            meter=meter,
            clock=clock,
            sleep=sleep,
        )
        self._retries = meter.create_counter(
            "podium.gen_ai.retries", description="Model calls tried again on the same route"
        )
        self._fallbacks = meter.create_counter(
            "podium.gen_ai.fallbacks", description="Model calls that moved on to the next route"
        )
        meter.create_observable_gauge(
            "podium.gen_ai.circuit.state",
            callbacks=[self._observe_circuits],
            description="Circuit of each provider+model: 0 closed, 1 half-open, 2 open",
        )

    def provider(self, name: str) -> Provider:
        return self._providers[name]

    async def aclose(self) -> None:
        """Close every provider's connection pool."""
        for provider in self._providers.values():
            await provider.aclose()

    def breaker(self, route: Route) -> CircuitBreaker:
        key = (route.provider, route.model)
        if key not in self._breakers:
            self._breakers[key] = self._new_breaker()
        return self._breakers[key]

    def circuit_states(self) -> dict[str, str]:
        return {f"{p}/{m}": b.state for (p, m), b in self._breakers.items()}

    def _note_next(
        self, route: Route, chain: tuple[Route, ...], step: tuple[int, int, float | None], exc: ProviderError
    ) -> None:
        """Count a retry or a fallback, and mark a fallback on the caller's span (the report
        draws fallbacks over time from these events)."""
        index, _, delay = step
        attrs = {"gen_ai.provider.name": route.provider, "gen_ai.request.model": route.model}
        if delay is not None:
            self._retries.add(1, attrs)
            return
        self._fallbacks.add(1, attrs)
        target = chain[index] if index < len(chain) else None
        trace.get_current_span().add_event(
            "podium.fallback",
            {
                "podium.fallback.from": f"{route.provider}/{route.model}",
                "podium.fallback.to": f"{target.provider}/{target.model}" if target else "",
                "error.type": error_type(exc),
            },
        )

    def _skip(
        self,
        chain: tuple[Route, ...],
        index: int,
        request: ChatRequest | EmbeddingRequest,
        cost_cap: CostCap | None,
        attempts: list[Attempt],
        deadline: float | None,
    ) -> tuple[str, ProviderError | None] | None:
        """Why the route at ``index`` is passed over before any call (the decision to record,
        and the error to report if no route is left), or None to call it. The one place both
        :meth:`complete`, :meth:`stream` and :meth:`embed` decide this."""
        route = chain[index]
        name = f"{route.provider}/{route.model}"
        # The checks that change nothing come first: a half-open circuit's one trial call is
        # granted only to a call that will be made.
        if (too_dear := self._unaffordable(route, request, cost_cap, attempts)) is not None:
            return too_dear, CostCapReached(too_dear)
        left = time_left(deadline, self._clock())
        if left is not None and left < route.min_budget_s and index + 1 < len(chain):
            # A faster route follows; nothing failed, so there is no error to report.
            return f"skipped {name}: {left:.2f}s left, needs {route.min_budget_s:.2f}s", None
        if not self._allow(route):
            return f"skipped {name}: circuit open", ProviderError(f"circuit open for {name}")
        return None

    def _unaffordable(
        self,
        route: Route,
        request: ChatRequest | EmbeddingRequest,
        cap: CostCap | None,
        attempts: list[Attempt],
    ) -> str | None:
        if cap is None:
            return None
        spent = cap.spent_usd + sum(a.cost_usd for a in attempts)
        worst = self._prices.cost(route.model, request.worst_case())
        if spent + worst <= cap.limit_usd:
            return None
        return (
            f"skipped {route.provider}/{route.model}: could cost ${worst:.6f}, "
            f"${max(0.0, cap.limit_usd - spent):.6f} of the ${cap.limit_usd:g} cap left"
        )

    async def _reserve(
        self,
        route: Route,
        request: ChatRequest | EmbeddingRequest,
        policy: CallPolicy,
        deadline: float | None,
        tenant: str | None,
        attempts: list[Attempt],
        decisions: list[str],
    ) -> Grant | None:
        """Step 1b: the ledger's grant of the route's worst case, or None when the tenant has no
        window (or the route is free: nothing to hold). No answer ends the call."""
        if self._ledger is None or self._ledger.limits(tenant) is None:
            return None
        tenant = tenant or ""  # no tenant is the tenant "", with windows of its own
        # A true upper bound, not the estimate the cost cap uses: N concurrent holds under the
        # real cost would let spend pass the window by N times the difference.
        worst = self._prices.cost(route.model, request.upper_bound())
        if worst <= 0:
            return None
        # The hold outlives the call it covers (its timeout, and the wait for its rate limit).
        hold_s = policy.timeout_s * 2 + 60
        left = time_left(deadline, self._clock())
        if left is not None and left <= 0:
            return None  # no call will be made: the attempt says the deadline passed (its step 1)
        try:
            return await self._ledger.reserve(tenant, worst, hold_s, left)
        except BudgetUnavailable as exc:
            raise GatewayError(exc, tuple(attempts), (*decisions, str(exc))) from exc

    async def _settle(self, grant: Grant, booked: list[Attempt], unseen: bool) -> None:
        """Settle a granted reservation at what its attempt cost (billed usage, a broken stream's
        too; nothing when no call was made), and at no less than its worst case when the call
        may have run at the provider beyond what was seen (``unseen``: a timeout, a connection
        lost, a stream left mid-way): more than it spent, never less."""
        usd = sum(a.cost_usd for a in booked)
        if unseen:
            usd = max(usd, grant.usd)
        assert self._ledger is not None  # a grant came from it
        try:
            await self._ledger.settle(grant, usd)
        except PodiumError as exc:
            # The call is paid: failing it would have it made (and paid) again. The hold expires
            # and is charged at its worst case instead.
            log.error(
                "could not settle budget reservation %s of %s: %s", grant.reservation_id, grant.tenant, exc
            )

    def _allow(self, route: Route) -> bool:
        breaker = self.breaker(route)
        before = breaker.state
        allowed = breaker.allow(self._clock())
        self._changed(route, before, breaker.state)
        return allowed

    def _record(self, route: Route, ok: bool | None) -> None:
        """``ok`` None: the call that was let through ended without an outcome for the circuit."""
        breaker = self.breaker(route)
        if ok is None:
            breaker.release()
            return
        before = breaker.state
        breaker.record(ok, self._clock())
        self._changed(route, before, breaker.state)

    def _changed(self, route: Route, before: str, after: str) -> None:
        if before != after and self._on_circuit is not None:
            # Heard from inside a model call: a listener that fails must not turn a call already
            # paid for into an error (its record would be retried and the call paid again).
            try:
                self._on_circuit(route.provider, route.model, after)
            except Exception:
                log.exception("a circuit listener failed on %s/%s -> %s", route.provider, route.model, after)

    def _observe_circuits(self, _: CallbackOptions) -> list[Observation]:
        return [
            Observation(_CIRCUIT_VALUE[b.state], {"gen_ai.provider.name": p, "gen_ai.request.model": m})
            for (p, m), b in self._breakers.items()
        ]

    async def complete(
        self,
        request: ChatRequest,
        policy: CallPolicy,
        deadline: float | None = None,
        cost_cap: CostCap | None = None,
        *,
        tenant: str | None = None,
    ) -> GatewayResult:
        """``deadline`` is on this gateway's clock (``time.monotonic`` unless a clock was given).
        Requests with tools or a response schema bypass the cache (``cache.cacheable``).
        ``tenant``: whose day and month budgets the call is reserved against (a cache hit is
        free and reserves nothing)."""
        _check_operation(policy, "chat")
        cache = self._cache if cacheable(request) else None
        key = cache_key(request, policy.chain[0].model) if cache is not None else ""
        if cache is not None and (hit := cache.get(key)) is not None:
            usage = Usage(hit.input_tokens, hit.output_tokens)
            completion = Completion(hit.text, hit.model, hit.finish_reason, usage, "cache", 0.0)
            # Labelled as a hit, and free: the answer was paid for when it was first made.
            attempt = Attempt("cache", hit.model, "cache_hit", 0.0, usage, 0.0)
            return GatewayResult(completion, Route("cache", hit.model), (attempt,))
        result = await self._answer(request, policy, deadline, cost_cap, tenant)
        if cache is not None and result.completion.finish_reason in ("stop", "end_turn", None):
            c = result.completion
            try:
                await cache.put(
                    key, c.text, c.model, c.finish_reason, c.usage.input_tokens, c.usage.output_tokens
                )
            except PodiumError as exc:
                # The answer is paid for: a cache that cannot keep it costs a later hit, not this call.
                log.warning("the response cache could not keep an answer: %s", exc)
        return result

    def stream(
        self,
        request: ChatRequest,
        policy: CallPolicy,
        deadline: float | None = None,
        cost_cap: CostCap | None = None,
        *,
        tenant: str | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Text deltas as they arrive; a :class:`Reset` when a stream breaks and the next route
        starts over (the consumer discards what it had); the :class:`GatewayResult` last.

        Errors before the first delta follow the same rules as :meth:`complete`; a break after
        it always fails over (a retry of the same stream would repeat the text).
        """
        _check_operation(policy, "chat")
        return self._route(request, policy, deadline, cost_cap, streamed, GatewayResult, tenant)

    async def embed(
        self,
        texts: Sequence[str],
        policy: CallPolicy,
        *,
        cap: CostCap | None = None,
        deadline: float | None = None,
        tenant: str | None = None,
    ) -> EmbeddingResult:
        """One vector per text, as unit rows, in one call (a batch) through an embeddings policy's
        chain: the same retries, fallbacks, circuits, rate limits, cost cap and deadline as a chat
        call. Every route of such a chain serves the same model (``GatewayConfig`` checks it), so
        a fallback gives vectors of the same space. Never cached. No texts: no call, no rows."""
        _check_operation(policy, "embeddings")
        if isinstance(texts, str):  # a str is a sequence of str too: one vector per character
            raise TypeError("ModelGateway.embed takes a sequence of texts; wrap one text in a list")
        if not texts:
            route = policy.chain[0]
            nothing = Embeddings(np.zeros((0, 0), np.float32), route.model, 0, Usage(), route.provider, 0.0)
            return EmbeddingResult(nothing, route, ())
        request = EmbeddingRequest(model="", inputs=tuple(texts), dimensions=policy.dimensions)
        return await self._one(self._route(request, policy, deadline, cap, embedded, EmbeddingResult, tenant))

    async def _answer(
        self,
        request: ChatRequest,
        policy: CallPolicy,
        deadline: float | None,
        cost_cap: CostCap | None,
        tenant: str | None,
    ) -> GatewayResult:
        """The route loop with calls that are awaited whole: its one event is the result."""
        return await self._one(self._route(request, policy, deadline, cost_cap, whole, GatewayResult, tenant))

    @staticmethod
    async def _one(route: AsyncGenerator[str | Reset | Result, None]) -> Result:
        """The result of a route loop whose calls yield no text."""
        async with aclosing(route) as events:
            async for event in events:
                if isinstance(event, GatewayResult | EmbeddingResult):
                    return event
        raise AssertionError("the route loop ends with a result or an error")

    async def _route(
        self,
        request: Request,
        policy: CallPolicy,
        deadline: float | None,
        cost_cap: CostCap | None,
        call: Call[Request, Answer],
        result: Callable[[Answer, Route, tuple[Attempt, ...], tuple[str, ...]], Result],
        tenant: str | None = None,
    ) -> AsyncGenerator[str | Reset | Result, None]:
        """The one route loop (steps 1 and 5 of the module docstring; an attempt is steps 2-4).
        ``call`` says how an attempt talks to the provider, ``result`` what its answer becomes;
        only a streamed call yields text, and so only a stream can break after text and
        :class:`Reset`."""
        attempts: list[Attempt] = []
        decisions: list[str] = []
        retries = 0
        index = 0
        last: ProviderError | None = None
        chain = policy.chain
        while index < len(chain):
            route = chain[index]
            if (skip := self._skip(chain, index, request, cost_cap, attempts, deadline)) is not None:
                decision, error = skip
                decisions.append(decision)
                last = last or error
                index += 1
                continue
            grant = await self._reserve(route, request, policy, deadline, tenant, attempts, decisions)
            if grant is not None and not grant.granted:
                decisions.append(f"skipped {route.provider}/{route.model}: {grant.reason}")
                last = last or BudgetExhausted(grant.reason)
                index += 1
                continue
            booked = len(attempts)
            unseen = True  # until the attempt's end says what the provider did
            sent_text = False
            pause: float | None = None
            try:
                async with aclosing(
                    self._attempt.run(route, request, policy.timeout_s, deadline, call, attempts)
                ) as events:
                    async for event in events:
                        if not isinstance(event, str):
                            unseen = False  # answered: its usage is what it cost
                            yield result(event, route, tuple(attempts), tuple(decisions))
                            return
                        sent_text = True
                        yield event
            except DeadlineExceeded as exc:
                unseen = False  # the attempt gave up before calling (steps 1-2 of an attempt)
                raise BudgetSpent(str(exc), tuple(attempts), tuple(decisions)) from exc
            except ProviderError as exc:
                unseen = may_have_billed(exc)
                last = exc
                remaining = time_left(deadline, self._clock())
                step = _after_failure(
                    exc, chain, index, retries, policy.backoff, remaining, streamed=sent_text
                )
                if step is None:
                    raise GatewayError(exc, tuple(attempts), tuple(decisions)) from exc
                self._note_next(route, chain, step, exc)
                index, retries, pause = step
                if pause is None and sent_text and index < len(chain):
                    yield Reset(f"{route.provider}/{route.model}: {exc}", chain[index])
            finally:
                if grant is not None:
                    await self._settle(grant, attempts[booked:], unseen)
            if pause is not None:  # the backoff, with the failed attempt's hold settled first
                await self._sleep(pause)
        assert last is not None, "a policy needs at least one route"
        raise GatewayError(last, tuple(attempts), tuple(decisions)) from last


def _after_failure(
    exc: ProviderError,
    chain: tuple[Route, ...],
    index: int,
    retries: int,
    backoff: Backoff,
    remaining_s: float | None,
    *,
    streamed: bool = False,
) -> tuple[int, int, float | None] | None:
    """Where a failed call goes next: (route index, retries used, delay before trying that same
    route again), or None when the failure is final. A stream that already sent text is never
    retried on the same route: the text would be repeated, so it fails over."""
    if exc.failover or streamed:
        return _next_route(chain, index, exc), retries, None
    if not exc.retryable:
        return None
    delay = backoff.delay_s(retries + 1, hint_s=exc.retry_after_s, remaining_s=remaining_s)
    if delay is None:
        return index + 1, retries + 1, None  # out of retries or budget here: the next route, at once
    return index, retries + 1, delay


def _next_route(chain: tuple[Route, ...], index: int, exc: ProviderError) -> int:
    current = chain[index]
    for candidate in range(index + 1, len(chain)):
        route = chain[candidate]
        if exc.fallback_to == "longer_context" and route.context_window <= current.context_window:
            continue
        if exc.fallback_to == "other_policy" and route.provider == current.provider:
            continue
        return candidate
    return len(chain)


def _check_operation(policy: CallPolicy, operation: str) -> None:
    """A policy serves one operation: vectors from a chat model, or a chat from an embedding
    model, are a stage wired to the wrong policy, refused before anything is called."""
    if policy.operation != operation:
        routes = ", ".join(f"{r.provider}/{r.model}" for r in policy.chain)
        raise ConfigError(
            f"a call for {operation} on a policy for {policy.operation} ({routes}): give the stage a "
            f"policy with operation: {operation} in models.yaml"
        )
