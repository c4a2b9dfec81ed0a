"""Token streaming over Kafka, on the real broker, with a stream that breaks and fails over."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agents.gateway.backoff import Backoff
from agents.gateway.chunks import chunk_records, rebuild
from agents.gateway.gateway import CallPolicy, ModelGateway, Route
from agents.gateway.pricing import Price, PriceTable
from agents.gateway.providers.http import AnthropicProvider, OpenAIProvider
from agents.gateway.providers.protocol import ChatRequest
from agents.gateway.providers.simulator import SimConfig, SimulatorServer
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.reading import Selection, TopicReader

TOPICS = "topics:\n  {p}.drafts.stream: {value: podium.StreamChunk, partitions: 3}\n"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SimConfig(latency_ms=2, jitter_ms=1))
    with server:
        yield server


async def test_chunks_show_the_reset_and_rebuild_the_exact_final_text(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore, sim: SimulatorServer
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    topic = f"{unique}.drafts.stream"
    providers = {"oa": OpenAIProvider("oa", sim.url + "/v1"), "an": AnthropicProvider("an", sim.url)}
    gateway = ModelGateway(providers, PriceTable({"small": Price(0.15, 0.6), "large": Price(3, 15)}))
    policy = CallPolicy(chain=(Route("oa", "small"), Route("an", "large")), backoff=Backoff(max_retries=0))
    request = ChatRequest(model="", messages=[{"role": "user", "content": "Draft a reply about refunds."}])
    sim.queue("cut_stream", None)
    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:

        async def send(chunk: dict[str, Any]) -> None:
            value = codec.encode("podium.StreamChunk", chunk)
            await publisher.send_raw(topic, b"req-1", value, [("podium-request-id", b"req-1")])

        result = await chunk_records("req-1", gateway.stream(request, policy), send)
    for provider in providers.values():
        await provider.aclose()

    async with TopicReader(cluster) as reader:
        chunks = [
            codec.decode("podium.StreamChunk", r.value or b"")
            async for r in reader.read(await reader.plan(Selection(topic)))
        ]
    kinds = [c["kind"] for c in sorted(chunks, key=lambda c: c["seq"])]
    assert kinds.count("RESET") == 1 and kinds[-1] == "FINAL" and kinds[0] == "TEXT"
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))  # one key, one partition, in order
    text, complete = rebuild(chunks)
    assert complete and text == result.completion.text
    final = chunks[-1]
    assert final["model"] == "large" and final["cost_usd"] == pytest.approx(result.cost_usd)


def test_rebuild_without_final_is_incomplete() -> None:
    chunks = [{"seq": 1, "kind": "TEXT", "text": "b"}, {"seq": 0, "kind": "TEXT", "text": "a"}]
    assert rebuild(chunks) == ("ab", False)
