"""A second worker joins a busy group: the first drains and commits what it holds of the partitions
it gives up before they move, so nothing is lost and nothing is produced twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import committed, running

TOPICS = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: shared, partitions: 4}
  {p}.out: {value: podium.demo.Note, partitions: 1}
"""


async def test_a_worker_joining_mid_stream_takes_partitions_with_nothing_lost_or_repeated(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    group = f"{unique}-g"

    handled: Counter[str] = Counter()  # records each worker's handler ran

    def worker(name: str) -> StageWorker:
        async def slow(note: dict[str, Any], ctx: StageContext) -> Emit:
            handled[name] += 1
            await asyncio.sleep(0.2)  # so that records are in flight when the partitions move
            return Emit(f"{unique}.out", note)

        stage = Stage(
            name="shared",
            consumes=f"{unique}.in",
            produces=(f"{unique}.out",),
            handler=slow,
            max_in_flight=50,
        )
        return StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec, group_id=group)

    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        sent = {
            await publisher.publish(f"{unique}.in", {"request_id": "", "text": str(i)}) for i in range(2000)
        }
    first, second = worker("first"), worker("second")
    arrived: Counter[str] = Counter()
    async with Follower(cluster, [f"{unique}.out"]) as follower, running(first):
        while sum(arrived.values()) < 200:
            arrived.update({rid: len(items) for rid, items in (await follower.poll(0.2)).items()})
        async with running(second):
            deadline = time.monotonic() + 120
            while not (sent <= arrived.keys()) and time.monotonic() < deadline:
                arrived.update({rid: len(items) for rid, items in (await follower.poll(0.5)).items()})
        arrived.update({rid: len(items) for rid, items in (await follower.poll(1.0)).items()})
    assert arrived.keys() == sent
    assert handled["first"] > 200 and handled["second"] > 200, handled  # both took part
    assert [rid for rid, n in arrived.items() if n > 1] == []
    positions = await committed(cluster, group)
    assert sum(o for (t, _), o in positions.items() if t == f"{unique}.in") == len(sent)
