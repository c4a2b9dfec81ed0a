"""A key -> record table kept on a compacted topic: a stage's state that survives restarts.

A stage writes the table by returning ``Emit(<table topic>, value)``: the runtime's commit order
then makes the new state durable (acknowledged) before the input that caused it is committed.
Every process that opens the table reads the topic from the start, then follows it, so a worker
that takes a partition over after a crash or a rebalance finds the state its predecessor wrote.

Reads are *read-your-writes* for the caller: :meth:`Table.put` records a write the caller is
about to emit; :meth:`Table.get` first waits until the follower has read up to the topic's end
as of the call when asked to (``fresh=True``), which a handler does before it trusts a miss.
``version_of`` orders a key's rows, so the follower reading an older row back (this process's
previous write, still on its way) never replaces a newer one put since.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.contracts.codec import Codec
from streams.errors import BrokerError
from streams.kafka.reading import partitions_of
from streams.runtime.stage import Record, SharedResource, StageEnv

__all__ = ["Table"]

log = logging.getLogger("podium.table")


class Table(SharedResource):
    def __init__(
        self, topic: str, key_of: Callable[[Record], str], version_of: Callable[[Record], Any] | None = None
    ) -> None:
        super().__init__()
        self.topic = topic
        self._key_of = key_of
        self._version_of = version_of
        self._rows: dict[str, Record] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._codec: Codec | None = None
        self._schema = ""
        self._tps: list[TopicPartition] = []
        self._read_up_to: dict[TopicPartition, int] = {}
        self._progress = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None

    async def _open(self, env: StageEnv) -> None:
        self._codec = env.codec
        self._schema = env.catalog.get(self.topic).value_schema
        # A short fetch wait: a miss waits for the follower to reach the end (read-your-writes).
        self._consumer = env.cluster.consumer(enable_auto_commit=False, fetch_max_wait_ms=10)
        try:
            await self._consumer.start()
            self._tps = await partitions_of(self._consumer, self.topic)
            self._consumer.assign(self._tps)
            await self._consumer.seek_to_beginning(*self._tps)
        except KafkaError as exc:
            await self._consumer.stop()
            raise BrokerError(f"table {self.topic}: cannot read it: {exc}") from exc
        self._follower = asyncio.create_task(self._follow(), name=f"table-{self.topic}")
        try:
            await self.sync()
        except BaseException:
            await self._close()  # not counted as open: close() would not reach it
            raise
        log.info("table %s: %d rows loaded", self.topic, len(self._rows))

    async def _close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            # A failure of the follower was reported to the readers already (sync raises).
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._follower
            self._follower = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _follow(self) -> None:
        assert self._consumer is not None and self._codec is not None
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        if record.value is None:
                            self._rows.pop((record.key or b"").decode(), None)
                            continue
                        self._apply(self._codec.decode(self._schema, record.value))
                for tp in self._tps:
                    self._read_up_to[tp] = await self._consumer.position(tp)
                self._progress.set()
                self._progress = asyncio.Event()
        finally:
            self._progress.set()  # a reader waiting in sync() learns at once that it stopped

    def _apply(self, row: Record) -> None:
        key = self._key_of(row)
        held = self._rows.get(key)
        if (
            held is not None
            and self._version_of is not None
            and self._version_of(row) < self._version_of(held)
        ):
            return  # an older write read back after a newer one was put
        self._rows[key] = row

    async def sync(self, timeout_s: float = 30.0) -> None:
        """Return once everything on the topic when called has been read."""
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(self._tps)
        async with asyncio.timeout(timeout_s):
            while any(self._read_up_to.get(tp, 0) < end for tp, end in ends.items()):
                if self._follower is not None and self._follower.done():
                    raise BrokerError(
                        f"table {self.topic}: its reader stopped: {self._follower.exception()!r}"
                    )
                await self._progress.wait()

    async def get(self, key: str, fresh: bool = False) -> Record | None:
        if fresh:
            await self.sync()
        return self._rows.get(key)

    def get_now(self, key: str) -> Record | None:
        """What this process knows of ``key`` without waiting for the follower."""
        return self._rows.get(key)

    def put(self, row: Record) -> None:
        """Remember a row this process is emitting (the follower reads the same value later)."""
        self._rows[self._key_of(row)] = row

    def rows(self) -> Iterator[Record]:
        return iter(list(self._rows.values()))

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def codec(self) -> Codec:
        assert self._codec is not None, "the table is not open"
        return self._codec
