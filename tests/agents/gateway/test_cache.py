"""The exact-match cache: normalised keys, TTL, no HTTP call on a hit, warm after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest

from agents.gateway.cache import KafkaCacheStore, ResponseCache, cache_key, cacheable
from agents.gateway.gateway import CallPolicy, ModelGateway, Route
from agents.gateway.pricing import Price, PriceTable
from agents.gateway.providers.http import OpenAIProvider
from agents.gateway.providers.local import LocalProvider, LocalTurn, ToolModel
from agents.gateway.providers.protocol import ChatRequest, ToolCall, ToolSpec
from agents.gateway.providers.simulator import SimConfig, SimulatorServer
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster


def ask(text: str) -> ChatRequest:
    return ChatRequest(model="", messages=[{"role": "user", "content": text}], max_tokens=32)


def test_keys_ignore_whitespace_but_not_words_or_model() -> None:
    assert cache_key(ask("reset  my\npassword"), "small") == cache_key(ask(" reset my password "), "small")
    assert cache_key(ask("reset my password"), "small") != cache_key(ask("reset my passwords"), "small")
    assert cache_key(ask("reset my password"), "small") != cache_key(ask("reset my password"), "large")


LOOKUP = ToolSpec(
    "lookup", "Look an account up", {"type": "object", "properties": {"id": {"type": "string"}}}
)
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}}


def test_keys_cover_tools_their_choice_and_the_schema_and_plain_keys_did_not_move() -> None:
    plain = ask("reset my password")
    # Computed before tools existed: entries already kept under these keys are still found.
    assert cache_key(plain, "small") == "c18e45bb64d05b00770e1345b3ecc55f67f1147efc1e3b2fee578037c3cf04da"
    variants = [
        replace(plain, tools=(LOOKUP,)),
        replace(plain, tools=(replace(LOOKUP, description="Look an account up fast"),)),
        replace(plain, tools=(LOOKUP,), tool_choice="lookup"),
        replace(plain, tool_choice="none"),
        replace(plain, response_schema=SCHEMA),
    ]
    keys = {cache_key(r, "small") for r in [plain, *variants]}
    assert len(keys) == 1 + len(variants)
    assert cacheable(plain) and not any(cacheable(r) for r in variants if r.tools or r.response_schema)


async def test_requests_with_tools_or_a_schema_are_neither_served_nor_stored() -> None:
    calls: list[ChatRequest] = []

    def turn(request: ChatRequest) -> LocalTurn:
        calls.append(request)
        if request.tools:
            return LocalTurn(tool_calls=(ToolCall(f"c{len(calls)}", "lookup", '{"id": "A-1"}'),))
        return LocalTurn('{"ok": true}' if request.response_schema else "plain answer")

    cache = ResponseCache(ttl_s=600)
    provider = LocalProvider(models={"m": ToolModel(turn)})
    gateway = ModelGateway({"local": provider}, PriceTable({"m": Price(0, 0)}), cache=cache)
    policy = CallPolicy(chain=(Route("local", "m"),))
    for request in (
        replace(ask("find A-1"), tools=(LOOKUP,)),
        replace(ask("is it ok?"), response_schema=SCHEMA),
    ):
        first, second = [await gateway.complete(request, policy) for _ in range(2)]
        assert not first.cache_hit and not second.cache_hit
        assert cache.get(cache_key(request, "m")) is None
    assert len(calls) == 4
    # The same gateway does cache a plain request: the bypass above is the rule, not a broken cache.
    await gateway.complete(ask("hello"), policy)
    assert (await gateway.complete(ask("hello"), policy)).cache_hit and len(calls) == 5


async def test_entries_expire() -> None:
    cache = ResponseCache(ttl_s=0.05)
    await cache.put("k", "text", "m", "stop", 1, 1)
    assert cache.get("k") is not None
    await asyncio.sleep(0.1)
    assert cache.get("k") is None


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SimConfig(latency_ms=2, jitter_ms=1))
    with server:
        yield server


async def test_a_hit_makes_no_call_costs_nothing_and_survives_a_restart(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore, sim: SimulatorServer
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(
        f"topics:\n  {unique}.cache: {{value: podium.CachedAnswer, cleanup: compact}}\n", unique
    )
    codec = SingleObjectCodec(schema_store)
    prices = PriceTable({"small": Price(0.15, 0.6)})
    policy = CallPolicy(chain=(Route("oa", "small"),))
    provider = OpenAIProvider("oa", sim.url + "/v1")
    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        store = KafkaCacheStore(cluster, publisher, codec, topic=f"{unique}.cache")
        gateway = ModelGateway({"oa": provider}, prices, cache=ResponseCache(ttl_s=600, store=store))
        first = await gateway.complete(ask("Where is my   invoice?"), policy)
        calls = sim.calls
        second = await gateway.complete(ask("Where is my invoice?"), policy)
        assert sim.calls == calls, "a cache hit makes no HTTP call"
        assert not first.cache_hit and first.cost_usd > 0
        assert second.cache_hit and second.cost_usd == 0.0 and second.completion.text == first.completion.text

        # A new worker: its cache is empty until it reads the compacted topic back.
        restarted = ResponseCache(ttl_s=600, store=store)
        assert await restarted.warm() >= 1
        again = await ModelGateway({"oa": provider}, prices, cache=restarted).complete(
            ask("Where is my invoice?"), policy
        )
        assert again.cache_hit and sim.calls == calls
    await provider.aclose()
