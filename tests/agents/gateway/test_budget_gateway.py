"""The gateway reserves each call's worst case with the ledger and settles what it cost, for
whole, streamed and broken calls alike (the simulator over real HTTP, the in-process ledger)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from agents.gateway.backoff import Backoff
from agents.gateway.budget import Grant, InMemoryLedger, Limits
from agents.gateway.errors import BudgetUnavailable
from agents.gateway.gateway import CallPolicy, GatewayError, GatewayResult, ModelGateway, Reset, Route
from agents.gateway.pricing import Price, PriceTable, Usage
from agents.gateway.providers.http import OpenAIProvider
from agents.gateway.providers.protocol import ChatRequest, Completion
from agents.gateway.providers.simulator import SimConfig, SimulatorServer

PRICES = PriceTable({"small": Price(0.15, 0.6), "large": Price(3.0, 15.0)})
REQUEST = ChatRequest(model="", messages=[{"role": "user", "content": "Where is my invoice?"}], max_tokens=64)
WORST_LARGE = PRICES.cost("large", REQUEST.upper_bound())
WORST_SMALL = PRICES.cost("small", REQUEST.upper_bound())


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SimConfig(latency_ms=2, jitter_ms=1, timeout_s=2.0))
    with server:
        yield server


@pytest.fixture
def ledger() -> InMemoryLedger:
    return InMemoryLedger({"acme": Limits(per_day_usd=WORST_LARGE * 3)})


@pytest.fixture
async def gateway(sim: SimulatorServer, ledger: InMemoryLedger) -> AsyncIterator[ModelGateway]:
    provider = OpenAIProvider("oa", sim.url + "/v1")
    yield ModelGateway({"oa": provider}, PRICES, ledger=ledger)
    await provider.aclose()


def policy(*routes: Route) -> CallPolicy:
    return CallPolicy(chain=routes, backoff=Backoff(0.01, 0.05, 2), timeout_s=5.0)


async def test_a_call_reserves_its_worst_case_and_settles_its_real_cost(
    gateway: ModelGateway, ledger: InMemoryLedger
) -> None:
    result = await gateway.complete(REQUEST, policy(Route("oa", "large")), tenant="acme")
    reserve, settle = ledger.requests
    assert reserve.kind == "reserve" and reserve.usd == pytest.approx(WORST_LARGE)
    assert settle.kind == "settle" and settle.usd == pytest.approx(result.cost_usd) and result.cost_usd > 0
    assert ledger.spent("acme") == pytest.approx(result.cost_usd) and ledger.held("acme") == 0


async def test_no_tenant_or_no_window_reserves_nothing(gateway: ModelGateway, ledger: InMemoryLedger) -> None:
    await gateway.complete(REQUEST, policy(Route("oa", "large")))
    await gateway.complete(REQUEST, policy(Route("oa", "large")), tenant="globex")
    assert ledger.requests == []


async def test_a_call_without_a_tenant_reserves_as_the_tenant_with_no_name(gateway: ModelGateway) -> None:
    ledger = InMemoryLedger({"": Limits(per_day_usd=WORST_LARGE * 1.5)})
    anonymous = ModelGateway({"oa": gateway.provider("oa")}, PRICES, ledger=ledger)
    await anonymous.complete(REQUEST, policy(Route("oa", "large")))
    with pytest.raises(GatewayError) as caught:
        await anonymous.complete(REQUEST, policy(Route("oa", "large")), tenant="")
    assert caught.value.dead_letter_reason == "budget_exhausted"
    assert [r.tenant for r in ledger.requests] == ["", "", ""] and ledger.spent("") > 0


async def test_concurrent_calls_never_spend_past_the_day_budget_and_the_rest_are_refused(
    gateway: ModelGateway, ledger: InMemoryLedger
) -> None:
    outcomes = await asyncio.gather(
        *(gateway.complete(REQUEST, policy(Route("oa", "large")), tenant="acme") for _ in range(10)),
        return_exceptions=True,
    )
    done = [o for o in outcomes if isinstance(o, GatewayResult)]
    refused = [o for o in outcomes if isinstance(o, GatewayError)]
    assert len(done) >= 3 and len(done) + len(refused) == 10 and refused
    assert all(e.dead_letter_reason == "budget_exhausted" and not e.attempts for e in refused)
    assert "skipped oa/large: budget_exhausted: tenant acme's day" in refused[0].decisions[0]
    assert ledger.spent("acme") == pytest.approx(sum(r.cost_usd for r in done))
    assert ledger.spent("acme") <= WORST_LARGE * 3


async def test_a_refused_route_falls_to_a_cheaper_one_that_fits(
    gateway: ModelGateway, ledger: InMemoryLedger
) -> None:
    # Hold all but room for the small model's worst case.
    ledger.books.clear()
    await ledger.reserve("acme", WORST_LARGE * 3 - WORST_SMALL * 1.5, 600, None)
    result = await gateway.complete(
        REQUEST, policy(Route("oa", "large"), Route("oa", "small")), tenant="acme"
    )
    assert result.route.model == "small" and "skipped oa/large: budget_exhausted" in result.decisions[0]


async def test_a_stream_settles_what_it_used_and_a_broken_one_what_it_saw(
    sim: SimulatorServer, gateway: ModelGateway, ledger: InMemoryLedger
) -> None:
    sim.queue("cut_stream", None)
    events = [
        e
        async for e in gateway.stream(
            REQUEST, policy(Route("oa", "small"), Route("oa", "large")), tenant="acme"
        )
    ]
    assert any(isinstance(e, Reset) for e in events)
    result = events[-1]
    assert isinstance(result, GatewayResult)
    broken, ok = result.attempts
    settles = [r for r in ledger.requests if r.kind == "settle"]
    # Each attempt reserved and settled on its own; the broken stream's partial usage is billed,
    # and its worst case held: the provider may have written past where the connection broke.
    assert broken.cost_usd > 0 and broken.cost_usd < WORST_SMALL
    assert [s.usd for s in settles] == pytest.approx([WORST_SMALL, ok.cost_usd])
    assert ledger.spent("acme") == pytest.approx(WORST_SMALL + ok.cost_usd) and ledger.held("acme") == 0


async def test_a_stream_left_mid_way_is_charged_its_worst_case(
    gateway: ModelGateway, ledger: InMemoryLedger
) -> None:
    stream = gateway.stream(REQUEST, policy(Route("oa", "large")), tenant="acme")
    first = await anext(stream)
    assert isinstance(first, str)
    await stream.aclose()  # the consumer went away: the end of the call was never seen
    assert ledger.spent("acme") == pytest.approx(WORST_LARGE) and ledger.held("acme") == 0


async def test_a_call_given_up_before_it_is_made_releases_its_reservation(
    sim: SimulatorServer, ledger: InMemoryLedger
) -> None:
    import time

    from agents.gateway.errors import BudgetSpent
    from agents.gateway.ratelimit import RateLimiter

    provider = OpenAIProvider("oa", sim.url + "/v1")
    # One call a minute: the second would wait far past its deadline for the rate limit.
    gateway = ModelGateway({"oa": provider}, PRICES, ledger=ledger, limits={"oa": RateLimiter(1, None)})
    try:
        await gateway.complete(REQUEST, policy(Route("oa", "large")), tenant="acme")
        first = ledger.spent("acme")
        with pytest.raises(BudgetSpent):
            await gateway.complete(REQUEST, policy(Route("oa", "large")), time.monotonic() + 1, tenant="acme")
        assert [r.kind for r in ledger.requests] == ["reserve", "settle", "reserve", "settle"]
        assert ledger.requests[-1].usd == 0 and ledger.spent("acme") == first and ledger.held("acme") == 0
        # A deadline already passed reserves nothing at all: no call can be made.
        with pytest.raises(BudgetSpent):
            await gateway.complete(REQUEST, policy(Route("oa", "large")), time.monotonic() - 1, tenant="acme")
        assert len(ledger.requests) == 4
    finally:
        await provider.aclose()


async def test_a_ledger_that_does_not_answer_means_no_call(sim: SimulatorServer) -> None:
    class Silent(InMemoryLedger):
        async def reserve(self, tenant: str, usd: float, hold_s: float, wait_s: float | None) -> Grant:
            raise BudgetUnavailable("the budget ledger did not answer within 0.1s")

    provider = OpenAIProvider("oa", sim.url + "/v1")
    gateway = ModelGateway({"oa": provider}, PRICES, ledger=Silent({"acme": Limits(1.0)}))
    calls = sim.calls
    try:
        with pytest.raises(GatewayError) as caught:
            await gateway.complete(REQUEST, policy(Route("oa", "large")), tenant="acme")
    finally:
        await provider.aclose()
    assert caught.value.dead_letter_reason == "budget_unavailable" and caught.value.retryable
    assert sim.calls == calls


async def test_each_attempt_reserves_on_its_own_and_a_failed_one_is_settled_before_the_backoff(
    sim: SimulatorServer, ledger: InMemoryLedger
) -> None:
    held_while_waiting: list[float] = []

    async def wait(seconds: float) -> None:
        held_while_waiting.append(ledger.held("acme"))

    provider = OpenAIProvider("oa", sim.url + "/v1")
    gateway = ModelGateway({"oa": provider}, PRICES, ledger=ledger, sleep=wait)
    sim.queue("rate_limit", None)
    try:
        result = await gateway.complete(REQUEST, policy(Route("oa", "large")), tenant="acme")
    finally:
        await provider.aclose()
    assert [a.outcome for a in result.attempts] == ["rate_limited", "ok"]
    assert [r.kind for r in ledger.requests] == ["reserve", "settle", "reserve", "settle"]
    assert held_while_waiting == [0.0]  # nothing held for a call that is not being made
    assert ledger.spent("acme") == pytest.approx(result.cost_usd)


async def test_a_call_that_timed_out_settles_its_worst_case_as_the_provider_may_have_billed_it(
    sim: SimulatorServer, ledger: InMemoryLedger
) -> None:
    provider = OpenAIProvider("oa", sim.url + "/v1")
    gateway = ModelGateway({"oa": provider}, PRICES, ledger=ledger, sleep=lambda _: asyncio.sleep(0))
    sim.queue("timeout", None)  # the simulator hangs past the call's timeout, then answers
    quick = CallPolicy(chain=(Route("oa", "large"),), backoff=Backoff(0.01, 0.05, 2), timeout_s=0.3)
    try:
        result = await gateway.complete(REQUEST, quick, tenant="acme")
    finally:
        await provider.aclose()
    timed_out, ok = result.attempts
    assert timed_out.outcome == "provider_unreachable" and timed_out.cost_usd == 0
    settles = [r.usd for r in ledger.requests if r.kind == "settle"]
    assert settles == pytest.approx([WORST_LARGE, ok.cost_usd])
    assert ledger.spent("acme") == pytest.approx(WORST_LARGE + ok.cost_usd) and ledger.held("acme") == 0


async def test_a_call_the_provider_never_saw_or_refused_releases_its_reservation(
    sim: SimulatorServer, ledger: InMemoryLedger
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    nowhere = OpenAIProvider("nowhere", f"http://127.0.0.1:{closed}/v1")
    provider = OpenAIProvider("oa", sim.url + "/v1")
    chain = CallPolicy(
        chain=(Route("nowhere", "large"), Route("oa", "large")), backoff=Backoff(0.01, 0.05, 0)
    )
    gateway = ModelGateway({"nowhere": nowhere, "oa": provider}, PRICES, ledger=ledger)
    sim.queue("bad_request")
    try:
        with pytest.raises(GatewayError) as caught:
            await gateway.complete(REQUEST, chain, tenant="acme")
    finally:
        await provider.aclose()
        await nowhere.aclose()
    assert [a.outcome for a in caught.value.attempts] == ["provider_unreachable", "request_rejected"]
    assert [r.usd for r in ledger.requests if r.kind == "settle"] == [0.0, 0.0]
    assert ledger.spent("acme") == 0 and ledger.held("acme") == 0


def test_which_failures_may_have_been_billed() -> None:
    from agents.gateway.errors import (
        Overloaded,
        ProviderError,
        RateLimited,
        RequestRejected,
        ServerError,
        StreamBroken,
        Unreachable,
        may_have_billed,
    )

    billed: list[ProviderError] = [
        Unreachable("timed out"),
        StreamBroken("cut"),
        ServerError("500", status=500),
        ServerError("504", status=504),
        ProviderError("unknown"),
    ]
    not_billed: list[ProviderError] = [
        Unreachable("refused", sent=False),
        RateLimited("429", status=429),
        RequestRejected("400", status=400),
        Overloaded("529", status=529),
        ServerError("503", status=503),
    ]
    assert [may_have_billed(e) for e in billed] == [True] * len(billed)
    assert [may_have_billed(e) for e in not_billed] == [False] * len(not_billed)


class _Dense:
    """A provider billing what a tokenizer counts for dense text: a token a character (CJK in
    cl100k is about that, sometimes more), four times the gateway's four-characters estimate."""

    name = "dense"

    async def complete(self, request: ChatRequest, timeout_s: float) -> Completion:
        prompt = "".join(str(m["content"]) for m in request.messages)
        usage = Usage(len(prompt), request.max_tokens)  # it wrote all it was allowed to
        return Completion("好" * request.max_tokens, request.model, "length", usage, self.name, 0.0)

    async def aclose(self) -> None:
        return None


