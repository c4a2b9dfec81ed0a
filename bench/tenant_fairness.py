"""Tenant B's end-to-end latency through a stage while tenant A floods it, with fairness and without.

    .venv/bin/python bench/tenant_fairness.py [--a-records 5000] [--b-records 50] [--handler-ms 20]
                                              [--in-flight 64] [--b-spread-s 1.5] [--rounds 3]

One stage whose handler awaits ``--handler-ms`` (a model call), ``--in-flight`` slots, 3
partitions, run by a worker in its own process (this script with ``worker``). Three cases, each
on topics of its own, each with a fresh worker that a warm-up record went through first (group
join and connections do not count):

1. B alone: B publishes ``--b-records`` requests, one every ``--b-spread-s / b-records`` s;
2. A's flood, fair (the default ``Fairness()``): A publishes ``--a-records`` requests at once
   (as fast as one producer sends them, from a process of its own: ``flood``) and B, at the same
   moment, the same paced requests as in 1;
3. the same with ``Fairness(by_tenant=False)``: one queue, records started in the order read (the
   FIFO podium had before fairness).

A's backlog takes at least a_records x handler / in_flight to work off (5000 x 20 ms / 64 =
1.6 s); B's requests arrive during it. Latency is the output record's LogAppendTime (the broker's
clock, the output topic is made so) minus the input record's CreateTime (the publisher's, on the
same machine). The three cases take turns ``--rounds`` times; each figure is the median of its
rounds (B's p95 of each round is printed too). Per case: B's p50 and p95, the p95 against B
alone, B's p95 from its publish to its handler's start (the worker's clock against the
publisher's: reading it and waiting for a slot), and when A's last record was done. Uses the
running local broker or KAFKA_BOOTSTRAP_SERVERS; starts (and stops) one otherwise. Not a test:
the figures depend on the machine's load (printed with them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from rich.console import Console
from rich.table import Table

from streams.config import load_settings
from streams.contracts import Catalog, now_ms, parse_catalog
from streams.kafka import TopicAdmin
from streams.kafka.connection import Cluster, KafkaSecurity
from streams.runtime import (
    Emit,
    Fairness,
    Project,
    Record,
    Stage,
    StageContext,
    StageWorker,
    tune_worker_process,
)

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 3
console = Console(width=120)


def catalog_for(prefix: str, project: Project) -> Catalog:
    text = f"""
defaults: {{partitions: {PARTITIONS}}}
topics:
  {prefix}.in: {{value: podium.demo.Note, consumer: model}}
  {prefix}.out: {{value: podium.demo.Note}}
"""
    return parse_catalog(text, Path("bench"), project.schemas.names())


# -- the worker process -----------------------------------------------------------------
def child_cluster(bootstrap: str) -> tuple[Project, Cluster]:
    """A child process's project, and the measuring process's cluster with the settings' security."""
    project = Project(load_settings())
    return project, Cluster(bootstrap, KafkaSecurity.from_settings(project.settings))


async def run_worker(bootstrap: str, prefix: str, fifo: bool, handler_ms: float, in_flight: int) -> None:
    tune_worker_process()
    project, cluster = child_cluster(bootstrap)
    catalog = catalog_for(prefix, project)

    started_after_ms: list[int] = []  # B's: from its publish to its handler's start

    async def model_call(note: Record, ctx: StageContext) -> Emit:
        if ctx.headers.tenant == "B":
            started_after_ms.append(now_ms() - ctx.timestamp_ms)
        await asyncio.sleep(handler_ms / 1000)
        return Emit(f"{prefix}.out", note)

    stage = Stage(
        name="model",
        consumes=f"{prefix}.in",
        produces=(f"{prefix}.out",),
        handler=model_call,
        max_in_flight=in_flight,
        fairness=Fairness(by_tenant=not fifo),
    )
    worker = StageWorker(
        stage, cluster=cluster, catalog=catalog, codec=project.codec, group_id=f"{prefix}-model"
    )
    await worker.start()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.request_stop)
    await worker.run()
    print(json.dumps(started_after_ms), flush=True)


