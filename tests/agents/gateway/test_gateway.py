"""The gateway against the simulator over real HTTP: retries, failover, breaker, deadline, cost."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from agents.gateway.backoff import Backoff
from agents.gateway.breaker import CircuitBreaker
from agents.gateway.gateway import CallPolicy, CostCap, GatewayError, GatewayResult, ModelGateway, Route
from agents.gateway.pricing import Price, PriceTable, Usage
from agents.gateway.providers.http import AnthropicProvider, OpenAIProvider
from agents.gateway.providers.protocol import ChatRequest, ToolSpec
from agents.gateway.providers.simulator import FAULTS, SimConfig, SimulatorServer
from streams.errors import DeadlineExceeded

PRICES = PriceTable({"small": Price(0.15, 0.6), "large": Price(3.0, 15.0), "long": Price(5.0, 20.0)})
REQUEST = ChatRequest(model="", messages=[{"role": "user", "content": "Where is my invoice?"}], max_tokens=64)
FAST = Backoff(base_s=0.01, cap_s=0.05, max_retries=2)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SimConfig(latency_ms=2, jitter_ms=1, retry_after_s=0.3, timeout_s=2.0))
    with server:
        yield server


@pytest.fixture
async def gateway(sim: SimulatorServer) -> AsyncIterator[ModelGateway]:
    url = sim.url
    providers = {"oa": OpenAIProvider("oa", url + "/v1"), "an": AnthropicProvider("an", url)}
    yield ModelGateway(
        providers,
        PRICES,
        breaker=lambda: CircuitBreaker(window_s=30, min_calls=3, failure_rate=0.5, cooldown_s=0.5),
    )
    for provider in providers.values():
        await provider.aclose()


def policy(*routes: Route, backoff: Backoff = FAST) -> CallPolicy:
    return CallPolicy(chain=routes, backoff=backoff, timeout_s=5.0)


async def test_retryable_errors_are_retried_and_retry_after_is_honoured(
    sim: SimulatorServer, gateway: ModelGateway
) -> None:
    sim.queue("server_error", "rate_limit", None)
    started = time.monotonic()
    result = await gateway.complete(REQUEST, policy(Route("oa", "small")))
    assert time.monotonic() - started >= 0.3  # the 429's Retry-After
    assert [a.outcome for a in result.attempts] == ["provider_5xx", "rate_limited", "ok"]
    assert (result.retries, result.fallbacks) == (2, 0)
    assert result.cost_usd == PRICES.cost("small", result.completion.usage) > 0  # failures cost nothing


async def test_a_non_retryable_error_is_not_retried(sim: SimulatorServer, gateway: ModelGateway) -> None:
    sim.queue("bad_request")
    calls = sim.calls
    with pytest.raises(GatewayError) as caught:
        await gateway.complete(REQUEST, policy(Route("oa", "small"), Route("an", "large")))
    assert sim.calls == calls + 1 and not caught.value.retryable
    assert caught.value.dead_letter_reason == "request_rejected"


async def test_quota_fails_over_at_once_without_waiting(sim: SimulatorServer) -> None:
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    providers = {"oa": OpenAIProvider("oa", sim.url + "/v1"), "an": AnthropicProvider("an", sim.url)}
    gateway = ModelGateway(providers, PRICES, sleep=record_wait)
    sim.queue("quota", None)
    result = await gateway.complete(
        REQUEST, policy(Route("oa", "small"), Route("an", "large"), backoff=Backoff(base_s=5, cap_s=5))
    )
    await gateway.aclose()
    assert waits == []  # no backoff, no Retry-After: straight to the next provider
    assert (result.route.provider, result.fallbacks, result.retries) == ("an", 1, 0)


async def test_a_context_error_goes_to_a_longer_context_model(gateway: ModelGateway) -> None:
    long_request = ChatRequest(model="", messages=[{"role": "user", "content": "x" * 40_000}], max_tokens=16)
    chain = (Route("oa", "small", 8192), Route("an", "large", 8192), Route("oa", "long", 200_000))
    # The simulator's window is 8192 for every model; "long" is declared longer, so it is chosen,
    # and its call fails the same way: what matters here is which routes were tried.
    with pytest.raises(GatewayError) as caught:
        await gateway.complete(long_request, policy(*chain))
    assert [(a.provider, a.model) for a in caught.value.attempts] == [("oa", "small"), ("oa", "long")]
    assert caught.value.dead_letter_reason == "context_too_long"


async def test_the_breaker_opens_then_probes_after_cooldown(
    sim: SimulatorServer, gateway: ModelGateway
) -> None:
    route = Route("an", "large")
    sim.queue("overloaded", "overloaded", "overloaded")
    for _ in range(3):  # each overload fails over to the end of a one-route chain
        with pytest.raises(GatewayError):
            await gateway.complete(REQUEST, policy(route))
    assert gateway.breaker(route).state == "open"
    calls = sim.calls
    with pytest.raises(GatewayError):
        await gateway.complete(REQUEST, policy(route))
    assert sim.calls == calls  # an open circuit makes no HTTP call
    await asyncio.sleep(0.6)
    result = await gateway.complete(REQUEST, policy(route))  # the probe
    assert result.completion.text and gateway.breaker(route).state == "closed"


async def test_the_deadline_bounds_retries_and_waits(sim: SimulatorServer) -> None:
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    provider = OpenAIProvider("oa", sim.url + "/v1")
    gateway = ModelGateway({"oa": provider}, PRICES, sleep=record_wait)
    sim.queue("rate_limit")
    with pytest.raises(GatewayError) as caught:  # Retry-After 0.3 s does not fit in...
        await gateway.complete(REQUEST, policy(Route("oa", "small")), deadline=time.monotonic() + 0.25)
    assert waits == [] and caught.value.retryable  # ...0.25 s: it gave up instead of waiting
    sim.queue("rate_limit", None)
    await gateway.complete(REQUEST, policy(Route("oa", "small")), deadline=time.monotonic() + 5)
    assert waits == [0.3]  # with budget to spare, the hint is honoured exactly
    with pytest.raises(DeadlineExceeded):
        await gateway.complete(REQUEST, policy(Route("oa", "small")), deadline=time.monotonic() - 1)
    await gateway.aclose()


async def test_a_fault_storm_ends_with_every_request_answered_or_failed_with_a_reason(
    sim: SimulatorServer,
) -> None:
    storm = SimConfig(
        seed=11,
        fault_rate=0.3,
        faults=tuple(f for f in FAULTS if f != "timeout"),
        latency_ms=1,
        jitter_ms=1,
        retry_after_s=0.05,
    )
    with SimulatorServer(storm) as url:
        providers = {"oa": OpenAIProvider("oa", url + "/v1"), "an": AnthropicProvider("an", url)}
        gw = ModelGateway(providers, PRICES, breaker=lambda: CircuitBreaker(min_calls=10**9))
        chain = policy(Route("oa", "small"), Route("an", "large"))
        limit = asyncio.Semaphore(100)

        async def one(i: int) -> tuple[str, float, float]:
            async with limit:
                request = ChatRequest(
                    model="", messages=[{"role": "user", "content": f"ticket {i}"}], max_tokens=32
                )
                try:
                    result = await gw.complete(request, chain)
                except GatewayError as exc:
                    assert exc.dead_letter_reason  # a reason for the dead letter
                    return "failed", sum(a.cost_usd for a in exc.attempts), 0.0
                ok = [a for a in result.attempts if a.outcome == "ok"]
                assert len(ok) == 1
                return "answered", result.cost_usd, PRICES.cost(result.route.model, result.completion.usage)

        outcomes = await asyncio.gather(*(one(i) for i in range(2000)))
        for provider in providers.values():
            await provider.aclose()
    answered = [o for o in outcomes if o[0] == "answered"]
    assert len(outcomes) == 2000 and len(answered) > 1800
    # Charged once per successful call: the cost is the price of the one call that answered.
    assert all(abs(cost - expected) < 1e-12 for _, cost, expected in answered)
    assert all(cost == 0.0 for kind, cost, _ in outcomes if kind == "failed")


async def test_each_model_call_is_a_gen_ai_span_and_metric_with_its_cost(sim: SimulatorServer) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from streams.telemetry.otel import Telemetry

    spans, metrics = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(tracer_provider, MeterProvider(metric_readers=[metrics]))
    provider = OpenAIProvider("oa", sim.url + "/v1", api_key="sk-planted-key-123")
    gw = ModelGateway({"oa": provider}, PRICES, telemetry=telemetry)
    sim.queue("server_error", None)
    result = await gw.complete(REQUEST, policy(Route("oa", "small")))
    await provider.aclose()
    failed, ok = spans.get_finished_spans()
    assert ok.name == failed.name == "chat small"
    attrs = dict(ok.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.provider.name"] == "oa"
    assert attrs["gen_ai.usage.output_tokens"] == result.completion.usage.output_tokens
    assert attrs["podium.cost.usd"] == pytest.approx(result.cost_usd)
    assert dict(failed.attributes or {})["error.type"] == "provider_5xx"
    data = metrics.get_metrics_data()
    assert data is not None
    names = {m.name for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage", "podium.gen_ai.cost"} <= names
    # The API key is in no span attribute, event or name.
    dumped = "".join(str(s.to_json()) for s in spans.get_finished_spans())
    assert "planted" not in dumped


async def test_a_stream_that_breaks_mid_way_resets_and_fails_over(
    sim: SimulatorServer, gateway: ModelGateway
) -> None:
    from agents.gateway.gateway import GatewayResult, Reset

    sim.queue("cut_stream", None)
    events = [e async for e in gateway.stream(REQUEST, policy(Route("oa", "small"), Route("an", "large")))]
    resets = [i for i, e in enumerate(events) if isinstance(e, Reset)]
    assert len(resets) == 1 and resets[0] > 0  # some text came before the break
    assert isinstance(events[resets[0]], Reset) and events[resets[0]].next_route == Route("an", "large")
    result = events[-1]
    assert isinstance(result, GatewayResult) and result.route.provider == "an"
    # The consumer rebuilds the exact final text from what followed the reset.
    assert "".join(e for e in events[resets[0] + 1 : -1] if isinstance(e, str)) == result.completion.text
    broken, ok = result.attempts
    assert broken.outcome == "stream_broken" and broken.usage.estimated and broken.cost_usd > 0
    assert result.cost_usd == broken.cost_usd + ok.cost_usd  # what the broken stream used is billed too


async def test_a_stream_without_faults_is_one_attempt(gateway: ModelGateway) -> None:
    from agents.gateway.gateway import GatewayResult

    events = [e async for e in gateway.stream(REQUEST, policy(Route("an", "large")))]
    result = events[-1]
    assert isinstance(result, GatewayResult) and len(result.attempts) == 1
    assert "".join(e for e in events[:-1] if isinstance(e, str)) == result.completion.text
    assert not result.completion.usage.estimated


async def test_a_short_budget_skips_the_slow_route_and_says_so(gateway: ModelGateway) -> None:
    chain = policy(Route("an", "large", min_budget_s=2.0), Route("oa", "small"))
    result = await gateway.complete(REQUEST, chain, deadline=time.monotonic() + 0.8)
    assert result.route.model == "small"
    assert (
        len(result.decisions) == 1
        and "skipped an/large" in result.decisions[0]
        and "needs 2.00s" in result.decisions[0]
    )
    roomy = await gateway.complete(REQUEST, chain, deadline=time.monotonic() + 10)
    assert roomy.route.model == "large" and roomy.decisions == ()


async def test_a_cost_cap_skips_routes_it_cannot_afford_and_says_so(
    sim: SimulatorServer, gateway: ModelGateway
) -> None:
    chain = policy(Route("oa", "large"), Route("oa", "small"))
    worst_large = PRICES.cost("large", Usage(REQUEST.prompt_tokens_estimate(), REQUEST.max_tokens))
    worst_small = PRICES.cost("small", Usage(REQUEST.prompt_tokens_estimate(), REQUEST.max_tokens))
    assert worst_small < worst_large
    calls = sim.calls
    # Enough left for the small model only: the large one is skipped before any call.
    cheap = await gateway.complete(
        REQUEST, chain, cost_cap=CostCap(limit_usd=0.01, spent_usd=0.01 - worst_small)
    )
    assert cheap.route.model == "small" and sim.calls == calls + 1
    assert cheap.decisions and "skipped oa/large: could cost" in cheap.decisions[0]
    assert cheap.cost_usd <= worst_small
    # Nothing affordable: no call at all, and an error that says why.
    with pytest.raises(GatewayError) as caught:
        await gateway.complete(REQUEST, chain, cost_cap=CostCap(limit_usd=0.001, spent_usd=0.001))
    assert caught.value.dead_letter_reason == "cost_cap" and sim.calls == calls + 1
    assert len(caught.value.decisions) == 2 and not caught.value.attempts
    # Streams obey the same cap.
    events = [e async for e in gateway.stream(REQUEST, chain, cost_cap=CostCap(0.01, 0.01 - worst_small))]
    assert isinstance(events[-1], GatewayResult) and events[-1].route.model == "small"


LOOKUP = ToolSpec(
    "lookup_invoices",
    "Find the invoices of an account",
    {"type": "object", "properties": {"account_id": {"type": "string"}}, "required": ["account_id"]},
)
REFUND = ToolSpec(
    "refund_invoice",
    "Give the money of one invoice back",
    {"type": "object", "properties": {"invoice_id": {"type": "string"}}, "required": ["invoice_id"]},
)
ASK_TOOLS = ChatRequest(
    model="",
    messages=[{"role": "user", "content": "Look up the invoices of A-1001 and refund INV-7"}],
    max_tokens=64,
    tools=(LOOKUP, REFUND),
)


def arguments(result: GatewayResult) -> list[tuple[str, dict[str, str]]]:
    return [(c.name, json.loads(c.arguments)) for c in result.completion.tool_calls]


async def test_a_fallback_from_openai_to_anthropic_carries_the_tools_and_the_conversation(
    sim: SimulatorServer, gateway: ModelGateway
) -> None:
    chain = policy(Route("oa", "small"), Route("an", "large"))
    sim.queue("overloaded", None)
    asked = await gateway.complete(ASK_TOOLS, chain)
    # Anthropic read the tools and the question that were written for OpenAI first.
    assert (asked.route.provider, asked.fallbacks) == ("an", 1)
    assert arguments(asked) == [
        ("lookup_invoices", {"account_id": "A-1001"}),
        ("refund_invoice", {"invoice_id": "INV-7"}),
    ]
    assert [c.id for c in asked.completion.tool_calls] == ["toolu_sim_1", "toolu_sim_2"]
    conversation = [
        *ASK_TOOLS.messages,
        {"role": "assistant", "content": "", "tool_calls": [c.__dict__ for c in asked.completion.tool_calls]},
        {
            "role": "tool",
            "tool_call_id": "toolu_sim_1",
            "name": "lookup_invoices",
            "content": "INV-7: 30 EUR",
        },
        {
            "role": "tool",
            "tool_call_id": "toolu_sim_2",
            "name": "refund_invoice",
            "content": "not allowed",
            "is_error": True,
        },
    ]
    follow_up = replace(ASK_TOOLS, messages=conversation)
    # Back on OpenAI the Anthropic ids and results fit as they are...
    on_openai = await gateway.complete(follow_up, chain)
    assert on_openai.route.provider == "oa" and on_openai.completion.tool_calls == ()
    assert "lookup_invoices returned: INV-7: 30 EUR" in on_openai.completion.text
    # ...and failing over again, Anthropic gets them as one user message of results, error flag kept.
    sim.queue("quota", None)
    on_anthropic = await gateway.complete(follow_up, chain)
    assert on_anthropic.route.provider == "an" and on_anthropic.completion.tool_calls == ()
    assert on_anthropic.completion.text == (
        "[sim] lookup_invoices returned: INV-7: 30 EUR; refund_invoice failed: not allowed"
    )


async def test_a_stream_cut_inside_tool_arguments_fails_over_and_bills_what_it_saw(
    sim: SimulatorServer, gateway: ModelGateway
) -> None:
    sim.queue("cut_stream", None)
    events = [e async for e in gateway.stream(ASK_TOOLS, policy(Route("oa", "small"), Route("an", "large")))]
    result = events[-1]
    assert isinstance(result, GatewayResult) and events[:-1] == []  # no text, so nothing to reset
    assert result.route.provider == "an" and [n for n, _ in arguments(result)] == [
        "lookup_invoices",
        "refund_invoice",
    ]
    broken, ok = result.attempts
    assert broken.outcome == "stream_broken" and broken.usage.estimated and broken.cost_usd > 0
    assert result.cost_usd == broken.cost_usd + ok.cost_usd


async def test_tool_calls_are_retried_breakered_and_billed_like_text(
    sim: SimulatorServer, gateway: ModelGateway
) -> None:
    route = Route("oa", "small")
    sim.queue("rate_limit", None)
    result = await gateway.complete(ASK_TOOLS, policy(route))
    assert [a.outcome for a in result.attempts] == ["rate_limited", "ok"] and result.retries == 1
    assert result.completion.finish_reason == "tool_calls" and len(result.completion.tool_calls) == 2
    # Billed at the provider's count, which includes the tools sent and the arguments written.
    usage = result.completion.usage
    plain = await gateway.complete(replace(ASK_TOOLS, tools=()), policy(route))
    assert usage.input_tokens > plain.completion.usage.input_tokens
    assert result.cost_usd == PRICES.cost("small", usage) > 0
    assert gateway.breaker(route).state == "closed"
