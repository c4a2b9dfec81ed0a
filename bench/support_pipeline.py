"""The support pipeline end to end on a real broker, against the provider simulator, in one run.

    .venv/bin/python bench/support_pipeline.py [--requests 2000] [--latencies 0,500] [--rate 100]

For each simulated model latency (the simulator runs in its own process, a stand-in for hosted
models: no faults, answers of placeholder words):

1. in-process baseline: the same five handlers called one after another in this process, with
   the same gateway, simulator and local models, ``--concurrency`` requests at a time, no Kafka;
2. the pipeline on Kafka, backlog: ``--requests`` tickets published at once into topics of their
   own (a prefix, so a running `podium up` is not disturbed); requests/s from the first publish
   to the last terminal record;
3. the pipeline on Kafka at a fixed ``--rate``: end-to-end p50/p99 (terminal record time minus
   publish time) and, per stage, the orchestration overhead: time in the handler minus time in
   model calls, p50/p99; and the hops: end to end minus the time inside all handlers.

All stages run in this process (one worker each), as `podium up` runs them. Uses the running
local broker or KAFKA_BOOTSTRAP_SERVERS; starts (and stops) one otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from local_kafka import bench_project
from rich.console import Console
from rich.table import Table

from agents.support.outcomes import load_tickets
from agents.support.services import SupportConfig
from agents.support.stages import support_stages
from streams.contracts import Catalog, RequestHeaders, new_request_id, now_ms, parse_catalog
from streams.ingress import Publisher
from streams.kafka import Follower, TopicAdmin
from streams.kafka.connection import Cluster
from streams.operations import pipeline_topics
from streams.runtime import Emit, Project, Stage, StageContext, StageEnv, StageWorker
from streams.telemetry import Telemetry

REPO = Path(__file__).resolve().parents[1]
console = Console(width=130)


def prefixed_catalog(project: Project, prefix: str) -> Catalog:
    text = (REPO / "topics.yaml").read_text().replace("\n  support.", f"\n  {prefix}support.")
    return parse_catalog(text, Path("bench-topics.yaml"), project.schemas.names())


@contextlib.contextmanager
def simulator(latency_ms: float) -> Iterator[str]:
    port = 18900 + int(latency_ms) % 1000
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agents.cli",
            "sim",
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--tokens-per-s",
            "1000000",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import httpx

        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=0.5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def models_file(url: str, directory: Path) -> Path:
    path = directory / "models.bench.yaml"
    prices = {"sim-large": {"input": 3.0, "output": 15.0}, "sim-small": {"input": 0.15, "output": 0.6}}
    path.write_text(
        json.dumps(
            {
                "providers": {"sim": {"kind": "openai", "base_url": url + "/v1"}},
                "prices": prices,
                "stages": {
                    "generate": {"chain": [{"provider": "sim", "model": "sim-large"}], "max_retries": 0},
                    "generate-direct": {
                        "chain": [{"provider": "sim", "model": "sim-small"}],
                        "max_retries": 0,
                    },
                },
            }
        )
    )
    return path


def bodies(count: int, run: str) -> list[dict[str, Any]]:
    tickets = [t for t in load_tickets() if t.wave == 1]
    # Unique bodies, so the answer cache never replies; the sample's mix of routes is kept.
    return [
        {
            "body": f"{tickets[i % len(tickets)].body} (ticket {run}-{i})",
            "tenant": tickets[i % len(tickets)].tenant,
        }
        for i in range(count)
    ]


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def in_process(stages: list[Stage[Any]], records: list[dict[str, Any]], concurrency: int) -> float:
    """Requests/s through the handlers alone: classify -> ... -> screen, no Kafka."""
    by_topic = {s.consumes: s for s in stages}
    room = asyncio.Semaphore(concurrency)

    async def one(record: dict[str, Any]) -> None:
        async with room:
            rid = new_request_id()
            headers = RequestHeaders(request_id=rid, deadline_ms=now_ms() + 60_000)
            topic, value = stages[0].consumes, {**record, "request_id": rid}
            while topic in by_topic:
                stage = by_topic[topic]
                ctx = StageContext(stage.name, topic, 0, 0, headers, 1, timestamp_ms=now_ms())
                out = await stage.handler(value, ctx)
                emit = out if isinstance(out, Emit) else out[0]
                topic, value = emit.topic, emit.value

    started = time.perf_counter()
    await asyncio.gather(*(one(r) for r in records))
    return len(records) / (time.perf_counter() - started)


async def on_kafka(
    project: Project,
    catalog: Catalog,
    stages: list[Stage[Any]],
    records: list[dict[str, Any]],
    rate: float | None,
    cluster: Cluster,
) -> tuple[float, list[dict[str, Any]], list[float]]:
    """(requests/s, terminal values, end-to-end ms) with the stages running on Kafka.

    ``rate`` None: the requests are published first, as a backlog, and requests/s is taken
    between the first and the last terminal record. Otherwise they are published at ``rate``.
    """
    input_topic, terminal = pipeline_topics(stages, catalog)
    # One group per stage for the whole bench: each run starts where the previous one committed.
    prefix = input_topic.removesuffix("support.requests")
    workers = [
        StageWorker(s, cluster=cluster, catalog=catalog, codec=project.codec, group_id=f"{prefix}{s.name}")
        for s in stages
    ]
    sent: dict[str, float] = {}
    got: dict[str, Any] = {}
    async with (
        Follower(cluster, terminal) as follower,
        Publisher(cluster=cluster, catalog=catalog, codec=project.codec) as publisher,
    ):

        async def publish(record: dict[str, Any]) -> None:
            at = time.time()
            sent[await publisher.publish(input_topic, record)] = at

        if rate is None:  # the backlog, before any stage runs
            room = asyncio.Semaphore(256)

            async def bounded(record: dict[str, Any]) -> None:
                async with room:
                    await publish(record)

            await asyncio.gather(*(bounded(r) for r in records))
        for w in workers:
            await w.start()
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            publishing: list[asyncio.Task[None]] = []
            if rate is not None:
                await asyncio.sleep(3)  # consumer groups join before the clock starts
                started = time.perf_counter()
                for i, record in enumerate(records):
                    publishing.append(asyncio.create_task(publish(record)))
                    ahead = (i + 1) / rate - (time.perf_counter() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                await asyncio.gather(*publishing)
            deadline = time.monotonic() + 600
            while len(got) < len(records) and time.monotonic() < deadline:
                for rid, arrivals in (await follower.poll(0.2)).items():
                    if rid in sent:
                        got.setdefault(rid, arrivals[0])
        finally:
            for w in workers:
                w.request_stop()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, BaseException):  # a crashed worker is a failed run, not a slow one
                    raise result
    values, e2e = [], []
    for rid, arrival in got.items():
        schema = catalog.get(arrival.topic).value_schema
        values.append(project.codec.decode(schema, arrival.value or b""))
        e2e.append(arrival.timestamp_ms - sent[rid] * 1000)
    if len(values) < len(records):
        console.print(f"[red]{len(records) - len(values)} requests did not reach a terminal topic in time[/]")
    stamps = sorted(a.timestamp_ms for a in got.values())
    elapsed = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else 0.0
    return (len(stamps) - 1) / elapsed if elapsed else 0.0, values, e2e


def overheads(values: list[dict[str, Any]], e2e: list[float]) -> tuple[dict[str, list[float]], list[float]]:
    per_stage: dict[str, list[float]] = {}
    inside = []
    for v in values:
        steps = v.get("steps", [])
        for s in steps:
            per_stage.setdefault(s["stage"], []).append(s["latency_ms"] - s["model_ms"])
        inside.append(sum(s["latency_ms"] for s in steps))
    hops = [total - handlers for total, handlers in zip(e2e, inside, strict=False)]
    return per_stage, hops


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--latencies", default="0,500", help="simulated model latency, ms, comma-separated")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s of the latency run")
    parser.add_argument("--latency-requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    async with bench_project(console) as project:
        cluster = project.cluster()
        prefix = f"bench{os.urandom(2).hex()}."
        catalog = prefixed_catalog(project, prefix)
        async with TopicAdmin(cluster) as admin:
            await admin.apply(catalog.select(t.name for t in catalog if t.name.startswith(prefix)))

        table = Table(
            title=f"support pipeline: {args.requests} requests as a backlog, {args.latency_requests} at "
            f"{args.rate:.0f}/s"
        )
        for column in (
            "model latency",
            "in-process req/s",
            "Kafka req/s",
            "ratio",
            "e2e p50 ms",
            "e2e p99 ms",
            "hops p50/p99 ms",
        ):
            table.add_column(column, justify="right")
        stage_table = Table(
            title="orchestration overhead per stage: handler time minus model time, ms (rate run)"
        )
        for column in ("model latency", "stage", "p50", "p99", "records"):
            stage_table.add_column(column, justify="right")
        telemetry = Telemetry.configure("none")
        for latency in (float(x) for x in args.latencies.split(",")):
            with tempfile.TemporaryDirectory() as tmp, simulator(latency) as url:
                config = SupportConfig(
                    models=models_file(url, Path(tmp)), cache_scope=f"bench-{os.urandom(3).hex()}"
                )
                stages = support_stages(config, prefix=prefix)
                services = stages[0].resources[0]
                await services.open(StageEnv(cluster, catalog, project.codec, telemetry))
                try:
                    with console.status(f"{latency:.0f} ms: in-process baseline"):
                        baseline = await in_process(stages, bodies(args.requests, "base"), args.concurrency)
                    with console.status(f"{latency:.0f} ms: pipeline on Kafka, backlog"):
                        rps, _, _ = await on_kafka(
                            project, catalog, stages, bodies(args.requests, "tp"), None, cluster
                        )
                    with console.status(f"{latency:.0f} ms: pipeline on Kafka at {args.rate:.0f}/s"):
                        _, values, e2e = await on_kafka(
                            project,
                            catalog,
                            stages,
                            bodies(args.latency_requests, "lat"),
                            args.rate,
                            cluster,
                        )
                finally:
                    await services.close()
            per_stage, hops = overheads(values, e2e)
            table.add_row(
                f"{latency:.0f} ms",
                f"{baseline:,.0f}",
                f"{rps:,.0f}",
                f"{rps / baseline:.2f}",
                f"{pct(e2e, 50):.0f}",
                f"{pct(e2e, 99):.0f}",
                f"{pct(hops, 50):.0f} / {pct(hops, 99):.0f}",
            )
            for stage, ms in per_stage.items():
                stage_table.add_row(
                    f"{latency:.0f} ms", stage, f"{pct(ms, 50):.2f}", f"{pct(ms, 99):.2f}", str(len(ms))
                )
        console.print(table, stage_table)


if __name__ == "__main__":
    asyncio.run(main())
