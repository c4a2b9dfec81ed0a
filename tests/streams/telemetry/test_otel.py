"""Spans and metrics of a stage, read from in-memory exporters while it runs on the real broker;
spans exported over OTLP, read back from a real backend (Arize Phoenix)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.stage_worker import StageWorker
from streams.telemetry.otel import Telemetry
from tests.phoenix import Phoenix
from tests.streams.running import running

TOPICS = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: traced, partitions: 1}
  {p}.out: {value: podium.demo.Note, partitions: 1}
"""


async def test_process_span_continues_the_producer_trace_with_messaging_names(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(TOPICS, unique)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    telemetry = Telemetry(tracer_provider, MeterProvider(metric_readers=[metrics]))
    codec = SingleObjectCodec(schema_store)

    async def traced(note: dict[str, Any], ctx: StageContext) -> Emit:
        return Emit(f"{unique}.out", note)

    stage = Stage(name="traced", consumes=f"{unique}.in", produces=(f"{unique}.out",), handler=traced)
    worker = StageWorker(
        stage, cluster=cluster, catalog=catalog, codec=codec, telemetry=telemetry, group_id=f"{unique}-g"
    )
    async with Follower(cluster, [f"{unique}.out"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec, telemetry=telemetry) as publisher:
            rid = await publisher.publish(f"{unique}.in", {"request_id": "", "text": "x"})
        await follower.collect({rid}, timeout_s=30)

    finished = spans.get_finished_spans()
    [send] = [s for s in finished if s.name == f"send {unique}.in"]
    [process] = [s for s in finished if s.name == f"process {unique}.in"]
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert process.context.trace_id == send.context.trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    attrs = dict(process.attributes or {})
    assert attrs["messaging.system"] == "kafka"
    assert attrs["messaging.destination.name"] == f"{unique}.in"
    assert attrs["messaging.operation.type"] == "process"
    assert attrs["messaging.consumer.group.name"] == f"{unique}-g"
    assert attrs["messaging.kafka.offset"] == 0 and attrs["podium.request_id"] == rid
    assert attrs["podium.outcome"] == "ok"

    data = metrics.get_metrics_data()
    assert data is not None
    points = [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "messaging.process.duration"
        for point in metric.data.data_points
    ]
    assert any(dict(p.attributes or {}).get("podium.stage") == "traced" and p.count >= 1 for p in points)
    telemetry.shutdown()


def test_a_span_recorded_late_keeps_the_id_its_children_were_given() -> None:
    from opentelemetry import trace

    from streams.telemetry.otel import extract_context, new_span_id, span_with_id

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("request") as root:
        trace_id = root.get_span_context().trace_id
        parent = f"00-{trace_id:032x}-{root.get_span_context().span_id:016x}-01"
    chosen = new_span_id()
    child_of_chosen = extract_context(f"00-{trace_id:032x}-{chosen:016x}-01", None)
    tracer.start_span("chat model", context=child_of_chosen).end()
    with span_with_id(
        tracer, "invoke_agent a", chosen, parent=extract_context(parent, None), start_time_ns=1_000
    ):
        assert trace.get_current_span().get_span_context().span_id == chosen
    tracer.start_span("after").end()
    by_name = {s.name: s for s in spans.get_finished_spans()}
    agent, chat = by_name["invoke_agent a"], by_name["chat model"]
    assert agent.context.span_id == chosen and agent.context.trace_id == trace_id
    assert agent.parent is not None and agent.parent.span_id == root.get_span_context().span_id
    assert chat.parent is not None and chat.parent.span_id == chosen
    assert agent.start_time == 1_000
    assert by_name["after"].context.span_id != chosen  # the tracer's own ids are back


async def test_otlp_export_reads_the_standard_variables_and_keeps_a_late_parent(
    phoenix: Phoenix, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    """PODIUM_OTEL_EXPORTER=otlp as a user sets it up for Phoenix: the endpoint and the project
    from the standard OTEL_* variables; a span written after its child still parents it there."""
    from streams.telemetry.otel import extract_context, new_span_id, span_with_id

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix.url)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={unique}")
    telemetry = Telemetry.configure("otlp", "podium-test")
    tracer = telemetry.tracer("t")
    with tracer.start_as_current_span("request") as root:
        ids = root.get_span_context()
    chosen = new_span_id()
    tracer.start_span(
        "child", context=extract_context(f"00-{ids.trace_id:032x}-{chosen:016x}-01", None)
    ).end()
    with span_with_id(
        tracer,
        "late parent",
        chosen,
        parent=extract_context(f"00-{ids.trace_id:032x}-{ids.span_id:016x}-01", None),
        start_time_ns=time.time_ns(),
    ):
        pass
    assert telemetry.tracer_provider.force_flush(10_000)
    await asyncio.to_thread(telemetry.shutdown)

    spans = await phoenix.wait_for_spans(unique, 3)
    by_name = {s["name"]: s for s in spans}
    assert sorted(by_name) == ["child", "late parent", "request"]
    assert {s["context"]["trace_id"] for s in spans} == {f"{ids.trace_id:032x}"}
    assert by_name["request"]["parent_id"] is None
    assert by_name["late parent"]["context"]["span_id"] == f"{chosen:016x}"
    assert by_name["late parent"]["parent_id"] == f"{ids.span_id:016x}"
    assert by_name["child"]["parent_id"] == f"{chosen:016x}"


def test_a_record_with_nothing_to_record_its_span_continues_the_trace_without_one() -> None:
    """No exporter: the stage builds no span, yet its outputs carry the producer's trace on
    with a span id of their own (as the SDK's dropped span would), and a record with no trace
    starts one, so a dead letter always names a trace."""
    from opentelemetry import trace

    from streams.telemetry.otel import Telemetry, extract_context, records_spans, unrecorded_child

    assert not records_spans(Telemetry.configure("none").tracer_provider)
    assert records_spans(TracerProvider())
    parent = extract_context(f"00-{'ab' * 16}-{'cd' * 8}-01", "k=v")
    span, context = unrecorded_child(parent)
    assert not span.is_recording()
    child = span.get_span_context()
    assert child.trace_id == int("ab" * 16, 16) and child.span_id not in (0, int("cd" * 8, 16))
    assert not child.trace_flags.sampled and child.trace_state.get("k") == "v"
    assert trace.get_current_span(context) is span
    orphan, _ = unrecorded_child(extract_context(None, None))
    assert orphan.get_span_context().is_valid


def test_the_fast_trace_paths_say_what_the_w3c_propagator_says() -> None:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from streams.telemetry.otel import current_trace_headers, extract_context, unrecorded_child_of

    traceparent, tracestate = f"00-{'ab' * 16}-{'cd' * 8}-01", "k=v,a=b"
    span, context = unrecorded_child_of(traceparent, tracestate)
    expected = trace.get_current_span(extract_context(traceparent, tracestate)).get_span_context()
    got = span.get_span_context()
    assert (got.trace_id, got.trace_state) == (expected.trace_id, expected.trace_state)
    assert not got.trace_flags.sampled
    token = otel_context.attach(context)
    try:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        assert current_trace_headers() == (carrier["traceparent"], carrier["tracestate"])
    finally:
        otel_context.detach(token)
    assert current_trace_headers() == (None, None)
    for invalid in (None, f"ff-{'ab' * 16}-{'cd' * 8}-01"):  # no parent: a trace of its own
        orphan, _ = unrecorded_child_of(invalid, None)
        assert orphan.get_span_context().is_valid and orphan.get_span_context().trace_id != int("ab" * 16, 16)
