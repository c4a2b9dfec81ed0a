"""Embeddings through the gateway: the route loop and attempt of a chat call (retries, fallback
to another provider of the same model, breaker, cost, deadline, spans), never the cache."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agents.gateway.backoff import Backoff
from agents.gateway.breaker import CircuitBreaker
from agents.gateway.cache import ResponseCache
from agents.gateway.errors import BudgetSpent
from agents.gateway.gateway import CallPolicy, CostCap, GatewayError, ModelGateway, Route
from agents.gateway.pricing import Price, PriceTable, Usage
from agents.gateway.providers.http import AnthropicProvider, OpenAIProvider
from agents.gateway.providers.protocol import ChatRequest, EmbeddingRequest, Embeddings
from agents.gateway.providers.simulator import SimConfig, SimulatorServer
from streams.errors import ConfigError
from streams.telemetry.otel import Telemetry

MODEL = "text-embedding-3-small"
PRICES = PriceTable({MODEL: Price(0.02, 0.0), "chat": Price(1.0, 2.0)})
FAST = Backoff(base_s=0.01, cap_s=0.05, max_retries=2)
TEXTS = ["How do I get a refund for a double charge?", "Refund a charge made twice", "Kafka partitions"]


def embeddings(*routes: Route, backoff: Backoff = FAST) -> CallPolicy:
    return CallPolicy(chain=routes, backoff=backoff, timeout_s=5.0, operation="embeddings")


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SimConfig(latency_ms=1, jitter_ms=0, retry_after_s=0.2))
    with server:
        yield server


@pytest.fixture
async def gateway(server: SimulatorServer) -> AsyncIterator[ModelGateway]:
    providers = {
        "oa": OpenAIProvider("oa", server.url + "/v1"),
        "ob": OpenAIProvider("ob", server.url + "/v1"),
        "an": AnthropicProvider("an", server.url),
    }
    yield ModelGateway(
        providers,
        PRICES,
        breaker=lambda: CircuitBreaker(window_s=30, min_calls=3, failure_rate=0.5, cooldown_s=0.5),
        cache=ResponseCache(ttl_s=60),
    )
    for provider in providers.values():
        await provider.aclose()


async def test_vectors_come_back_as_unit_rows_in_order_and_cost_their_input_tokens(
    gateway: ModelGateway,
) -> None:
    result = await gateway.embed(TEXTS, embeddings(Route("oa", MODEL)))
    vectors = result.embeddings.vectors
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32
    assert result.embeddings.dimensions == 256 and result.embeddings.model == MODEL
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.2  # the simulator's hashed words: similar texts, similar rows
    usage = result.embeddings.usage
    assert usage.input_tokens > 0 and usage.output_tokens == 0
    assert result.cost_usd == PRICES.cost(MODEL, usage) > 0
    # A policy's dimensions are asked of the provider (OpenAI's text-embedding-3-* take them).
    short = await gateway.embed(
        TEXTS, CallPolicy((Route("oa", MODEL),), operation="embeddings", dimensions=64)
    )
    assert short.embeddings.vectors.shape == (3, 64) and short.embeddings.dimensions == 64
    # Asked one at a time, each text gets the row it got in the batch.
    alone = await gateway.embed([TEXTS[2]], embeddings(Route("oa", MODEL)))
    assert np.allclose(alone.embeddings.vectors[0], vectors[2], atol=1e-6)


async def test_a_429_is_retried_after_its_retry_after(server: SimulatorServer, gateway: ModelGateway) -> None:
    server.queue("rate_limit", None)
    started = time.monotonic()
    result = await gateway.embed(TEXTS, embeddings(Route("oa", MODEL), Route("ob", MODEL)))
    assert time.monotonic() - started >= 0.2
    assert [a.outcome for a in result.attempts] == ["rate_limited", "ok"]
    assert (result.retries, result.fallbacks, result.route.provider) == (1, 0, "oa")


async def test_a_failing_provider_falls_back_to_another_provider_of_the_same_model(
    server: SimulatorServer, gateway: ModelGateway
) -> None:
    server.queue("quota", None)
    result = await gateway.embed(TEXTS, embeddings(Route("oa", MODEL), Route("ob", MODEL)))
    assert [(a.provider, a.outcome) for a in result.attempts] == [("oa", "quota_exhausted"), ("ob", "ok")]
    assert result.route == Route("ob", MODEL) and result.fallbacks == 1
    # Cost is summed over the attempts: the failed one used nothing, the one that answered is billed.
    assert result.cost_usd == sum(a.cost_usd for a in result.attempts) == result.attempts[1].cost_usd > 0


async def test_the_breaker_opens_and_an_open_circuit_makes_no_call(
    server: SimulatorServer, gateway: ModelGateway
) -> None:
    route = Route("oa", MODEL)
    server.queue("server_error", "server_error", "server_error")
    for _ in range(3):
        with pytest.raises(GatewayError) as caught:
            await gateway.embed(TEXTS, embeddings(route, backoff=Backoff(max_retries=0)))
        assert caught.value.retryable and caught.value.dead_letter_reason == "provider_5xx"
    assert gateway.breaker(route).state == "open"
    calls = server.calls
    result = await gateway.embed(TEXTS, embeddings(route, Route("ob", MODEL)))
    assert server.calls == calls + 1 and result.route.provider == "ob"  # oa skipped, not called
    assert result.decisions == (f"skipped oa/{MODEL}: circuit open",)


async def test_the_deadline_and_the_cost_cap_bound_an_embedding_call(gateway: ModelGateway) -> None:
    with pytest.raises(BudgetSpent):
        await gateway.embed(TEXTS, embeddings(Route("oa", MODEL)), deadline=time.monotonic() - 1)
    worst = PRICES.cost(MODEL, EmbeddingRequest(MODEL, tuple(TEXTS)).worst_case())
    with pytest.raises(GatewayError) as caught:
        await gateway.embed(TEXTS, embeddings(Route("oa", MODEL)), cap=CostCap(worst / 2))
    assert caught.value.dead_letter_reason == "cost_cap" and not caught.value.attempts
    fits = await gateway.embed(TEXTS, embeddings(Route("oa", MODEL)), cap=CostCap(worst * 2))
    assert fits.cost_usd <= worst * 2


async def test_embeddings_are_never_served_from_or_kept_in_the_response_cache(
    server: SimulatorServer, gateway: ModelGateway
) -> None:
    calls = server.calls
    for _ in range(2):
        await gateway.embed(TEXTS, embeddings(Route("oa", MODEL)))
    assert server.calls == calls + 2
    assert gateway._cache is not None and gateway._cache._entries == {}


async def test_a_policy_serves_one_operation(gateway: ModelGateway) -> None:
    chat = CallPolicy(chain=(Route("oa", "chat"),))
    with pytest.raises(ConfigError, match="a call for embeddings on a policy for chat"):
        await gateway.embed(TEXTS, chat)
    request = ChatRequest(model="", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ConfigError, match="a call for chat on a policy for embeddings"):
        await gateway.complete(request, embeddings(Route("oa", MODEL)))
    with pytest.raises(ConfigError, match="operation: chat"):
        gateway.stream(request, embeddings(Route("oa", MODEL)))


async def test_an_anthropic_route_refuses_without_counting_against_its_circuit(
    gateway: ModelGateway,
) -> None:
    with pytest.raises(GatewayError) as caught:
        await gateway.embed(TEXTS, embeddings(Route("an", MODEL)))
    assert "no embeddings API" in str(caught.value) and not caught.value.retryable
    assert gateway.breaker(Route("an", MODEL)).state == "closed"


async def test_no_texts_make_no_call_and_one_str_is_refused(
    server: SimulatorServer, gateway: ModelGateway
) -> None:
    calls = server.calls
    result = await gateway.embed([], embeddings(Route("oa", MODEL)))
    assert server.calls == calls and result.embeddings.vectors.shape[0] == 0 and result.cost_usd == 0
    with pytest.raises(TypeError, match="wrap one text in a list"):
        await gateway.embed("one text", embeddings(Route("oa", MODEL)))


@dataclass
class RawProvider:
    """Answers rows of any length (and a zero row for an empty text), or the wrong number."""

    name: str = "raw"
    rows: int | None = None
    requests: list[EmbeddingRequest] = field(default_factory=list)

    async def embed(self, request: EmbeddingRequest, timeout_s: float) -> Embeddings:
        self.requests.append(request)
        vectors = np.array([[3.0, 4.0] if text else [0.0, 0.0] for text in request.inputs], np.float32)
        if self.rows is not None:
            vectors = vectors[: self.rows]
        return Embeddings(vectors, request.model, 2, Usage(len(request.inputs)), self.name, 0.0)

    async def aclose(self) -> None:
        return None


async def test_the_gateway_makes_unit_rows_and_refuses_a_short_answer() -> None:
    provider = RawProvider()
    gateway = ModelGateway({"raw": provider}, PriceTable({"m": Price(1.0, 0.0)}))
    result = await gateway.embed(["a", ""], embeddings(Route("raw", "m")))
    assert np.allclose(result.embeddings.vectors, [[0.6, 0.8], [0.0, 0.0]])  # a zero row stays zero
    assert provider.requests[0] == EmbeddingRequest("m", ("a", "")) and result.cost_usd == 2e-6
    # A provider that ignores the dimensions asked for gives vectors of another length: refused.
    policy = CallPolicy((Route("raw", "m"),), backoff=Backoff(max_retries=0), operation="embeddings")
    with pytest.raises(GatewayError, match=r"\(1, 2\) vectors for 1 inputs of 3 dimensions"):
        await gateway.embed(["a"], replace(policy, dimensions=3))
    provider.rows = 1
    with pytest.raises(GatewayError, match=r"\(1, 2\) vectors for 2 inputs"):
        await gateway.embed(["a", "b"], embeddings(Route("raw", "m"), backoff=Backoff(max_retries=0)))


async def test_each_embedding_call_is_a_gen_ai_span_and_metric(server: SimulatorServer) -> None:
    spans, metrics = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(tracer_provider, MeterProvider(metric_readers=[metrics]))
    provider = OpenAIProvider("oa", server.url + "/v1")
    gateway = ModelGateway({"oa": provider}, PRICES, telemetry=telemetry)
    server.queue("server_error", None)
    result = await gateway.embed(TEXTS, embeddings(Route("oa", MODEL)))
    await provider.aclose()
    failed, ok = spans.get_finished_spans()
    assert ok.name == failed.name == f"embeddings {MODEL}"
    attrs = dict(ok.attributes or {})
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == MODEL
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "oa"
    assert attrs["gen_ai.usage.input_tokens"] == result.embeddings.usage.input_tokens > 0
    assert attrs["gen_ai.embeddings.dimension.count"] == 256
    assert attrs["podium.cost.usd"] == pytest.approx(result.cost_usd)
    assert "gen_ai.request.max_tokens" not in attrs
    assert dict(failed.attributes or {})["error.type"] == "provider_5xx"
    data = metrics.get_metrics_data()
    assert data is not None
    points = {
        m.name: [dict(p.attributes or {}) for p in m.data.data_points]
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
    }
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage", "podium.gen_ai.cost"} <= set(
        points
    )
    assert all(p["gen_ai.operation.name"] == "embeddings" for p in points["gen_ai.client.operation.duration"])
    # Input tokens only: an embedding writes none.
    assert {p["gen_ai.token.type"] for p in points["gen_ai.client.token.usage"]} == {"input"}


async def test_a_route_to_a_provider_models_yaml_does_not_have_is_a_config_error(
    gateway: ModelGateway,
) -> None:
    # An index version records the route that embedded it; a models.yaml that dropped that
    # provider is named in the error (not a KeyError, not retried as a provider's fault).
    with pytest.raises(ConfigError, match=r"no provider 'gone' in models\.yaml"):
        await gateway.embed(["a"], embeddings(Route("gone", "text-embedding-3-small")))
