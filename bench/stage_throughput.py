"""Stage runtime vs a raw aiokafka consume-produce loop, on the same broker, in one run.

    .venv/bin/python bench/stage_throughput.py [--records 20000] [--slow-records 10000]

Prints one table: messages/s and p50/p99 end-to-end latency for
  1. raw aiokafka: getmany -> send the same bytes -> await acks -> commit (at-least-once);
  2. the podium stage runtime with a pass-through handler (decode, span, encode, produce, commit),
     with the default telemetry (no exporter: trace context propagated, spans not recorded);
  3. the same with every span recorded and handed to a batch exporter (that discards them);
  4. the stage runtime with a handler that awaits 200 ms (a model call), 1000 in flight.
Throughput is measured on a pre-filled backlog, between the first and the last output record
(broker timestamps), so consumer-group joins do not count. Latency is measured separately, at a
fixed publish rate of 1000 records/s, as output CreateTime minus input CreateTime.
Uses the running local broker or KAFKA_BOOTSTRAP_SERVERS; starts (and stops) one otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from rich.console import Console
from rich.table import Table

from streams.config import load_settings
from streams.contracts import Catalog, parse_catalog
from streams.kafka import TopicAdmin
from streams.kafka.connection import Cluster
from streams.runtime import Emit, Project, Record, Stage, StageContext, StageWorker, tune_worker_process
from streams.telemetry import Telemetry

PARTITIONS = 3
console = Console(width=120)


def catalog_for(prefix: str, project: Project) -> Catalog:
    text = f"""
defaults: {{partitions: {PARTITIONS}}}
topics:
  {prefix}.raw.in: {{value: podium.demo.Note}}
  {prefix}.raw.out: {{value: podium.demo.Note}}
  {prefix}.stage.in: {{value: podium.demo.Note, consumer: passthrough}}
  {prefix}.stage.out: {{value: podium.demo.Note}}
  {prefix}.spans.in: {{value: podium.demo.Note, consumer: passthrough}}
  {prefix}.spans.out: {{value: podium.demo.Note}}
  {prefix}.slow.in: {{value: podium.demo.Note, consumer: slow}}
  {prefix}.slow.out: {{value: podium.demo.Note}}
  {prefix}.lat.raw.in: {{value: podium.demo.Note}}
  {prefix}.lat.raw.out: {{value: podium.demo.Note}}
  {prefix}.lat.stage.in: {{value: podium.demo.Note, consumer: passthrough}}
  {prefix}.lat.stage.out: {{value: podium.demo.Note}}
