"""Helpers for tests on the real broker: run workers and the CLI, read group offsets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from streams.kafka.connection import Cluster
from streams.runtime.workers import Worker

REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def running(*workers: Worker) -> AsyncIterator[None]:
    for worker in workers:
        await worker.start()
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        for worker in workers:
            worker.request_stop()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


async def read_topic(cluster: Cluster, topic: str) -> list[tuple[str, bytes]]:
    """(key, value) of every record on a topic now, all partitions."""
    from streams.kafka.reading import Selection, TopicReader

    async with TopicReader(cluster) as reader:
        return [
            ((r.key or b"").decode(), r.value or b"")
            async for r in reader.read(await reader.plan(Selection(topic)))
        ]


async def committed(cluster: Cluster, group: str) -> dict[tuple[str, int], int]:
    admin = cluster.admin()
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


def podium(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, from the repository, with extra environment."""
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,  # `podium demo` ingests the knowledge base before the support waves
        check=False,
    )


def start_worker(
    cluster: Cluster, log: Path, *targets: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`podium run <targets>` in a process of its own (to be killed), its output in ``log``;
    ``env``: more environment for it."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "PODIUM_METRICS_PORT": "0",
        **(env or {}),
    }
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "agents.cli", "run", *targets],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(log: Path, text: str, timeout_s: float = 60) -> None:
    """Until ``text`` shows in the log (a worker says it runs)."""
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
        time.sleep(0.2)


async def start_group_at_end(cluster: Cluster, group: str, topic: str) -> None:
    """Commits ``group`` at the end of ``topic``: a stage started with it reads only what is
    published from now on (a test's own records, not what earlier tests left)."""

    from streams.kafka import partitions_of

    consumer = cluster.consumer(group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topic)
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(ends.items()))
    finally:
        await consumer.stop()
