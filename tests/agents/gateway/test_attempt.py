"""Complete and stream make the same attempt: the same rate-limit wait bounded by the deadline,
the same timeout, the same books and the same span, seen from outside (no HTTP, a fake clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from agents.gateway.errors import BudgetSpent, RateLimited
from agents.gateway.gateway import CallPolicy, GatewayResult, ModelGateway, Route
from agents.gateway.pricing import Price, PriceTable, Usage
from agents.gateway.providers.protocol import ChatRequest, Completion, StreamPiece
from agents.gateway.ratelimit import RateLimiter
from streams.telemetry import Telemetry

PRICES = PriceTable({"m": Price(1.0, 2.0)})
REQUEST = ChatRequest(model="", messages=[{"role": "user", "content": "Where is my invoice?"}], max_tokens=8)
POLICY = CallPolicy(chain=(Route("fake", "m"),), timeout_s=45.0)
MODES = ["complete", "stream"]


@dataclass
class FakeProvider:
    """Answers "hello world" whole or in two deltas; ``failures`` are raised first, one per call."""

    name: str = "fake"
    failures: list[Exception] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)

    def _answer(self, request: ChatRequest, timeout_s: float) -> Completion:
        self.timeouts.append(timeout_s)
        if self.failures:
            raise self.failures.pop(0)
        return Completion("hello world", request.model, "stop", Usage(10, 2), self.name, 0.0)

    async def complete(self, request: ChatRequest, timeout_s: float) -> Completion:
        return self._answer(request, timeout_s)

    async def stream(self, request: ChatRequest, timeout_s: float) -> AsyncIterator[StreamPiece]:
        final = self._answer(request, timeout_s)
        yield StreamPiece(text="hello ")
        yield StreamPiece(text="world")
        yield StreamPiece(final=final)

    async def aclose(self) -> None:
        return None


@dataclass
class FakeTime:
    now: float = 100.0
    waits: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def make(
    provider: FakeProvider,
    time: FakeTime,
    limiter: RateLimiter | None = None,
    telemetry: Telemetry | None = None,
) -> ModelGateway:
    limits = {"fake": limiter} if limiter is not None else {}
    return ModelGateway(
        {"fake": provider}, PRICES, limits=limits, clock=time.clock, sleep=time.sleep, telemetry=telemetry
    )


async def call(gateway: ModelGateway, mode: str, deadline: float | None = None) -> GatewayResult:
    """One request through the gateway, whole or streamed; a stream's text must add up."""
    if mode == "complete":
        return await gateway.complete(REQUEST, POLICY, deadline)
    events = [event async for event in gateway.stream(REQUEST, POLICY, deadline)]
    result = events[-1]
    assert isinstance(result, GatewayResult)
    assert "".join(e for e in events if isinstance(e, str)) == result.completion.text
    return result


@pytest.mark.parametrize("mode", MODES)
async def test_the_rate_limit_wait_and_the_timeout_are_bounded_by_the_deadline_alike(mode: str) -> None:
    provider, time = FakeProvider(), FakeTime()
    gateway = make(provider, time, RateLimiter(requests_per_minute=1))
    await call(gateway, mode)  # the bucket's one request: no wait, the policy's timeout
    result = await call(gateway, mode, deadline=time.now + 90)  # the next is 60 s away
    assert time.waits == [60.0]
    assert provider.timeouts == [45.0, 30.0]  # after the wait, 30 s of the deadline are left
    assert [a.outcome for a in result.attempts] == ["ok"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_wait_longer_than_the_deadline_is_not_waited_and_nothing_is_called(mode: str) -> None:
    provider, time = FakeProvider(), FakeTime()
    gateway = make(provider, time, RateLimiter(requests_per_minute=1))
    await call(gateway, mode)
    with pytest.raises(BudgetSpent, match=r"rate limit of fake needs 60\.00s; 50\.00s left") as caught:
        await call(gateway, mode, deadline=time.now + 50)
    assert time.waits == [] and len(provider.timeouts) == 1 and caught.value.attempts == ()
    with pytest.raises(BudgetSpent, match="no budget left"):  # a spent deadline reserves nothing
        await call(gateway, mode, deadline=time.now)
    assert gateway.breaker(POLICY.chain[0]).state == "closed"


@pytest.mark.parametrize("mode", MODES)
async def test_a_failure_is_booked_and_retried_alike(mode: str) -> None:
    provider, time = (
        FakeProvider(failures=[RateLimited("HTTP 429", status=429, retry_after_s=2.0)]),
        FakeTime(),
    )
    result = await call(make(provider, time), mode)
    assert time.waits == [2.0]  # the Retry-After, from the one route loop
    assert [(a.outcome, a.cost_usd) for a in result.attempts] == [
        ("rate_limited", 0.0),
        ("ok", PRICES.cost("m", Usage(10, 2))),
    ]


async def test_complete_and_stream_draw_the_same_span() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(tracer_provider, MeterProvider())
    time = FakeTime()
    gateway = make(FakeProvider(), time, telemetry=telemetry)
    for mode in MODES:
        await call(gateway, mode, deadline=time.now + 10)
    whole, streamed = spans.get_finished_spans()
    assert whole.name == streamed.name == "chat m"
    assert dict(whole.attributes or {}) == dict(streamed.attributes or {})
    attributes = dict(whole.attributes or {})
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["podium.gateway.timeout_s"] == 10.0


@pytest.mark.parametrize("mode", MODES)
async def test_a_half_open_circuits_trial_that_ends_without_an_outcome_lets_the_next_call_try(
    mode: str,
) -> None:
    provider, time = FakeProvider(), FakeTime()
    gateway = make(provider, time, RateLimiter(requests_per_minute=1))
    route = POLICY.chain[0]
    breaker = gateway.breaker(route)
    breaker.state, breaker.opened_at = "open", time.now - breaker.cooldown_s  # cooled down: half-open next
    await call(gateway, mode)  # uses the bucket's one request; the trial succeeds and closes it
    assert breaker.state == "closed"
    breaker.state, breaker.opened_at = "open", time.now - breaker.cooldown_s
    # The trial is let through, then the rate limit does not fit the deadline: no call, no outcome.
    with pytest.raises(BudgetSpent, match="rate limit"):
        await call(gateway, mode, deadline=time.now + 10)
    assert breaker.state == "half_open"
    time.now += 60  # the bucket refills: the next call is the trial, not refused by a held probe
    result = await call(gateway, mode)
    assert [a.outcome for a in result.attempts] == ["ok"] and breaker.state == "closed"


async def test_an_answer_already_paid_for_survives_a_failing_circuit_watcher_and_a_failing_cache() -> None:
    from agents.gateway.cache import ResponseCache
    from streams.errors import BrokerError

    class RefusingStore:
        async def save(self, _entry: object) -> None:
            raise BrokerError("Kafka did not acknowledge")

    def watcher(_provider: str, _model: str, _state: str) -> None:
        raise RuntimeError("a watcher's bug")

    provider, time = FakeProvider(), FakeTime()
    gateway = ModelGateway(
        {"fake": provider},
        PRICES,
        clock=time.clock,
        sleep=time.sleep,
        cache=ResponseCache(60.0, store=RefusingStore()),  # type: ignore[arg-type]
        on_circuit=watcher,
    )
    breaker = gateway.breaker(POLICY.chain[0])
    breaker.state, breaker.opened_at = "open", time.now - breaker.cooldown_s
    result = await call(gateway, "complete")
    assert result.completion.text == "hello world" and [a.outcome for a in result.attempts] == ["ok"]
    assert len(provider.timeouts) == 1  # called once, paid once
