"""Traces read back from podium.telemetry, and the metrics endpoint of a worker."""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

import httpx

from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.operations.traces import read_spans, waterfall
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.stage_worker import StageWorker
from streams.telemetry.otel import Telemetry
from tests.streams.running import running

TOPICS = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: a, partitions: 1}
  {p}.mid: {value: podium.demo.Note, consumer: b, partitions: 1}
  {p}.done: {value: podium.demo.Note, partitions: 1}
  podium.telemetry: {value: podium.Span, partitions: 3}
"""


def span(sid: str, parent: str | None, start: int, end: int, **attrs: str) -> dict[str, Any]:
    return {
        "trace_id": "t" * 32,
        "span_id": sid,
        "parent_span_id": parent,
        "name": sid,
        "start_ns": start,
        "end_ns": end,
        "status": "UNSET",
        "attributes": attrs,
        "events": [],
    }


def test_rows_are_ordered_indented_and_timed_from_the_first_span() -> None:
    rows = waterfall(
        [
            span("b", "a", 3_000_000, 5_000_000, **{"podium.stage": "s", "podium.outcome": "ok"}),
            span("a", None, 1_000_000, 9_000_000),
        ]
    )
    assert [(r.name, r.depth, r.start_ms, r.duration_ms) for r in rows] == [
        ("a", 0, 0.0, 8.0),
        ("b", 1, 2.0, 2.0),
    ]
    assert rows[1].stage == "s" and rows[1].status == "ok"


def test_an_agents_loop_shows_its_turns_models_and_tool_calls_under_the_agent_span() -> None:
    rows = waterfall(
        [
            span(
                "invoke_agent billing",
                None,
                1_000_000,
                90_000_000,
                **{"gen_ai.operation.name": "invoke_agent"},
            ),
            span(
                "chat sim-large",
                "invoke_agent billing",
                2_000_000,
                9_000_000,
                **{"gen_ai.request.model": "sim-large"},
            ),
            span(
                "execute_tool lookup_invoices",
                "invoke_agent billing",
                12_000_000,
                14_000_000,
                **{"gen_ai.tool.name": "lookup_invoices", "gen_ai.tool.call.id": "r1.1.0"},
            ),
        ]
    )
    assert [(r.name, r.depth, r.model) for r in rows] == [
        ("invoke_agent billing", 0, ""),
        ("chat sim-large", 1, "sim-large"),
        ("execute_tool lookup_invoices", 1, "lookup_invoices (r1.1.0)"),
    ]


def _buckets(scraped: str, metric: str, label: str) -> dict[str, float]:
    """A histogram's cumulative count per upper bound (``le``), from a Prometheus scrape."""
    counts = {}
    for line in scraped.splitlines():
        if line.startswith(metric) and "_bucket{" in line and label in line:
            bound = re.search(r'le="([^"]+)"', line)
            if bound is not None:
                counts[bound.group(1)] = float(line.rsplit(" ", 1)[1])
    return counts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_every_hop_of_a_request_is_in_the_telemetry_topic_with_consistent_timing(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    telemetry = Telemetry.configure(
        "kafka", "test", cluster=cluster, codec=codec, prometheus_port=free_port()
    )

    async def forward(note: dict[str, Any], ctx: StageContext) -> Emit:
        await asyncio.sleep(0.05)
        return Emit(f"{unique}.mid" if ctx.stage == "a" else f"{unique}.done", note)

    stages = [
        Stage(name="a", consumes=f"{unique}.in", produces=(f"{unique}.mid",), handler=forward),
        Stage(name="b", consumes=f"{unique}.mid", produces=(f"{unique}.done",), handler=forward),
    ]
    workers = [
        StageWorker(
            s,
            cluster=cluster,
            catalog=catalog,
            codec=codec,
            telemetry=telemetry,
            group_id=f"{unique}-{s.name}",
        )
        for s in stages
    ]
    async with Follower(cluster, [f"{unique}.done"]) as follower, running(*workers):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec, telemetry=telemetry) as publisher:
            rid = await publisher.publish(f"{unique}.in", {"request_id": "", "text": "x"})
        await follower.collect({rid}, timeout_s=30)
        async with httpx.AsyncClient() as http:
            scraped = (await http.get(f"http://127.0.0.1:{telemetry.metrics_port}/metrics")).text
    await asyncio.to_thread(telemetry.shutdown)
    assert "messaging_process_duration" in scraped and 'podium_stage="a"' in scraped
    # Seconds with the messaging conventions' buckets: a 50 ms handler is above 0.025 s and below
    # 1 s, so a quantile can be read (the SDK's default first bucket is 0-5 s).
    buckets = _buckets(scraped, "messaging_process_duration", 'podium_stage="a"')
    assert {"0.005", "0.05", "0.075", "1.0", "10.0", "+Inf"} <= set(buckets), sorted(buckets)
    assert buckets["0.025"] == 0 and buckets["1.0"] >= 1, buckets
    assert "podium_stage_consumer_lag" in scraped

    spans = await read_spans(cluster, codec, request_id=rid)
    rows = waterfall(spans)
    assert [r.name for r in rows] == [f"send {unique}.in", f"process {unique}.in", f"process {unique}.mid"]
    assert [r.depth for r in rows] == [0, 1, 2]
    assert len({s["trace_id"] for s in spans}) == 1
    send, first, second = rows
    # Each hop starts after the one before it began, and a stage lasts at least its 50 ms handler.
    assert send.start_ms <= first.start_ms <= second.start_ms
    assert first.duration_ms >= 50 and second.duration_ms >= 50
    assert second.start_ms >= first.start_ms + 50  # b consumed what a produced after its handler
