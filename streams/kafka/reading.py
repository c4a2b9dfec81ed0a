"""Read a bounded (or followed) range of a topic across all its partitions.

Used by ``podium tail``, ``replay`` and ``dlq``. A range is fixed when reading starts: the end
is each partition's end offset at that moment (or a ``--to`` position), so a replay of a busy
topic terminates. Selecting by request id or trace id reads the headers only.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaError

from streams.contracts.headers import REQUEST_ID, header_value, now_ms, parse_headers
from streams.errors import BrokerError, ConfigError
from streams.kafka.connection import Cluster

__all__ = ["Position", "Selection", "TopicReader", "parse_position", "partitions_of"]

_RELATIVE = re.compile(r"^(?P<n>\d+)(?P<unit>s|m|h|d)$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True)
class Position:
    """An offset (applied to every partition) or a point in time (epoch ms)."""

    offset: int | None = None
    timestamp_ms: int | None = None


def parse_position(text: str, at_ms: int | None = None) -> Position:
    """``1200`` (offset), ``15m``/``2h``/``1d`` (that long ago) or an ISO 8601 time.

    A number of 13 digits or more is a time in epoch milliseconds (no partition reaches 10**12
    records), so ``--since "$(date +%s%3N)"`` does what it says.
    """
    text = text.strip()
    if text.isdigit():
        number = int(text)
        return Position(timestamp_ms=number) if number >= 10**12 else Position(offset=number)
    if match := _RELATIVE.match(text):
        return Position(timestamp_ms=(at_ms or now_ms()) - int(match["n"]) * _UNIT_MS[match["unit"]])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"'{text}' is not a position: use an offset (1200), an age (15m, 2h, 1d) "
            "or an ISO time (2026-11-25T17:00:00Z)"
        ) from None
    return Position(timestamp_ms=int(moment.timestamp() * 1000))


@dataclass(frozen=True)
class Selection:
    topic: str
    start: Position | None = None  # None: the beginning
    end: Position | None = None  # None: the end when reading starts (exclusive)
    request_id: str | None = None
    trace_id: str | None = None

    def matches(self, record: ConsumerRecord[bytes, bytes]) -> bool:
        headers = record.headers or []
        if self.request_id is not None:
            raw = header_value(headers, REQUEST_ID) or record.key or b""
            if raw.decode("utf-8", "replace") != self.request_id:
                return False
        return self.trace_id is None or parse_headers(headers).trace_id == self.trace_id


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """A topic's partitions, asking the cluster when this consumer has not seen the topic yet."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        # aiokafka has no public call to refresh metadata for a topic not yet assigned
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise ConfigError(f"topic {topic} does not exist on the cluster (run `podium topics apply`)")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


class TopicReader:
    def __init__(self, cluster: Cluster) -> None:
        self._consumer = cluster.consumer(
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        self._cluster = cluster
        self.total = 0  # records in the range (before filters), known after plan()

    async def __aenter__(self) -> TopicReader:
        try:
            await self._consumer.start()
        except KafkaError as exc:
            await self._consumer.stop()
            raise BrokerError(f"cannot reach Kafka at {self._cluster}: {exc}") from exc
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def lag(self, group: str, topic: str) -> int:
        """Records of ``topic`` the consumer group has not committed: all of them when it never
        committed there (a group that has not started yet has the whole topic ahead of it)."""
        tps = await partitions_of(self._consumer, topic)
        ends = await self._consumer.end_offsets(tps)
        beginnings = await self._consumer.beginning_offsets(tps)
        committed = await self._committed(group, tps)
        behind = 0
        for tp in tps:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else beginnings[tp]
            behind += max(0, ends[tp] - max(position, beginnings[tp]))
        return behind

    async def _committed(self, group: str, tps: list[TopicPartition]) -> dict[TopicPartition, Any]:
        admin = self._cluster.admin()
        try:
            await admin.start()
            # A cluster's first group question makes it create its offsets topic: the
            # coordinator is "not available" for a moment, not missing.
            for _ in range(20):
                try:
                    return dict(await admin.list_consumer_group_offsets(group, partitions=tps))
                except GroupCoordinatorNotAvailableError:
                    await asyncio.sleep(0.5)
            return dict(await admin.list_consumer_group_offsets(group, partitions=tps))
        except KafkaError as exc:
            raise BrokerError(f"cannot read group {group}'s offsets at {self._cluster}: {exc}") from exc
        finally:
            await admin.close()

    async def _resolve(
        self, tps: list[TopicPartition], position: Position | None, default: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        if position is None:
            return dict(default)
        if position.offset is not None:
            return {tp: position.offset for tp in tps}
        found = await self._consumer.offsets_for_times({tp: position.timestamp_ms for tp in tps})
        ends = await self._consumer.end_offsets(tps)
        return {tp: (found[tp].offset if found.get(tp) else ends[tp]) for tp in tps}

    async def plan(
        self, selection: Selection, resume: dict[int, int] | None = None
    ) -> dict[TopicPartition, tuple[int, int]]:
        tps = await partitions_of(self._consumer, selection.topic)
        beginnings = await self._consumer.beginning_offsets(tps)
        ends = await self._consumer.end_offsets(tps)
        starts = await self._resolve(tps, selection.start, beginnings)
        stops = await self._resolve(tps, selection.end, ends)
        ranges = {}
        for tp in tps:
            start = max(starts[tp], beginnings[tp], (resume or {}).get(tp.partition, 0))
            ranges[tp] = (start, min(stops[tp], ends[tp]))
        self.total = sum(max(0, stop - start) for start, stop in ranges.values())
        return ranges

    async def read(
        self, ranges: dict[TopicPartition, tuple[int, int]]
    ) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
        """Every record in the ranges, in offset order per partition."""
        pending = {tp: r for tp, r in ranges.items() if r[0] < r[1]}
        if not pending:
            return
        self._consumer.assign(list(pending))
        for tp, (start, _) in pending.items():
            self._consumer.seek(tp, start)
        while pending:
            batches = await self._consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                stop = pending.get(tp, (0, 0))[1]
                for record in records:
                    if record.offset >= stop:
                        break
                    yield record
                reached = bool(records) and records[-1].offset >= stop - 1
                if tp in pending and (reached or await self._consumer.position(tp) >= stop):
                    del pending[tp]
                    self._consumer.pause(tp)

    async def follow(self, topic: str, from_beginning: bool) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
        """New records as they arrive (from the beginning if asked), until cancelled."""
        ranges = await self.plan(Selection(topic))
        tps = list(ranges)
        self._consumer.assign(tps)
        for tp, (start, end) in ranges.items():
            self._consumer.seek(tp, start if from_beginning else end)
        while True:
            for records in (await self._consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    yield record
