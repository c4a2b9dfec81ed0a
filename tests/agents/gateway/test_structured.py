"""Structured output through the gateway: valid at once, repaired once, or a typed failure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from agents.gateway.backoff import Backoff
from agents.gateway.errors import (
    CostCapReached,
    GatewayError,
    QuotaExhausted,
    RequestRejected,
    StructuredOutputInvalid,
)
from agents.gateway.gateway import CallPolicy, CostCap, ModelGateway, Route
from agents.gateway.pricing import Price, PriceTable, Usage
from agents.gateway.providers.http import AnthropicProvider, OpenAIProvider
from agents.gateway.providers.local import LocalProvider, LocalTurn, ToolModel
from agents.gateway.providers.protocol import ChatRequest, ToolSpec
from agents.gateway.providers.simulator import SimConfig, SimulatorServer
from agents.gateway.structured import complete_structured

PRICES = PriceTable({"small": Price(0.15, 0.6), "m": Price(1.0, 2.0)})
TICKET: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "technical"]},
        "account": {"type": "string"},
        "urgent": {"type": "boolean"},
    },
    "required": ["category", "account", "urgent"],
    "additionalProperties": False,
}
REQUEST = ChatRequest(
    model="",
    messages=[{"role": "user", "content": "A technical fault on account A-7"}],
    max_tokens=64,
    response_schema=TICKET,
)
WANTED = {"category": "technical", "account": "A-7", "urgent": False}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SimConfig(latency_ms=1, jitter_ms=0))
    with server:
        yield server


@pytest.fixture
async def gateway(sim: SimulatorServer) -> AsyncIterator[ModelGateway]:
    providers = {"oa": OpenAIProvider("oa", sim.url + "/v1"), "an": AnthropicProvider("an", sim.url)}
    gateway = ModelGateway(providers, PRICES)
    yield gateway
    await gateway.aclose()


def policy(provider: str) -> CallPolicy:
    return CallPolicy(chain=(Route(provider, "small"),), backoff=Backoff(base_s=0.01, cap_s=0.01))


@pytest.mark.parametrize("provider", ["oa", "an"])
async def test_a_valid_reply_is_one_call(sim: SimulatorServer, gateway: ModelGateway, provider: str) -> None:
    calls = sim.calls
    done = await complete_structured(gateway, REQUEST, policy(provider))
    assert done.value == WANTED and not done.repaired and sim.calls == calls + 1
    assert len(done.results) == 1 and done.cost_usd == done.results[0].cost_usd > 0


@pytest.mark.parametrize("provider", ["oa", "an"])
async def test_an_invalid_reply_is_repaired_once(
    sim: SimulatorServer, gateway: ModelGateway, provider: str
) -> None:
    calls = sim.calls
    sim.queue("bad_output", None)
    done = await complete_structured(gateway, REQUEST, policy(provider))
    assert done.value == WANTED and done.repaired and sim.calls == calls + 2
    jsonschema.validate(done.value, TICKET)
    first, second = done.results
    assert done.cost_usd == first.cost_usd + second.cost_usd and first.cost_usd > 0
    # The repair round's prompt is longer (the bad reply and the correction): it was billed as such.
    assert second.completion.usage.input_tokens > first.completion.usage.input_tokens


@pytest.mark.parametrize("provider", ["oa", "an"])
async def test_a_reply_still_invalid_after_the_repair_is_a_typed_error(
    sim: SimulatorServer, gateway: ModelGateway, provider: str
) -> None:
    calls = sim.calls
    sim.queue("bad_output", "bad_output")
    with pytest.raises(StructuredOutputInvalid) as caught:
        await complete_structured(gateway, REQUEST, policy(provider))
    assert sim.calls == calls + 2  # one call and one repair round, no more
    error = caught.value
    assert (
        not error.retryable and not error.failover and error.dead_letter_reason == "structured_output_invalid"
    )
    assert error.problem == "'category' is a required property (at $)"
    assert len(error.results) == 2 and len(error.attempts) == 2
    assert sum(a.cost_usd for a in error.attempts) == sum(r.cost_usd for r in error.results) > 0


class Scripted:
    """A local model that answers with the next scripted reply and keeps every request it got."""

    def __init__(self, *replies: str | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[ChatRequest] = []

    def __call__(self, request: ChatRequest) -> LocalTurn:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return LocalTurn(reply)


def local(model: Callable[[ChatRequest], LocalTurn]) -> ModelGateway:
    return ModelGateway({"local": LocalProvider(models={"m": ToolModel(model)})}, PRICES)


LOCAL = CallPolicy(chain=(Route("local", "m"),))
GOOD = '{"category": "billing", "account": "A-1", "urgent": true}'


async def test_the_repair_round_shows_the_model_its_reply_and_what_was_wrong() -> None:
    model = Scripted('{"category": "billing",', GOOD)
    done = await complete_structured(local(model), REQUEST, LOCAL)
    assert done.repaired and done.value == {"category": "billing", "account": "A-1", "urgent": True}
    repair = model.requests[1]
    assert repair.messages[:-2] == REQUEST.messages and repair.response_schema == TICKET
    assert repair.messages[-2] == {"role": "assistant", "content": '{"category": "billing",'}
    said = repair.messages[-1]
    assert said["role"] == "user" and "it is not JSON (Expecting property name" in said["content"]


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("[1, 2]", "it is a JSON list, not an object"),
        ('{"category": "refund", "account": "A-1", "urgent": true}', "'refund' is not one of"),
        (
            '{"category": "billing", "account": "A-1", "urgent": "yes"}',
            "'yes' is not of type 'boolean' (at $.urgent)",
        ),
        ("", "it is not JSON"),
    ],
)
async def test_what_was_wrong_is_named(reply: str, problem: str) -> None:
    model = Scripted(reply, reply)
    with pytest.raises(StructuredOutputInvalid, match="after a repair round") as caught:
        await complete_structured(local(model), REQUEST, LOCAL)
    assert problem in caught.value.problem and problem in model.requests[1].messages[-1]["content"]
    assert model.requests[1].messages[-2]["content"] == (reply or "(an empty reply)")


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (replace(REQUEST, response_schema=None), "needs a request with a response_schema"),
        (replace(REQUEST, tools=(ToolSpec("lookup", "Look up"),)), "takes no tools"),
        (replace(REQUEST, response_schema={"type": "objekt"}), "not a valid JSON Schema"),
    ],
)
async def test_a_request_that_cannot_work_is_refused_before_any_call(request_: ChatRequest, why: str) -> None:
    model = Scripted(GOOD)
    with pytest.raises(RequestRejected, match=why):
        await complete_structured(local(model), request_, LOCAL)
    assert model.requests == []


async def test_a_failure_in_the_repair_round_still_carries_round_ones_cost() -> None:
    model = Scripted("not json", QuotaExhausted("spent"))
    with pytest.raises(GatewayError) as caught:
        await complete_structured(local(model), REQUEST, LOCAL)
    assert [a.outcome for a in caught.value.attempts] == ["ok", "quota_exhausted"]
    assert caught.value.attempts[0].cost_usd > 0


async def test_the_schema_counts_toward_the_cost_cap_and_the_repair_round_gets_what_is_left(
    sim: SimulatorServer, gateway: ModelGateway
) -> None:
    bare = replace(REQUEST, response_schema=None)
    assert REQUEST.prompt_tokens_estimate() > bare.prompt_tokens_estimate() + 20
    worst = PRICES.cost("small", Usage(REQUEST.prompt_tokens_estimate(), REQUEST.max_tokens))
    worst_bare = PRICES.cost("small", Usage(bare.prompt_tokens_estimate(), REQUEST.max_tokens))
    calls = sim.calls
    # A cap that a request without the schema would fit: with it, no call is made.
    with pytest.raises(GatewayError) as caught:
        await complete_structured(gateway, REQUEST, policy("oa"), cost_cap=CostCap((worst + worst_bare) / 2))
    assert isinstance(caught.value.__cause__, CostCapReached) and sim.calls == calls
    # Room for round one's worst case only: once it has spent, the (longer) repair does not fit.
    sim.queue("bad_output")
    with pytest.raises(GatewayError) as caught:
        await complete_structured(gateway, REQUEST, policy("oa"), cost_cap=CostCap(worst * 1.01))
    assert caught.value.dead_letter_reason == "cost_cap" and sim.calls == calls + 1
    assert [a.outcome for a in caught.value.attempts] == ["ok"] and caught.value.attempts[0].cost_usd > 0
