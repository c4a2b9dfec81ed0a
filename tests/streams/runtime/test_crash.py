"""kill -9 a worker with 500 records in flight: a restarted worker completes the run, no loss."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from tests.streams.running import committed

REPO = Path(__file__).resolve().parents[3]
TOPICS = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: crashy, partitions: 3}
  {p}.out: {value: podium.demo.Note, partitions: 3}
"""


def start_worker(cluster: Cluster, topics_file: Path, prefix: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "PODIUM_TOPICS": str(topics_file),
        "PODIUM_SCHEMAS": str(REPO / "schemas"),
        "PODIUM_TEST_PREFIX": prefix,
        "PYTHONPATH": str(REPO),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "run", "tests.streams.crash_stage:stages"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def test_kill_minus_nine_with_500_in_flight_loses_nothing(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(TOPICS, unique)
    topics_file = tmp_path / "topics.yaml"
    topics_file.write_text(TOPICS.replace("{p}", unique))
    codec = SingleObjectCodec(schema_store)
    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        sent = {
            await publisher.publish(f"{unique}.in", {"request_id": "", "text": str(i)}) for i in range(500)
        }

    async with Follower(cluster, [f"{unique}.out", f"{unique}.in.dlq"]) as follower:
        first = start_worker(cluster, topics_file, unique)
        seen: dict[str, int] = {}
        try:
            while len(seen) < 60:
                assert first.poll() is None, (first.stdout.read() if first.stdout else b"").decode()
                for rid, items in (await follower.poll(0.2)).items():
                    seen[rid] = seen.get(rid, 0) + len(items)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            if first.stdout:
                first.stdout.close()
        # Most of the 500 were in flight at the kill: their offsets must not have been committed.
        done_before_kill = sum(
            v for (t, _), v in (await committed(cluster, "podium.crashy")).items() if t == f"{unique}.in"
        )
        assert done_before_kill < 500

        second = start_worker(cluster, topics_file, unique)
        try:
            rest = await follower.collect(sent - seen.keys(), timeout_s=120)
            for rid, items in rest.items():
                seen[rid] = seen.get(rid, 0) + len(items)
            await asyncio.sleep(1.0)  # let the last commit happen
        finally:
            second.send_signal(signal.SIGTERM)
            output = second.communicate(timeout=60)[0].decode()
    missing = sent - seen.keys()
    assert not missing, f"{len(missing)} records lost"
    assert second.returncode == 0, output
    # SIGTERM drained and committed: the group is at the end of every input partition.
    positions = await committed(cluster, "podium.crashy")
    assert sum(v for (t, _), v in positions.items() if t == f"{unique}.in") == 500
    duplicates = sum(n - 1 for n in seen.values())
    print(f"crash test: {len(sent)} records, {duplicates} duplicates after kill -9, 0 lost")


async def test_two_worker_processes_share_the_partitions_through_the_group(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(TOPICS, unique)
    topics_file = tmp_path / "topics.yaml"
    topics_file.write_text(TOPICS.replace("{p}", unique))
    codec = SingleObjectCodec(schema_store)
    workers = [start_worker(cluster, topics_file, unique) for _ in range(2)]
    try:
        async with Follower(cluster, [f"{unique}.out", f"{unique}.in.dlq"]) as follower:
            async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
                sent = {
                    await publisher.publish(f"{unique}.in", {"request_id": "", "text": str(i)})
                    for i in range(300)
                }
            arrivals = await follower.collect(sent, timeout_s=120)
    finally:
        outputs = []
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            outputs.append(worker.communicate(timeout=60)[0].decode())
    assert sent <= arrivals.keys()
    assert all(a[0].topic == f"{unique}.out" for a in arrivals.values())
    for output in outputs:
        # Each process logged the partitions the group gave it; both got some of the input.
        assigned = [line for line in output.splitlines() if "stage crashy assigned" in line]
        assert any(f"{unique}.in'" in line or f"topic='{unique}.in'" in line for line in assigned), output[
            -2000:
        ]