"""
    return parse_catalog(text, Path("bench"), project.schemas.names())


async def fill(cluster: Cluster, topic: str, value: bytes, count: int, rate: float | None = None) -> None:
    producer = cluster.producer(acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        started = time.perf_counter()
        for i in range(count):
            key = f"r{i}".encode()
            futures.append(await producer.send(topic, value, key=key, headers=[("podium-request-id", key)]))
            if rate is not None:
                ahead = (i + 1) / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_timestamps(cluster: Cluster, topic: str, count: int, timeout_s: float) -> dict[bytes, int]:
    consumer = cluster.consumer(enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen: dict[bytes, int] = {}
        deadline = time.monotonic() + timeout_s
        while len(seen) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for r in records:
                    seen.setdefault(r.key or b"", r.timestamp)
        return seen
    finally:
        await consumer.stop()


async def raw_loop(cluster: Cluster, source: str, sink: str, stop: asyncio.Event) -> None:
    """The baseline: what a careful hand-written aiokafka worker does."""
    consumer = cluster.consumer(
        source,
        group_id=f"raw-{source}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = cluster.producer(acks="all", enable_idempotence=True, linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=1000)
            futures = [
                await producer.send(sink, r.value, key=r.key, headers=list(r.headers))
                for records in batches.values()
                for r in records
            ]
            await asyncio.gather(*futures)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


async def passthrough(note: Record, ctx: StageContext) -> Emit:
    return Emit(ctx.topic.replace(".in", ".out"), note)


async def slow(note: Record, ctx: StageContext) -> Emit:
    await asyncio.sleep(0.2)
    return Emit(ctx.topic.replace(".in", ".out"), note)


class DiscardingExporter(SpanExporter):
    """Spans are recorded, batched and exported - to nowhere, so no collector is timed."""

    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def recording_telemetry() -> Telemetry:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    return Telemetry(provider, MeterProvider())


def stage(name: str, source: str, handler: Any, max_in_flight: int) -> Stage:
    return Stage(
        name=name,
        consumes=source,
        produces=(source.replace(".in", ".out"),),
        handler=handler,
        max_in_flight=max_in_flight,
    )


async def measure(
    run: Any, cluster: Cluster, source: str, sink: str, value: bytes, count: int, rate: float | None
) -> tuple[float, float, float]:
    if rate is None:
        await fill(cluster, source, value, count)
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop))
    try:
        if rate is not None:
            await fill(cluster, source, value, count, rate)
        outputs = await read_timestamps(cluster, sink, count, timeout_s=300)
    finally:
        stop.set()
        await task
    if len(outputs) < count:
        raise RuntimeError(f"{sink}: only {len(outputs)} of {count} records arrived")
    inputs = await read_timestamps(cluster, source, count, timeout_s=60)
    times = sorted(outputs.values())
    throughput = (len(times) - 1) / max((times[-1] - times[0]) / 1000, 1e-3)
    latencies = sorted(outputs[k] - inputs[k] for k in outputs)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return throughput, statistics.median(latencies), p99


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--slow-records", type=int, default=10000)
    parser.add_argument("--latency-records", type=int, default=3000)
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    tune_worker_process()  # what `podium run` does; it applies to the raw loop as well

    project = Project(load_settings())
    started = False
    if not project.settings.bootstrap_servers and project.broker.running() is None:
        await project.broker.start(echo=console.print)
        started = True
    cluster = project.cluster()
    prefix = "bench" + os.urandom(3).hex()
    catalog = catalog_for(prefix, project)
    async with TopicAdmin(cluster) as admin:
        await admin.apply(catalog)
    value = project.codec.encode("podium.demo.Note", {"request_id": "r", "text": "x" * 1000})

    def raw(source: str, sink: str) -> Any:
        return lambda stop: raw_loop(cluster, source, sink, stop)

    def staged(s: Stage, telemetry: Telemetry | None = None) -> Any:
        async def run(stop: asyncio.Event) -> None:
            worker = StageWorker(
                s,
                cluster=cluster,
                catalog=catalog,
                codec=project.codec,
                group_id=f"{prefix}-{s.name}-{s.consumes}",
                telemetry=telemetry,
            )
            await worker.start()
            task = asyncio.create_task(worker.run())
            await stop.wait()
            worker.request_stop()
            await task

        return run

    rows = []
    try:
        n = args.records
        with console.status("raw aiokafka, backlog"):
            raw_tp = await measure(
                raw(f"{prefix}.raw.in", f"{prefix}.raw.out"),
                cluster,
                f"{prefix}.raw.in",
                f"{prefix}.raw.out",
                value,
                n,
                None,
            )
        with console.status("stage runtime, backlog"):
            st = stage("passthrough", f"{prefix}.stage.in", passthrough, 1000)
            stage_tp = await measure(staged(st), cluster, st.consumes, st.produces[0], value, n, None)
        with console.status("raw aiokafka, 1000/s"):
            raw_lat = await measure(
                raw(f"{prefix}.lat.raw.in", f"{prefix}.lat.raw.out"),
                cluster,
                f"{prefix}.lat.raw.in",
                f"{prefix}.lat.raw.out",
                value,
                args.latency_records,
                1000,
            )
        with console.status("stage runtime, 1000/s"):
            st_lat = replace(st, consumes=f"{prefix}.lat.stage.in", produces=(f"{prefix}.lat.stage.out",))
            stage_lat = await measure(
                staged(st_lat),
                cluster,
                st_lat.consumes,
                st_lat.produces[0],
                value,
                args.latency_records,
                1000,
            )
        with console.status("stage runtime, handler awaits 200 ms"):
            sl = stage("slow", f"{prefix}.slow.in", slow, 1000)
            spans = replace(st, consumes=f"{prefix}.spans.in", produces=(f"{prefix}.spans.out",))
            recording = recording_telemetry()
            spans_tp = await measure(
                staged(spans, recording), cluster, spans.consumes, spans.produces[0], value, n, None
            )
            recording.shutdown()
            slow_tp = await measure(
                staged(sl), cluster, sl.consumes, sl.produces[0], value, args.slow_records, None
            )
        rows = [
            ("raw aiokafka consume-produce", raw_tp[0], raw_lat[1], raw_lat[2], 1.0),
            ("podium stage, pass-through", stage_tp[0], stage_lat[1], stage_lat[2], stage_tp[0] / raw_tp[0]),
            ("podium stage, pass-through, spans recorded", spans_tp[0], None, None, spans_tp[0] / raw_tp[0]),
            ("podium stage, 200 ms handler, 1000 in flight", slow_tp[0], None, None, slow_tp[0] / raw_tp[0]),
        ]
    finally:
        if started:
            project.broker.stop()
    table = Table(
        title=f"1 KB Avro records, {PARTITIONS} partitions, one worker process, "
        f"Kafka {project.settings.kafka_version}"
    )
    for column in ("case", "msgs/s", "p50 ms @1000/s", "p99 ms @1000/s", "vs raw"):
        table.add_column(column, justify="right" if column != "case" else "left")
    for case, tp, p50, p99, ratio in rows:
        table.add_row(
            case,
            f"{tp:,.0f}",
            "-" if p50 is None else f"{p50:.0f}",
            "-" if p99 is None else f"{p99:.0f}",
            f"{ratio:.2f}",
        )
    console.print(table)
    console.print(
        f"records: {args.records} backlog, {args.slow_records} slow, {args.latency_records} at 1000/s"
    )


if __name__ == "__main__":
    asyncio.run(main())
