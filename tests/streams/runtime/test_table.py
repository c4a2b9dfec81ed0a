"""A Table on a compacted topic, on the real local broker: read-your-writes with
``get(fresh=True)``, the ``version_of`` guard against rows read back late, and a new process
finding what an earlier one wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from streams.contracts.catalog import Catalog
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.runtime.stage import Record, StageEnv
from streams.runtime.table import Table
from streams.telemetry.otel import Telemetry

NOTE = "podium.demo.Note"

ROWS = """
topics:
  {p}.rows: {value: podium.demo.Note, partitions: 2, cleanup: compact}
"""


def row(key: str, priority: int, text: str = "") -> Record:
    return {"request_id": key, "text": text or f"{key} v{priority}", "hops": [], "priority": priority}


def table_of(prefix: str, versioned: bool = True) -> Table:
    return Table(
        f"{prefix}.rows",
        key_of=lambda r: str(r["request_id"]),
        version_of=(lambda r: r["priority"]) if versioned else None,
    )


class Rows:
    """Writes rows (and tombstones) to the table's topic as another process would."""

    def __init__(self, publisher: Publisher, prefix: str, codec: SingleObjectCodec) -> None:
        self._publisher, self._topic, self._codec = publisher, f"{prefix}.rows", codec

    async def write(self, value: Record) -> None:
        key = str(value["request_id"]).encode()
        await self._publisher.send_raw(self._topic, key, self._codec.encode(NOTE, value), [])

    async def delete(self, key: str) -> None:
        await self._publisher.send_raw(self._topic, key.encode(), None, [])


@pytest.fixture
async def env(cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore) -> StageEnv:  # type: ignore[no-untyped-def]
    catalog: Catalog = await make_topics(ROWS, unique)
    return StageEnv(cluster, catalog, SingleObjectCodec(schema_store), Telemetry.configure("none"))


@pytest.fixture
async def rows(env: StageEnv, unique: str) -> AsyncIterator[Rows]:
    async with Publisher(cluster=env.cluster, catalog=env.catalog, codec=env.codec) as publisher:
        assert isinstance(env.codec, SingleObjectCodec)
        yield Rows(publisher, unique, env.codec)


async def opened(table: Table, env: StageEnv) -> Table:
    await table.open(env)
    return table


async def test_get_fresh_reads_every_row_written_before_the_call(
    env: StageEnv, rows: Rows, unique: str
) -> None:
    table = await opened(table_of(unique), env)
    try:
        assert len(table) == 0 and await table.get("a", fresh=True) is None
        await rows.write(row("a", 1))
        await rows.write(row("b", 1))
        assert await table.get("a", fresh=True) == row("a", 1)
        assert table.get_now("b") == row("b", 1)  # the same sync read both partitions
        await rows.delete("a")
        assert await table.get("a", fresh=True) is None
        assert sorted(r["request_id"] for r in table.rows()) == ["b"]
    finally:
        await table.close()


async def test_an_older_row_read_back_after_a_newer_put_does_not_replace_it(
    env: StageEnv, rows: Rows, unique: str
) -> None:
    guarded = await opened(table_of(unique), env)
    unguarded = await opened(table_of(unique, versioned=False), env)
    try:
        for table in (guarded, unguarded):
            table.put(row("a", 2))  # this process's newer write, on its way
        await rows.write(row("a", 1))  # an older one the followers read back after it
        assert await guarded.get("a", fresh=True) == row("a", 2)
        assert await unguarded.get("a", fresh=True) == row("a", 1)  # what version_of prevents
        await rows.write(row("a", 3))
        assert await guarded.get("a", fresh=True) == row("a", 3)
    finally:
        await guarded.close()
        await unguarded.close()


async def test_a_table_opened_again_reads_back_what_was_written(
    env: StageEnv, rows: Rows, unique: str
) -> None:
    first = await opened(table_of(unique), env)
    try:
        for value in (row("a", 2), row("a", 1), row("b", 1), row("c", 1)):
            await rows.write(value)
        await rows.delete("c")
        await first.sync()
        seen: dict[str, Any] = {r["request_id"]: r for r in first.rows()}
    finally:
        await first.close()
    again = await opened(table_of(unique), env)  # as a new process, after a restart
    try:
        assert {r["request_id"]: r for r in again.rows()} == seen == {"a": row("a", 2), "b": row("b", 1)}
        assert len(again) == 2
    finally:
        await again.close()
