"""Evidence for a design decision: does a faust agent with concurrency commit past unfinished work?

    .venv/bin/python bench/faust_commit_probe.py [--records 500] [--concurrency 100]

Runs the same workload twice on the real broker, each worker in a child process:
  * a faust-streaming agent (concurrency=N) that awaits 0.5-2 s per record, then sends the record on;
  * the podium stage runtime with the same handler and N records in flight.
Once a share of the outputs has appeared, the worker is killed with SIGKILL. Then, per
partition, every input offset below the group's committed offset whose output never appeared
is a record that a restarted worker would skip: a lost record. The table prints both counts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from rich.console import Console
from rich.table import Table

from streams.config import load_settings
from streams.kafka.connection import Cluster
from streams.runtime import Project

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 3
console = Console(width=120)

FAUST_APP = """
import asyncio, os, random
import faust

app = faust.App(os.environ["PROBE_APP"], broker="kafka://" + os.environ["PROBE_BOOTSTRAP"],
                value_serializer="raw", key_serializer="raw", topic_partitions={partitions},
                broker_commit_every=100, broker_commit_interval=0.2, web_enabled=False)
source = app.topic(os.environ["PROBE_IN"], value_type=bytes, key_type=bytes)
sink = app.topic(os.environ["PROBE_OUT"], value_type=bytes, key_type=bytes)

@app.agent(source, concurrency=int(os.environ["PROBE_CONCURRENCY"]))
async def slow(stream):
    async for event in stream.events():
        await asyncio.sleep(random.uniform(0.5, 2.0))
        await sink.send(key=event.key, value=event.value)

if __name__ == "__main__":
    app.main()
"""

PODIUM_STAGES = """
import asyncio, os, random
from streams.runtime import Emit, Stage

async def slow(note, ctx):
    await asyncio.sleep(random.uniform(0.5, 2.0))
    return Emit(os.environ["PROBE_OUT"], note)

def stages():
    return [Stage(name="probe", consumes=os.environ["PROBE_IN"], produces=(os.environ["PROBE_OUT"],),
                  handler=slow, max_in_flight=int(os.environ["PROBE_CONCURRENCY"]))]
"""


async def create(cluster: Cluster, names: list[str]) -> None:
    admin = cluster.admin()
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    finally:
        await admin.close()


async def fill(cluster: Cluster, topic: str, value: bytes, count: int) -> dict[bytes, tuple[int, int]]:
    producer = cluster.producer(acks="all")
    await producer.start()
    try:
        futures = {
            f"r{i}".encode(): await producer.send(topic, value, key=f"r{i}".encode()) for i in range(count)
        }
        return {k: ((m := await f).partition, m.offset) for k, f in futures.items()}
    finally:
        await producer.stop()


async def outputs(cluster: Cluster, topic: str) -> set[bytes]:
    consumer = cluster.consumer(group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        keys: set[bytes] = set()
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                keys |= {r.key or b"" for r in records}
        return keys
    finally:
        await consumer.stop()


async def committed(cluster: Cluster, group: str, topic: str) -> dict[int, int]:
    admin = cluster.admin()
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def probe(
    kind: str, cluster: Cluster, records: int, concurrency: int, workdir: Path
) -> tuple[int, int, int, int]:
    tag = f"probe{os.urandom(3).hex()}"
    source, sink = f"{tag}.in", f"{tag}.out"
    topics = [source, sink]
    env = {
        **os.environ,
        "PROBE_BOOTSTRAP": cluster.bootstrap,
        "PROBE_IN": source,
        "PROBE_OUT": sink,
        "PROBE_APP": tag,
        "PROBE_CONCURRENCY": str(concurrency),
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "PYTHONPATH": f"{workdir}:{REPO}",
    }
    if kind == "faust":
        (workdir / f"{tag}_app.py").write_text(FAUST_APP.replace("{partitions}", str(PARTITIONS)))
        command = [
            sys.executable,
            str(workdir / f"{tag}_app.py"),
            "--datadir",
            str(workdir / tag),
            "worker",
            "-l",
            "warn",
        ]
        group = tag
    else:
        topics += [f"{source}.retry", f"{source}.dlq"]
        (workdir / f"{tag}_stages.py").write_text(PODIUM_STAGES)
        catalog = workdir / f"{tag}.yaml"
        catalog.write_text(
            f"topics:\n  {source}: {{value: podium.demo.Note, consumer: probe, partitions: {PARTITIONS}}}\n"
            f"  {sink}: {{value: podium.demo.Note, partitions: {PARTITIONS}}}\n"
        )
        env["PODIUM_TOPICS"] = str(catalog)
        env["PODIUM_SCHEMAS"] = str(REPO / "schemas")
        command = [sys.executable, "-m", "agents.cli", "run", f"{tag}_stages:stages"]
        group = "podium.probe"
    await create(cluster, topics)
    project = Project(load_settings(PODIUM_SCHEMAS=str(REPO / "schemas")))
    value = project.codec.encode("podium.demo.Note", {"request_id": "r", "text": "x" * 200})
    placed = await fill(cluster, source, value, records)
    log = (workdir / f"{tag}.log").open("wb")
    worker = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the worker runs on
        command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"{kind} worker exited: {(workdir / f'{tag}.log').read_text()[-2000:]}")
            if len(await outputs(cluster, sink)) >= records // 5:
                break
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    done = await outputs(cluster, sink)
    positions = await committed(cluster, group, source)
    below = [k for k, (p, o) in placed.items() if o < positions.get(p, 0)]
    lost = [k for k in below if k not in done]
    return len(done), len(below), len(lost), sum(positions.values())


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    project = Project(load_settings())
    started = False
    if not project.settings.bootstrap_servers and project.broker.running() is None:
        await project.broker.start(echo=console.print)
        started = True
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "podium-faust-probe"
    workdir.mkdir(exist_ok=True)
    rows = []
    try:
        for kind in ("faust", "podium"):
            with console.status(
                f"{kind}: {args.records} records, {args.concurrency} in flight, then SIGKILL"
            ):
                rows.append(
                    (kind, *await probe(kind, project.cluster(), args.records, args.concurrency, workdir))
                )
    finally:
        if started:
            project.broker.stop()
    table = Table(
        title=f"kill -9 with work in flight ({args.records} records, concurrency {args.concurrency})"
    )
    for column in ("runtime", "outputs before kill", "inputs committed", "committed without output (lost)"):
        table.add_column(column, justify="left" if column == "runtime" else "right")
    for kind, done, below, lost, _ in rows:
        table.add_row(kind, str(done), str(below), str(lost))
    console.print(table)


if __name__ == "__main__":
    asyncio.run(main())
