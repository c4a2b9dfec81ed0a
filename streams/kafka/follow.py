"""Follow requests to the topics they end in (demo, tests, ``publish --wait``), or follow topics
from their beginning and know when everything written before a moment has been read
(:meth:`Follower.ends`, :meth:`Follower.reached`: the approvals ``podium serve`` keeps)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import TopicPartition

from streams.contracts.headers import REQUEST_ID, header_value
from streams.kafka.connection import Cluster
from streams.kafka.reading import partitions_of

__all__ = ["Arrival", "Follower"]


@dataclass(frozen=True)
class Arrival:
    request_id: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int

    @property
    def timestamp(self) -> int:  # named as on aiokafka's ConsumerRecord
        return self.timestamp_ms


class Follower:
    """Reads the given topics from their current end (positions taken on entering), or from
    their beginning with ``from_beginning``."""

    def __init__(self, cluster: Cluster, topics: list[str], *, from_beginning: bool = False) -> None:
        self._topics = topics
        self._from_beginning = from_beginning
        self._consumer = cluster.consumer(
            enable_auto_commit=False,
            group_id=None,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )

    async def __aenter__(self) -> Follower:
        await self._consumer.start()
        try:
            partitions = [tp for topic in self._topics for tp in await partitions_of(self._consumer, topic)]
            self._consumer.assign(partitions)
            if self._from_beginning:
                starts = await self._consumer.beginning_offsets(partitions)
            else:
                starts = await self._consumer.end_offsets(partitions)
            for tp, start in starts.items():
                self._consumer.seek(tp, start)
        except BaseException:
            # A topic that is missing (or any failure after the start) leaves no consumer open.
            await self.__aexit__(None, None, None)
            raise
        return self

    async def ends(self) -> dict[TopicPartition, int]:
        """Each followed partition's end offset now: what has been written so far."""
        return dict(await self._consumer.end_offsets(list(self._consumer.assignment())))

    async def reached(self, ends: dict[TopicPartition, int]) -> bool:
        """Every record before ``ends`` has been returned by :meth:`poll`."""
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def __aexit__(self, *_: object) -> None:
        try:
            await self._consumer.stop()
        except asyncio.CancelledError:
            # With the broker gone, aiokafka's fetcher.close() re-raises the cancellation of
            # its own fetch tasks; only a cancellation of this task is ours to pass on.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise

    async def collect(
        self, request_ids: set[str], timeout_s: float, per_id: int = 1
    ) -> dict[str, list[Arrival]]:
        """Arrivals per request id, until each id arrived ``per_id`` times or the timeout passed."""
        found: dict[str, list[Arrival]] = {}
        deadline = time.monotonic() + timeout_s

        def complete() -> bool:
            return all(len(found.get(r, ())) >= per_id for r in request_ids)

        while time.monotonic() < deadline and not complete():
            for rid, items in (await self.poll(0.2)).items():
                found.setdefault(rid, []).extend(items)
        return found

    async def poll(self, timeout_s: float) -> dict[str, list[Arrival]]:
        """Whatever arrives within ``timeout_s``, by request id (header, else the key)."""
        found: dict[str, list[Arrival]] = {}
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        for records in batches.values():
            for r in records:
                raw = header_value(r.headers or [], REQUEST_ID) or r.key or b""
                rid = raw.decode("utf-8", "replace")
                found.setdefault(rid, []).append(
                    Arrival(
                        rid,
                        r.topic,
                        r.partition,
                        r.offset,
                        r.key,
                        r.value,
                        list(r.headers or []),
                        r.timestamp,
                    )
                )
        return found
