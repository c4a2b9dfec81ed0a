"""Ticks/s through ingest and the windowed join, against raw aiokafka, on one broker in one run.

    .venv/bin/python bench/market_windows.py [--ticks 200000] [--symbols 50]

Rows of the table:
  1. raw aiokafka produce: pre-encoded tick bytes, one producer, acks=all (the baseline for 2);
  2. podium ingest: TickIngester (newest-per-symbol check, Avro encode, send, acks per batch);
  3. raw aiokafka consume: getmany + Avro decode of every tick (the baseline for 4);
  4. podium windows: the WindowWorker folding a backlog of ticks into 60 s windows per symbol,
     with snapshots every second (group join and state restore not counted);
  5. ingest and windows at once: from the first tick sent until the worker folded the last.
Generated ticks: ``--symbols`` symbols, 10 ticks per second of source time each (200,000 ticks of
50 symbols span 400 s: six or seven windows per symbol close during the run).
Uses the running local broker or KAFKA_BOOTSTRAP_SERVERS; starts (and stops) one otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from local_kafka import bench_project
from rich.console import Console
from rich.table import Table

from agents.market.feeds.ticks import Tick, TickIngester
from agents.market.windows import TickWindows, WindowConfig
from streams.contracts import Catalog, parse_catalog
from streams.ingress import Publisher
from streams.kafka import TopicAdmin
from streams.kafka.connection import Cluster
from streams.runtime import Project, WindowStage, WindowWorker

console = Console(width=120)
T0 = 1_795_599_960_000


def catalog_for(prefix: str, project: Project) -> Catalog:
    topics = ""
    for run in ("raw", "ingest", "both"):
        topics += f"""
  {prefix}.{run}.ticks: {{value: podium.market.Tick, consumer: windows}}
  {prefix}.{run}.signals: {{value: podium.market.Signal}}
  {prefix}.{run}.windows: {{value: podium.market.Window}}
  {prefix}.{run}.state: {{value: podium.WindowState, cleanup: compact}}"""
    return parse_catalog(
        f"defaults: {{partitions: 3}}\ntopics:{topics}\n", Path("bench"), project.schemas.names()
    )


def ticks(count: int, symbols: int) -> list[Tick]:
    names = [f"SYM{i:03d}" for i in range(symbols)]
    per_symbol_ms = 100  # 10 ticks per second of source time per symbol: windows close as it runs
    return [
        Tick(names[i % symbols], 100.0 + (i % 97) / 10, 1.0, T0 + (i // symbols) * per_symbol_ms)
        for i in range(count)
    ]


async def raw_produce(cluster: Cluster, topic: str, values: list[tuple[bytes, bytes]]) -> float:
    producer = cluster.producer(acks="all", linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        acks = [await producer.send(topic, value, key=key) for key, value in values]
        await asyncio.gather(*acks)
        return len(values) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def raw_consume(cluster: Cluster, topic: str, count: int, project: Project) -> float:
    consumer = cluster.consumer(topic, group_id=f"raw-{os.urandom(2).hex()}",
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        seen, started = 0, None
        while seen < count:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                started = started or time.perf_counter()
                for record in records:
                    project.codec.decode("podium.market.Tick", record.value or b"")
                seen += len(records)
        assert started is not None
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def window_worker(
    prefix: str, run: str, catalog: Catalog, project: Project, cluster: Cluster
) -> WindowWorker:
    config = WindowConfig(f"{prefix}.{run}.ticks", f"{prefix}.{run}.signals", size_ms=60_000, grace_ms=5_000)
    stage = WindowStage(
        "windows",
        consumes=config.ticks_topic,
        joins=config.signals_topic,
        produces=(f"{prefix}.{run}.windows",),
        state_topic=f"{prefix}.{run}.state",
        new_state=lambda snapshot: TickWindows(config, snapshot),
    )
    return WindowWorker(stage, cluster=cluster, catalog=catalog, codec=project.codec,
                        group_id=f"bench-{prefix}-{run}")  # fmt: skip


async def fold_all(worker: WindowWorker, count: int, started: float | None = None) -> float:
    """Ticks/s from the first records fetched (or ``started``) until ``count`` were folded."""
    await worker.start()
    run = asyncio.create_task(worker.run())
    try:
        # Polling the worker's counter is the measurement: a few ms of resolution on seconds.
        while worker.records_folded < count and not run.done():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        if run.done():
            await run  # the worker stopped before the end: its error, not a rate
            raise RuntimeError(f"the window worker stopped after {worker.records_folded} of {count} records")
        first = started if started is not None else worker.first_fetch_at
        assert first is not None
        return count / (time.perf_counter() - first)
    finally:
        worker.request_stop()
        await run


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--symbols", type=int, default=50)
    args = parser.parse_args()
    async with bench_project(console) as project:
        cluster = project.cluster()
        prefix = f"bench{os.urandom(2).hex()}"
        catalog = catalog_for(prefix, project)
        async with TopicAdmin(cluster) as admin:
            await admin.apply(catalog)
        generated = ticks(args.ticks, args.symbols)
        encoded = [
            (t.symbol.encode(), project.codec.encode("podium.market.Tick", t.record("bench")))
            for t in generated
        ]
        rows: list[tuple[str, float, float | None]] = []

        raw_in = await raw_produce(cluster, f"{prefix}.raw.ticks", encoded)
        async with Publisher(cluster=cluster, catalog=catalog, codec=project.codec) as publisher:
            ingester = TickIngester(publisher, project.codec, "bench", topic=f"{prefix}.ingest.ticks")
            t0 = time.perf_counter()
            for i in range(0, len(generated), 5_000):  # batches, as a feed delivers them
                await ingester.ingest(list(generated[i : i + 5_000]))
            ingest = args.ticks / (time.perf_counter() - t0)
        rows += [
            ("raw aiokafka produce", raw_in, None),
            ("podium ingest (TickIngester)", ingest, ingest / raw_in),
        ]

        raw_out = await raw_consume(cluster, f"{prefix}.raw.ticks", args.ticks, project)
        folded_worker = window_worker(prefix, "raw", catalog, project, cluster)
        folded = await fold_all(folded_worker, args.ticks)
        rows += [
            ("raw aiokafka consume + decode", raw_out, None),
            ("podium windows (backlog)", folded, folded / raw_out),
        ]

        async with Publisher(cluster=cluster, catalog=catalog, codec=project.codec) as publisher:
            worker = window_worker(prefix, "both", catalog, project, cluster)
            ingester = TickIngester(publisher, project.codec, "bench", topic=f"{prefix}.both.ticks")

            async def feed() -> None:
                for i in range(0, len(generated), 5_000):
                    await ingester.ingest(list(generated[i : i + 5_000]))

            start = time.perf_counter()
            feeding = asyncio.create_task(feed())
            both = await fold_all(worker, args.ticks, started=start)
            await feeding
        rows.append(("ingest + windows at once", both, min(both / raw_in, both / raw_out)))

        table = Table(
            title=f"market: {args.ticks:,} ticks of {args.symbols} symbols, 60 s windows (target 20,000/s)"
        )
        for column in ("path", "ticks/s", "vs raw aiokafka"):
            table.add_column(column, justify="right")
        for name, rate, ratio in rows:
            table.add_row(name, f"{rate:,.0f}", "" if ratio is None else f"{ratio:.2f}")
        console.print(table)
        console.print(
            f"windows emitted by the last two runs: {folded_worker.windows_sent}, {worker.windows_sent}"
        )


if __name__ == "__main__":
    asyncio.run(main())
