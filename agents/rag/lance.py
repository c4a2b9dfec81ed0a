"""The embedded vector store: LanceDB (async API) in a directory, ``<PODIUM_HOME>/vectors``.

Why LanceDB: measured (2026-12-01, a 2-core machine shared with other jobs, load average 5 to
7, so absolute figures are noisy; the ratios held across runs)
    Choice among embedded stores (a scratch script, random 256-dimension unit vectors, 200
    queries, filtered = a tenant predicate; wheel sizes from ``pip download``):

    ===================  ===============  ===============  =============  =================
    10,000 rows          upsert           query p50 / p99  filtered p50   disk; wheel
    ===================  ===============  ===============  =============  =================
    LanceDB, exact       79,000 rows/s    8.3 / 57 ms      9.5 ms         15 MB; 75 MB +
                                                                          pyarrow 55 MB
    qdrant-client local  253 rows/s       24 / 60 ms       278 ms         41 MB; 0.5 MB +
                                                                          grpcio
    numpy brute force    (memory only)    0.4 / 44 ms      (a mask)       none
    ===================  ===============  ===============  =============  =================

    At 100,000 rows LanceDB upserted 100,000 rows/s and searched exactly in 53 / 131 ms;
    qdrant's local mode (pure Python over SQLite, "not recommended above 20,000 points" in its
    own warning) was stopped past 25,000 points: at its rate the 100,000 take 7 minutes. numpy is the
    fastest exact search but is not a store: no persistence, no filters, no upsert.

    The store itself (``make bench-vectors``: WordLlama vectors of a synthetic corpus, written
    through replace_document in documents of 500 chunks, half the queries tenant-filtered,
    recall against numpy's exact top 10):

    ======================  ============  ==========  =========  ===========  ============
    100,000 chunks          p50 / p99     recall@10   load       index build  10,000: p50
    ======================  ============  ==========  =========  ===========  ============
    numpy exact             30 / 88 ms    1.000       -          -            0.7 - 8.5 ms
    LanceDB exact           81 / 280 ms   1.000       4,902/s    -            12 - 16 ms
    LanceDB IVF_HNSW_SQ     11 / 16 ms    1.000       -          52 s         6.3 - 11 ms
    pgvector exact          103 / 214 ms  1.000       9,258/s    -            7.6 ms
    pgvector HNSW           2.5 / 16 ms   0.959       -          44 s         2.9 - 6.4 ms
    ======================  ============  ==========  =========  ===========  ============

    (The 10,000 column spans two runs of the bench: the machine's load moved even numpy's
    exact search by ten times.)

    So LanceDB is the embedded default: it persists in a directory in an open columnar format,
    filters before the vector search, upserts and deletes in one commit (merge_insert), has an
    async API and needs no server; its cost is the wheel (130 MB with pyarrow) and a slower
    indexed search than a PostgreSQL server (which pays with a server to run).

Layout
    ``index_versions``   one row per version: name, provider, model, dimensions, state
                         (building/active/retired), created_ms, and a revision counter that
                         every write to the version's chunks bumps.
    ``chunks-<name>``    one table per version: the chunk's fields, the version's ``model`` and
                         ``dimensions`` on every row, and ``vector`` as a fixed-size list of
                         float32 (so a row of another length cannot even be stored).

Writes (the order is the contract; see :meth:`LanceStore.replace_document`)
    1. The chunk table is written in one commit: a ``merge_insert`` on ``id`` that updates the
       chunks that exist, inserts the new ones and deletes that document's rows whose id is not
       in the new set (``when_not_matched_by_source_delete``). A search running meanwhile sees
       the old chunk set or the new one, never the document empty or half replaced.
    2. The version's revision is bumped (``revision + 1`` in one update). A crash between 1 and
       2 leaves the revision behind; the index stage acknowledges its record only after both,
       so the record is replayed, step 1 finds nothing to change and step 2 runs.
    3. Past ``index_min_rows`` rows the table gets its approximate index (below).

Search
    Cosine distance; the score is ``1 - distance`` (cosine similarity, higher is better).
    Filters are built with LanceDB's typed expressions (``lancedb.expr.col`` / ``lit``), which
    quote string literals themselves: no value is ever pasted into SQL text.

The approximate index
    HNSW with 8-bit scalar quantisation (``IVF_HNSW_SQ``, one partition), cosine, built when a
    write leaves the table with :data:`INDEX_MIN_ROWS` rows or more; rows written afterwards
    are searched exactly beside it until ``optimize()`` folds them in (done once they are a
    tenth of the table). Below the threshold every search is exact: it is fast enough there
    and the index would cost more to build than it saves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import operator
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from lancedb.expr import Expr, col, lit
from lancedb.index import HnswSq

from agents.rag.store import (
    ACTIVE,
    NO_FILTERS,
    RETIRED,
    TEXT_FIELDS,
    Chunk,
    Filters,
    Hit,
    IndexVersion,
    StoreUnavailable,
    UnknownIndexVersion,
    VectorStoreError,
    check_vector,
    checked_vectors,
)

__all__ = ["INDEX_MIN_ROWS", "LanceStore", "filter_expression"]

# Exact search through the store grows with the rows (12 to 16 ms p50 at 10,000, 81 ms at
# 100,000 in bench/vector_store.py; it reads the text fields too), the index answers in 6 to 11
# ms at 10,000 and 11 ms at 100,000, and costs 7 to 13 s to build at 10,000. From 10,000 rows an
# index pays; below, exact search is fast enough and exact (the HNSW graph and its 8-bit
# quantiser also want a few thousand rows to train on).
INDEX_MIN_ROWS = 10_000
# Search breadth of the HNSW graph and the re-ranking of its candidates on the full float32
# vectors (the index holds 8-bit scalar-quantised copies): recall against speed, see the bench.
_EF = 96
_REFINE = 4
# Every write is a commit and leaves a small file (a fragment); a search reads each. Compacting
# every so many writes keeps their number small (optimize() also drops versions older than a
# week).
_COMPACT_EVERY = 64
_VERSIONS = "index_versions"
_VERSIONS_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("provider", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("dimensions", pa.int32(), nullable=False),
        pa.field("state", pa.string(), nullable=False),
        pa.field("created_ms", pa.int64(), nullable=False),
        pa.field("revision", pa.int64(), nullable=False),
    ]
)


def _chunk_schema(dimensions: int) -> pa.Schema:
    return pa.schema(
        [pa.field(name, pa.string(), nullable=False) for name in TEXT_FIELDS]
        + [
            pa.field("model", pa.string(), nullable=False),
            pa.field("dimensions", pa.int32(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimensions), nullable=False),
        ]
    )


def _table_of(version: str) -> str:
    return f"chunks-{version}"


def filter_expression(filters: Filters) -> Expr | None:
    """The ``where`` of a search: a typed expression whose literals LanceDB quotes itself, so
    ``tenant="x' OR '1'='1"`` is one (odd) tenant name and never widens the filter."""
    parts: list[Expr] = []
    if filters.tenant is not None:
        parts.append((col("tenant") == lit(filters.tenant)) | (col("tenant") == lit("")))
    if filters.source is not None:
        parts.append(col("source") == lit(filters.source))
    if filters.language is not None:
        parts.append(col("language") == lit(filters.language))
    if not parts:
        return None
    return functools.reduce(operator.and_, parts)


@contextlib.contextmanager
def _translated(directory: Path, action: str) -> Iterator[None]:
    """The one place LanceDB's errors become podium's: a file system that fails or a commit that
    lost a race may succeed when tried again; anything else (a bad schema, a bad argument) not."""
    try:
        yield
    except VectorStoreError:
        raise
    except (OSError, TimeoutError) as exc:
        raise StoreUnavailable(f"LanceDB under {directory}: {action}: {exc}") from exc
    except (RuntimeError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        message = str(exc)
        if "conflict" in message.lower() or "IO error" in message:
            raise StoreUnavailable(f"LanceDB under {directory}: {action}: {message}") from exc
        raise VectorStoreError(f"LanceDB under {directory}: {action}: {message}") from exc


class LanceStore:
    """:class:`agents.rag.store.VectorStore` on LanceDB in ``directory``.

    ``read_consistency`` is how old a view of a table may be before a read looks for another
    process's writes (0: every read checks, which costs a manifest look-up per call).
    """

    def __init__(
        self,
        directory: Path,
        *,
        index_min_rows: int = INDEX_MIN_ROWS,
        read_consistency: timedelta = timedelta(0),
    ) -> None:
        self._directory = directory
        self._index_min_rows = index_min_rows
        self._read_consistency = read_consistency
        self._db: lancedb.AsyncConnection | None = None
        self._versions_table: lancedb.AsyncTable | None = None
        self._tables: dict[str, lancedb.AsyncTable] = {}
        self._dimensions: dict[str, int] = {}
        self._models: dict[str, str] = {}
        self._writes: dict[str, int] = {}
        # Version rows are read, changed and written back whole: one writer at a time here.
        self._metadata_lock = asyncio.Lock()
        # Every chunk write is a commit to the chunk table and one to the versions table (the
        # revision): the writes of this process go one at a time. Concurrent commits conflict and
        # are retried inside Lance (150 documents replaced 16 at a time took 9.6 s, one at a time
        # 4.3 s, on the loaded 2 cores), a compaction loses to every write it meets, and after a
        # few retries LanceDB fails with "Too many concurrent writers" (25 of 1,000 documents
        # written at once by the index stage, bench/kb_ingest.py).
        self._write_lock = asyncio.Lock()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        with _translated(self._directory, "open"):
            self._directory.mkdir(parents=True, exist_ok=True)
            self._db = await lancedb.connect_async(
                str(self._directory), read_consistency_interval=self._read_consistency
            )
            self._versions_table = await self._db.create_table(
                _VERSIONS, schema=_VERSIONS_SCHEMA, exist_ok=True
            )

    async def stop(self) -> None:
        for table in self._tables.values():
            table.close()
        self._tables.clear()
        if self._versions_table is not None:
            self._versions_table.close()
            self._versions_table = None
        if self._db is not None:
            self._db.close()
            self._db = None

    async def __aenter__(self) -> LanceStore:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # -- versions ---------------------------------------------------------------------------

    async def ensure_version(self, version: IndexVersion) -> IndexVersion:
        async with self._metadata_lock:
            existing = await self._version_rows(col("name") == lit(version.name))
            if existing:
                return _version_of(existing[0])
            with _translated(self._directory, f"create index version {version.name}"):
                # The table first: a version row never names a table that is not there.
                await self._connection().create_table(
                    _table_of(version.name), schema=_chunk_schema(version.dimensions), exist_ok=True
                )
                await self._versions().add(
                    pa.Table.from_pylist([_row_of(version, 0)], schema=_VERSIONS_SCHEMA)
                )
            return version

    async def versions(self) -> list[IndexVersion]:
        rows = await self._version_rows(None)
        return sorted((_version_of(row) for row in rows), key=lambda v: (v.created_ms, v.name))

    async def active(self) -> IndexVersion | None:
        rows = await self._version_rows(col("state") == lit(ACTIVE))
        return max((_version_of(row) for row in rows), key=lambda v: v.created_ms, default=None)

    async def activate(self, name: str) -> None:
        # Under the write lock too: the rows written back carry the revision read here, and a
        # write's revision bump in between would be undone (the retrievers' refresh reads it).
        async with self._write_lock, self._metadata_lock:
            rows = await self._version_rows(None)
            if not any(row["name"] == name for row in rows):
                raise UnknownIndexVersion(
                    f"no index version {name!r} (known: {sorted(r['name'] for r in rows)})"
                )
            changed = []
            for row in rows:
                state = ACTIVE if row["name"] == name else RETIRED if row["state"] == ACTIVE else row["state"]
                if state != row["state"]:
                    changed.append({**row, "state": state})
            if not changed:
                return
            with _translated(self._directory, f"activate {name}"):
                # One commit: there is never a moment with two active versions or none.
                await (
                    self._versions()
                    .merge_insert("name")
                    .when_matched_update_all()
                    .execute(pa.Table.from_pylist(changed, schema=_VERSIONS_SCHEMA))
                )

    async def revision(self, version: str) -> int:
        rows = await self._version_rows(col("name") == lit(version), columns=["revision"])
        if not rows:
            raise UnknownIndexVersion(f"no index version {version!r}")
        return int(rows[0]["revision"])

    # -- chunks -----------------------------------------------------------------------------

    async def replace_document(self, version: str, document_id: str, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            await self.delete_document(version, document_id)
            return
        table = await self._table(version)
        data = self._arrow_of(version, document_id, chunks)
        async with self._write_lock:
            with _translated(self._directory, f"replace document {document_id!r} in {version}"):
                await (
                    table.merge_insert("id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .when_not_matched_by_source_delete(col("document_id") == lit(document_id))
                    .execute(data)
                )
            await self._written(version, table)

    async def delete_document(self, version: str, document_id: str) -> None:
        table = await self._table(version)
        async with self._write_lock:
            with _translated(self._directory, f"delete document {document_id!r} from {version}"):
                await table.delete(col("document_id") == lit(document_id))
            await self._written(version, table)

    async def vectors_of(self, version: str, chunk_ids: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        if not chunk_ids:
            return {}
        table = await self._table(version)
        with _translated(self._directory, f"read vectors of {version}"):
            result = (
                await table.query().where(col("id").isin(list(chunk_ids))).select(["id", "vector"]).to_arrow()
            )
        dimensions = self._dimensions[version]
        vectors = _matrix(result.column("vector"), dimensions)
        return {chunk_id: vectors[i].copy() for i, chunk_id in enumerate(result.column("id").to_pylist())}

    async def search(
        self, version: str, vector: npt.NDArray[np.float32], k: int, filters: Filters = NO_FILTERS
    ) -> list[Hit]:
        if k <= 0:
            return []
        table = await self._table(version)
        row = check_vector(vector, self._dimensions[version], f"search in {version}")
        query = (
            table.query()
            .nearest_to(row)
            .distance_type("cosine")
            .ef(max(_EF, k * _REFINE))  # lance wants ef >= the candidates it refines (k x refine)
            .refine_factor(_REFINE)
            .limit(k)
            .select([*TEXT_FIELDS, "_distance"])
        )
        where = filter_expression(filters)
        if where is not None:
            query = query.where(where)
        with _translated(self._directory, f"search {version}"):
            result = await query.to_arrow()
        distances = result.column("_distance").to_pylist()
        return [
            Hit(chunk=_chunk_of(row), score=1.0 - float(distance))
            for row, distance in zip(result.select(list(TEXT_FIELDS)).to_pylist(), distances, strict=True)
        ]

    async def chunks(self, version: str) -> list[Chunk]:
        table = await self._table(version)
        with _translated(self._directory, f"read chunks of {version}"):
            result = await table.query().select(list(TEXT_FIELDS)).to_arrow()
        return [_chunk_of(row) for row in result.to_pylist()]

    async def count(self, version: str) -> int:
        table = await self._table(version)
        with _translated(self._directory, f"count {version}"):
            return await table.count_rows()

    async def build_index(self, version: str) -> None:
        """Build (or rebuild) the approximate index now, whatever the table's size (writes build
        it themselves at ``index_min_rows``): for a bulk load, load first and index after."""
        table = await self._table(version)
        with _translated(self._directory, f"build the index of {version}"):
            await table.optimize()  # one file instead of a fragment per write: faster to read
            await _build_index(table)

    async def index_type(self, version: str) -> str | None:
        """The approximate index the version's search uses (``IVF_HNSW_SQ``), None while exact."""
        table = await self._table(version)
        with _translated(self._directory, f"list the indices of {version}"):
            indices = [index for index in await table.list_indices() if "vector" in index.columns]
        return indices[0].index_type if indices else None

    # -- inside -----------------------------------------------------------------------------

    def _connection(self) -> lancedb.AsyncConnection:
        if self._db is None:
            raise VectorStoreError("the LanceDB store is not started (call start() first)")
        return self._db

    def _versions(self) -> lancedb.AsyncTable:
        if self._versions_table is None:
            raise VectorStoreError("the LanceDB store is not started (call start() first)")
        return self._versions_table

    async def _version_rows(
        self, where: Expr | None, columns: list[str] | None = None
    ) -> list[dict[str, Any]]:
        query = self._versions().query()
        if where is not None:
            query = query.where(where)
        if columns is not None:
            query = query.select(columns)
        with _translated(self._directory, "read index versions"):
            rows: list[dict[str, Any]] = (await query.to_arrow()).to_pylist()
        return rows

    async def _table(self, version: str) -> lancedb.AsyncTable:
        table = self._tables.get(version)
        if table is not None:
            return table
        rows = await self._version_rows(col("name") == lit(version))
        if not rows:
            raise UnknownIndexVersion(f"no index version {version!r} (ensure_version creates one)")
        with _translated(self._directory, f"open {version}"):
            table = await self._connection().open_table(_table_of(version))
        self._dimensions[version] = int(rows[0]["dimensions"])
        self._models[version] = str(rows[0]["model"])
        self._tables[version] = table
        return table

    def _arrow_of(self, version: str, document_id: str, chunks: Sequence[Chunk]) -> pa.Table:
        dimensions, model = self._dimensions[version], self._models[version]
        rows = checked_vectors(version, document_id, chunks, dimensions)
        columns: dict[str, Any] = {name: [getattr(chunk, name) for chunk in chunks] for name in TEXT_FIELDS}
        columns["model"] = [model] * len(chunks)
        columns["dimensions"] = pa.array([dimensions] * len(chunks), pa.int32())
        flat = pa.array(np.stack(rows).ravel(), pa.float32())
        columns["vector"] = pa.FixedSizeListArray.from_arrays(flat, dimensions)
        return pa.table(columns, schema=_chunk_schema(dimensions))

    async def _written(self, version: str, table: lancedb.AsyncTable) -> None:
        with _translated(self._directory, f"bump the revision of {version}"):
            await self._versions().update(
                where=col("name") == lit(version), updates_sql={"revision": "revision + 1"}
            )
            await self._index_when_large(version, table)

    async def _index_when_large(self, version: str, table: lancedb.AsyncTable) -> None:
        self._writes[version] = writes = self._writes.get(version, 0) + 1
        indices = [index for index in await table.list_indices() if "vector" in index.columns]
        if not indices:
            if await table.count_rows() >= self._index_min_rows:
                await table.optimize()
                await _build_index(table)
            elif writes % _COMPACT_EVERY == 0:
                await table.optimize()
            return
        # New rows are searched exactly beside the index until optimize() folds them into it
        # (and compacts the small files the writes left).
        unindexed = indices[0].num_unindexed_rows or 0
        if unindexed >= max(1_000, (indices[0].num_indexed_rows or 0) // 10) or writes % _COMPACT_EVERY == 0:
            await table.optimize()


async def _build_index(table: lancedb.AsyncTable) -> None:
    await table.create_index(
        "vector", config=HnswSq(distance_type="cosine", num_partitions=1), name="vector_idx", replace=True
    )


def _matrix(column: pa.ChunkedArray, dimensions: int) -> npt.NDArray[np.float32]:
    flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(-1, dimensions)


def _chunk_of(row: dict[str, Any]) -> Chunk:
    return Chunk(**{name: row[name] for name in TEXT_FIELDS})


def _row_of(version: IndexVersion, revision: int) -> dict[str, Any]:
    return {
        "name": version.name,
        "provider": version.provider,
        "model": version.model,
        "dimensions": version.dimensions,
        "state": version.state,
        "created_ms": version.created_ms,
        "revision": revision,
    }


def _version_of(row: dict[str, Any]) -> IndexVersion:
    return IndexVersion(
        name=row["name"],
        provider=row["provider"],
        model=row["model"],
        dimensions=int(row["dimensions"]),
        state=row["state"],
        created_ms=int(row["created_ms"]),
    )
