"""Helpers for tests on the real broker: run workers and the CLI, read group offsets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from streams.runtime import StageWorker

REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def running(*workers: StageWorker) -> AsyncIterator[None]:
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


async def read_topic(bootstrap: str, topic: str) -> list[tuple[str, bytes]]:
    """(key, value) of every record on a topic now, all partitions."""
    from streams.reading import Selection, TopicReader

    async with TopicReader(bootstrap) as reader:
        return [
            ((r.key or b"").decode(), r.value or b"")
            async for r in reader.read(await reader.plan(Selection(topic)))
        ]


async def committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


def podium(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, from the repository, with extra environment."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