async def test_dense_text_never_costs_more_than_its_reservation_so_concurrent_calls_stay_within_the_day() -> (
    None
):
    dense = ChatRequest(
        model="", messages=[{"role": "user", "content": "請問我的發票在哪裡" * 40}], max_tokens=16
    )
    assert dense.prompt_tokens_estimate() < len(dense.messages[0]["content"])  # the estimate is low
    real = PRICES.cost("large", Usage(len(dense.messages[0]["content"]), dense.max_tokens))
    ledger = InMemoryLedger({"acme": Limits(per_day_usd=real * 5)})
    gateway = ModelGateway({"dense": _Dense()}, PRICES, ledger=ledger)  # type: ignore[dict-item]
    outcomes = await asyncio.gather(
        *(gateway.complete(dense, policy(Route("dense", "large")), tenant="acme") for _ in range(10)),
        return_exceptions=True,
    )
    reserves = [r.usd for r in ledger.requests if r.kind == "reserve"]
    settles = [r.usd for r in ledger.requests if r.kind == "settle"]
    assert min(reserves) >= max(settles) > 0
    done = [o for o in outcomes if isinstance(o, GatewayResult)]
    assert done and ledger.spent("acme") == pytest.approx(real * len(done))
    assert ledger.spent("acme") <= real * 5 * (1 + 1e-9)