async def run_flood(bootstrap: str, prefix: str, count: int) -> None:
    """Tenant A: ``count`` requests at once, when the measuring process says go."""
    project, cluster = child_cluster(bootstrap)
    value = project.codec.encode("podium.demo.Note", {"request_id": "r", "text": "x" * 200})
    producer = cluster.producer(acks="all", linger_ms=5)
    await producer.start()
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        await publish(producer, f"{prefix}.in", value, "A", count, None)
    finally:
        await producer.stop()


# -- the measuring process --------------------------------------------------------------
async def publish(
    producer: AIOKafkaProducer, topic: str, value: bytes, tenant: str, count: int, every_s: float | None
) -> None:
    """``count`` requests of ``tenant``, all at once or one every ``every_s``."""
    futures = []
    started = time.perf_counter()
    for i in range(count):
        key = f"{tenant}-{i}".encode()
        headers = [("podium-request-id", key), ("podium-tenant", tenant.encode())]
        futures.append(await producer.send(topic, value, key=key, headers=headers))
        if every_s is not None:
            ahead = (i + 1) * every_s - (time.perf_counter() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
    await asyncio.gather(*futures)


async def timestamps(cluster: Cluster, topic: str, keys: set[bytes], timeout_s: float) -> dict[bytes, int]:
    """Each key's first timestamp on ``topic``, read from its beginning until all are there."""
    consumer = cluster.consumer(enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen: dict[bytes, int] = {}
        deadline = time.monotonic() + timeout_s
        while not keys <= seen.keys() and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                for r in records:
                    if r.key in keys:
                        seen.setdefault(r.key, r.timestamp)
        missing = keys - seen.keys()
        if missing:
            raise RuntimeError(f"{topic}: {len(missing)} of {len(keys)} records did not arrive")
        return seen
    finally:
        await consumer.stop()


def start_worker(
    bootstrap: str, prefix: str, fifo: bool, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        __file__,
        "worker",
        "--bootstrap",
        bootstrap,
        "--prefix",
        prefix,
        "--handler-ms",
        str(args.handler_ms),
        "--in-flight",
        str(args.in_flight),
    ]
    if fifo:
        command.append("--fifo")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PODIUM_OTEL_EXPORTER": "none"}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def quantile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * q))])


async def measure(
    cluster: Cluster, project: Project, prefix: str, fifo: bool, a_records: int, args: argparse.Namespace
) -> tuple[list[int], list[int], float]:
    """B's latencies (ms), B's waits before its handler started (ms), and when A's last record
    was done (seconds after the first publish)."""
    catalog = catalog_for(prefix, project)
    async with TopicAdmin(cluster) as admin:
        await admin.apply(catalog)
    admin_client = cluster.admin()
    await admin_client.start()
    try:  # the broker stamps the outputs: latency is not measured on the worker's clock
        resource = ConfigResource(
            ConfigResourceType.TOPIC, f"{prefix}.out", configs={"message.timestamp.type": "LogAppendTime"}
        )
        await admin_client.alter_configs([resource])
    finally:
        await admin_client.close()
    value = project.codec.encode("podium.demo.Note", {"request_id": "r", "text": "x" * 200})
    worker = start_worker(cluster.bootstrap, prefix, fifo, args)
    producers = [cluster.producer(acks="all", linger_ms=5) for _ in range(2)]
    # producers[0]: the warm-up record; producers[1]: tenant B.
    try:
        for producer in producers:
            await producer.start()
        await publish(producers[0], f"{prefix}.in", value, "warmup", 1, None)
        await timestamps(cluster, f"{prefix}.out", {b"warmup-0"}, timeout_s=120)
        # A floods from a process of its own: sharing this event loop, its burst would hold B's
        # batches back before they reach the broker, and B's latency would be the publisher's.
        flood = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "flood",
            "--bootstrap",
            cluster.bootstrap,
            "--prefix",
            prefix,
            "--a-records",
            str(a_records),
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert flood.stdin is not None and flood.stdout is not None
        if (await flood.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the flood publisher did not start")
        started_ms = time.time_ns() // 1_000_000
        flood.stdin.write(b"go\n")
        await flood.stdin.drain()
        await publish(
            producers[1], f"{prefix}.in", value, "B", args.b_records, args.b_spread_s / args.b_records
        )
        if await flood.wait() != 0:
            raise RuntimeError(f"the flood publisher exited {flood.returncode}")
        b_keys = {f"B-{i}".encode() for i in range(args.b_records)}
        a_keys = {f"A-{i}".encode() for i in range(a_records)}
        done = await timestamps(cluster, f"{prefix}.out", b_keys | a_keys, timeout_s=300)
        sent = await timestamps(cluster, f"{prefix}.in", b_keys, timeout_s=60)
    finally:
        for producer in producers:
            await producer.stop()
        worker.send_signal(signal.SIGTERM)
        out, errors = worker.communicate(timeout=60)
        if worker.returncode != 0:
            console.print(errors.decode(errors="replace")[-2000:])
            raise RuntimeError(f"the worker exited {worker.returncode}")
    latencies = [done[k] - sent[k] for k in b_keys]
    waits = json.loads(out.decode().strip().splitlines()[-1])
    a_done_s = (max(done[k] for k in a_keys) - started_ms) / 1000 if a_keys else 0.0
    return latencies, waits, a_done_s


async def main(args: argparse.Namespace) -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    project = Project(load_settings())
    started = False
    if not project.settings.bootstrap_servers and project.broker.running() is None:
        await project.broker.start(echo=console.print)
        started = True
    cluster = project.cluster()
    run = "fair" + os.urandom(3).hex()
    cases = [
        ("B alone", False, 0),
        (f"B under A's {args.a_records:,}, fair", False, args.a_records),
        (f"B under A's {args.a_records:,}, FIFO", True, args.a_records),
    ]
    # name -> per round: (B p50, B p95, B p95 to its handler, A's last done)
    rounds: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name, _, _ in cases}
    try:
        # The cases take turns, round after round: on a shared machine a quiet or busy minute
        # then falls on every case instead of on one, and the medians are compared.
        for r in range(args.rounds):
            for i, (name, fifo, a_records) in enumerate(cases):
                with console.status(f"round {r + 1} of {args.rounds}: {name}"):
                    latencies, waits, a_done_s = await measure(
                        cluster, project, f"{run}.{r}.{i}", fifo, a_records, args
                    )
                rounds[name].append(
                    (quantile(latencies, 0.5), quantile(latencies, 0.95), quantile(waits, 0.95), a_done_s)
                )
    finally:
        if started:
            project.broker.stop()

    def median(name: str, column: int) -> float:
        return statistics.median(row[column] for row in rounds[name])

    alone_p95 = median(cases[0][0], 1)
    table = Table(
        title=f"Tenant B's {args.b_records} requests over {args.b_spread_s} s; "
        f"handler {args.handler_ms:g} ms, {args.in_flight} in flight, {PARTITIONS} partitions, "
        f"worker in its own process; medians of {args.rounds} rounds"
    )
    columns = (
        "case",
        "B p50 ms",
        "B p95 ms",
        "B p95 / alone",
        "B p95 to its handler ms",
        "A's last done (s)",
        "B p95 ms, each round",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "case" else "right")
    for name, _, a_records in cases:
        table.add_row(
            name,
            f"{median(name, 0):.0f}",
            f"{median(name, 1):.0f}",
            f"{median(name, 1) / alone_p95:.2f}",
            f"{median(name, 2):.0f}",
            f"{median(name, 3):.2f}" if a_records else "-",
            " ".join(f"{row[1]:.0f}" for row in rounds[name]),
        )
    console.print(table)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(f"target: B p95 under the flood within 2x of B alone (fair); load average {load}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("role", nargs="?", choices=["measure", "worker", "flood"], default="measure")
    parser.add_argument("--a-records", type=int, default=5000)
    parser.add_argument("--b-records", type=int, default=50)
    parser.add_argument("--b-spread-s", type=float, default=1.5)
    parser.add_argument("--handler-ms", type=float, default=20.0)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="each case this many times, in turns")
    # The worker's and the flood publisher's own options.
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--fifo", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def entry() -> Any:
    args = parse()
    if args.role == "flood":
        return asyncio.run(run_flood(args.bootstrap, args.prefix, args.a_records))
    if args.role == "worker":
        return asyncio.run(
            run_worker(args.bootstrap, args.prefix, args.fifo, args.handler_ms, args.in_flight)
        )
    return asyncio.run(main(args))


if __name__ == "__main__":
    entry()
