"""A faust-streaming app on podium topics: podium Avro in and out, request headers carried on.

The integration test runs a real faust App in this process against the session's real broker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry.sdk.trace import TracerProvider

from streams.contracts.codec import SingleObjectCodec
from streams.contracts.headers import ingress_headers, parse_headers
from streams.contracts.schemas import SchemaStore
from streams.errors import CodecError, ConfigError
from streams.ingress.faust_bridge import AvroCodec, next_hop_headers, request_headers
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster

NOTE = "podium.demo.Note"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TOPICS = """
topics:
  {p}.in: {value: podium.demo.Note, partitions: 1}
  {p}.out: {value: podium.demo.Note, partitions: 1}
"""


def test_the_codec_turns_podium_avro_into_dicts_and_back(schema_store: SchemaStore) -> None:
    codec = SingleObjectCodec(schema_store)
    faust_codec = AvroCodec(codec, NOTE)
    note = {"request_id": "r1", "text": "hello", "hops": ["a"], "priority": 2}
    data = faust_codec.dumps(note)
    assert data == codec.encode(NOTE, note)
    assert faust_codec.loads(data) == note
    with pytest.raises(CodecError):
        faust_codec.loads(b"not avro")


def test_next_hop_headers_carry_the_request_on(schema_store: SchemaStore) -> None:
    incoming = ingress_headers("req-7", budget_s=30)
    event_headers = dict([*incoming.to_kafka(), ("traceparent", TRACEPARENT.encode()), ("x-app", b"v")])
    out = parse_headers(next_hop_headers(event_headers, stage="faust-enrich", spent_usd=0.25))
    assert (out.request_id, out.deadline_ms, out.traceparent) == ("req-7", incoming.deadline_ms, TRACEPARENT)
    assert out.path == ("faust-enrich",) and out.cost_usd == 0.25 and out.attempt == 0
    assert ("x-app", b"v") in out.passthrough and not out.problems


def test_a_current_span_of_the_same_trace_becomes_the_parent() -> None:
    tracer = TracerProvider().get_tracer("test")
    from streams.telemetry.otel import extract_context

    with tracer.start_as_current_span("process", context=extract_context(TRACEPARENT, None)):
        inside = parse_headers(next_hop_headers({"traceparent": TRACEPARENT.encode()}, stage="s"))
    assert inside.trace_id == TRACEPARENT.split("-")[1] and inside.traceparent != TRACEPARENT
    with tracer.start_as_current_span("unrelated"):  # another trace: the incoming one is kept
        other = parse_headers(next_hop_headers({"traceparent": TRACEPARENT.encode()}, stage="s"))
    assert other.traceparent == TRACEPARENT


def test_a_record_without_a_request_id_takes_its_key_and_stage_names_are_checked() -> None:
    assert request_headers({}, key=b"order-9").request_id == "order-9"
    assert request_headers({}, key=b"not a valid id").request_id not in (None, "not a valid id")
    with pytest.raises(ConfigError):
        next_hop_headers({}, stage="no spaces")


async def _read_one(cluster: Cluster, topic: str, timeout_s: float) -> Any:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=cluster.bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        return await asyncio.wait_for(consumer.getone(), timeout_s)
    finally:
        await consumer.stop()


@pytest.mark.timeout(60)
async def test_a_faust_app_consumes_a_podium_topic_and_publishes_into_the_pipeline(
    cluster: Cluster, make_topics: Any, unique: str, schema_store: SchemaStore, tmp_path: Path
) -> None:
    import faust

    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    app = faust.App(
        f"{unique}-faust",
        broker=f"kafka://{cluster}",
        datadir=str(tmp_path / "faust"),
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.2,
    )
    source = app.topic(f"{unique}.in", value_serializer=AvroCodec(codec, NOTE))
    sink = app.topic(f"{unique}.out", value_serializer=AvroCodec(codec, NOTE))
    seen: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    @app.agent(source)
    async def enrich(stream: Any) -> None:
        async for event in stream.events():
            note = {
                **event.value,
                "text": event.value["text"].upper(),
                "hops": [*event.value["hops"], "faust"],
            }
            await sink.send(
                key=event.key, value=note, headers=next_hop_headers(event.headers, stage="faust-enrich")
            )
            if not seen.done():
                seen.set_result(event.value)

    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        request_id = await publisher.publish(f"{unique}.in", {"text": "hello faust"}, budget_s=60)
    sent = await _read_one(cluster, f"{unique}.in", 10)
    sent_headers = parse_headers(sent.headers)

    await app.start()
    try:
        received = await asyncio.wait_for(seen, 30)
        out = await _read_one(cluster, f"{unique}.out", 10)
    finally:
        await app.stop()

    assert received["request_id"] == request_id and received["text"] == "hello faust"
    assert codec.decode(NOTE, out.value) == {
        "request_id": request_id,
        "text": "HELLO FAUST",
        "hops": ["faust"],
        "priority": 0,
    }
    headers = parse_headers(out.headers)
    assert not headers.problems
    assert headers.request_id == request_id and out.key == request_id.encode()
    assert sent_headers.trace_id is not None and headers.trace_id == sent_headers.trace_id
    assert headers.deadline_ms == sent_headers.deadline_ms is not None
    assert headers.path == ("faust-enrich",)