async def test_a_stream_refused_before_it_ran_costs_nothing(
    sim: SimulatorServer, ledger: InMemoryLedger
) -> None:
    provider = OpenAIProvider("oa", sim.url + "/v1")
    gateway = ModelGateway({"oa": provider}, PRICES, ledger=ledger, sleep=lambda _: asyncio.sleep(0))
    sim.queue("rate_limit", None)  # a 429 before the first event
    try:
        events = [e async for e in gateway.stream(REQUEST, policy(Route("oa", "small")), tenant="acme")]
    finally:
        await provider.aclose()
    result = events[-1]
    assert isinstance(result, GatewayResult)
    refused, ok = result.attempts
    assert refused.outcome == "rate_limited" and refused.cost_usd == 0
    assert [r.usd for r in ledger.requests if r.kind == "settle"] == pytest.approx([0.0, ok.cost_usd])


async def test_the_market_pipeline_reserves_for_the_requests_tenant(
    gateway: ModelGateway, ledger: InMemoryLedger
) -> None:
    """Support is not the only payer: a stage that asks the gateway charges the tenant its
    record carries in podium-tenant (market here; content's draft and the agent loop's turn
    pass ctx.headers.tenant the same way)."""
    from pathlib import Path

    from agents.market.stages import MarketServices
    from streams.contracts.headers import RequestHeaders
    from streams.runtime.stage import StageContext

    services = MarketServices(Path("models.yaml"))
    services._gateway = gateway  # the gateway under test, not the process's
    services.policies = {"signals": policy(Route("oa", "large"))}
    ask = [{"role": "user", "content": "ACME beats estimates"}]

    def as_tenant(tenant: str) -> StageContext:
        return StageContext("signals", "market.news", 0, 0, RequestHeaders(request_id="r", tenant=tenant), 1)

    # The stage asks for 400 tokens: more than acme's day leaves, so the ledger refuses acme.
    with pytest.raises(GatewayError, match="budget_exhausted: tenant acme"):
        await services.ask("signals", ask, as_tenant("acme"))
    assert {r.tenant for r in ledger.requests} == {"acme"}
    asked = len(ledger.requests)
    await services.ask("signals", ask, as_tenant("beta"))  # no window: nothing reserved
    assert len(ledger.requests) == asked
