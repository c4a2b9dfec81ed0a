"""The server vector store: PostgreSQL with pgvector (``PODIUM_VECTOR_URL=postgresql://...``).

psycopg 3 (async) with the ``pgvector`` adapter, through a small connection pool
(``psycopg_pool``: a few connections opened at start, re-used by every call and closed at stop).

Layout
    ``podium_index_versions``  one row per version: name, provider, model, dimensions, state,
                               created_ms, revision.
    ``chunks_<name>``          one table per version (quoted: names hold hyphens): the chunk's
                               fields, the version's ``model`` and ``dimensions`` on each row and
                               ``embedding vector(<dimensions>)``, so PostgreSQL itself refuses a
                               vector of another length. Btree indexes on ``document_id`` and
                               ``tenant``; an HNSW index (``vector_cosine_ops``) from
                               :data:`INDEX_MIN_ROWS` rows on (exact search below).

Writes
    :meth:`PgVectorStore.replace_document` is one transaction: upsert the new chunks
    (``INSERT ... ON CONFLICT (id) DO UPDATE``), delete that document's other ids, bump the
    version's revision. Readers see the document before or after, never between.

Filters are query parameters (``%s``), never text pasted into SQL; table names are quoted
identifiers (:class:`psycopg.sql.Identifier`) made from a version name that is a checked slug.

The HNSW index of pgvector 0.6 filters *after* the graph search: a narrow filter (a small
tenant) can return fewer than ``k`` hits when the planner picks the index. ``hnsw.ef_search`` is
raised to :data:`EF_SEARCH` on every connection to widen the candidate list; pgvector 0.8's
iterative scans are the complete answer once the server has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import psycopg_pool
from pgvector import Vector
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg.rows import dict_row

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

__all__ = ["EF_SEARCH", "INDEX_MIN_ROWS", "PgVectorStore", "redacted"]

EF_SEARCH = 100
# An exact scan costs about 1.1 ms per 1,000 rows of 256 dimensions here (28 ms at 25,000), and
# HNSW answers in 2 ms; building it over 25,000 rows takes 15 s, while inserting those rows one
# by one into an index that exists takes 125 s (about 200 rows/s). So: exact up to 10,000 rows
# (11 ms), and the index is built once, when a write leaves the table at that size.
INDEX_MIN_ROWS = 10_000
_BUILD_MEMORY = "256MB"
_VERSIONS = sql.Identifier("podium_index_versions")
_COLUMNS = sql.SQL(", ").join(sql.Identifier(name) for name in TEXT_FIELDS)
_VERSION_FIELDS = "name, provider, model, dimensions, state, created_ms"
# Two processes starting at once must not both create the extension and the versions table.
_SCHEMA_LOCK = 0x706F6469756D  # "podium"


def redacted(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages: a URL may hold one)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    """The one place psycopg's errors become podium's: a server that is down or a connection
    that broke may answer when tried again; SQL or data the server refused (a text holding a NUL
    byte, say) will be refused again. Vector lengths are checked before anything is sent, so a
    wrong dimension is a :class:`DimensionMismatch` raised here, not a server error."""
    try:
        yield
    except VectorStoreError:
        raise
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout, psycopg.errors.SerializationFailure) as exc:
        raise StoreUnavailable(f"PostgreSQL: {action}: {exc}") from exc
    except psycopg.Error as exc:
        raise VectorStoreError(f"PostgreSQL: {action}: {exc}") from exc


def _chunks_table(version: str) -> sql.Identifier:
    return sql.Identifier(f"chunks_{version}")


def _index_name(version: str, kind: str) -> sql.Identifier:
    # Within PostgreSQL's 63 characters: a version name is at most 56 (store.version_name).
    return sql.Identifier(f"c_{version}_{kind}")


class PgVectorStore:
    """:class:`agents.rag.store.VectorStore` on PostgreSQL + pgvector at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        index_min_rows: int = INDEX_MIN_ROWS,
        min_size: int = 1,
        max_size: int = 4,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._url = url
        self._index_min_rows = index_min_rows
        self._indexed: set[str] = set()
        self._index_lock = asyncio.Lock()
        self._connect_timeout_s = connect_timeout_s
        self._pool_sizes = (min_size, max_size)
        self._pool: psycopg_pool.AsyncConnectionPool | None = None
        self._dimensions: dict[str, int] = {}
        self._models: dict[str, str] = {}

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        where = redacted(self._url)
        try:
            # The extension must exist before a connection can register the vector type.
            async with (
                await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout_s))
                ) as conn,
                conn.transaction(),
            ):
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                await conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, provider text NOT NULL, "
                        "model text NOT NULL, dimensions integer NOT NULL CHECK (dimensions > 0), "
                        "state text NOT NULL CHECK (state IN ('building', 'active', 'retired')), "
                        "created_ms bigint NOT NULL, revision bigint NOT NULL DEFAULT 0)"
                    ).format(_VERSIONS)
                )
            # A pool cannot be opened twice: each start makes its own, each stop closes it.
            self._pool = psycopg_pool.AsyncConnectionPool(
                self._url,
                min_size=self._pool_sizes[0],
                max_size=self._pool_sizes[1],
                open=False,
                timeout=self._connect_timeout_s,
                kwargs={"autocommit": True, "connect_timeout": max(1, round(self._connect_timeout_s))},
                configure=self._configure,
                name="podium-vectors",
            )
            await self._pool.open(wait=True, timeout=self._connect_timeout_s)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            await self.stop()
            raise StoreUnavailable(f"PostgreSQL at {where} cannot be reached: {exc}") from exc
        except psycopg.Error as exc:
            await self.stop()
            raise VectorStoreError(
                f"PostgreSQL at {where}: preparing the vector tables failed: {exc}"
            ) from exc

    async def stop(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def __aenter__(self) -> PgVectorStore:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @staticmethod
    async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
        await register_vector_async(conn)
        await conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(EF_SEARCH)))

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            raise VectorStoreError("the PostgreSQL store is not started (call start() first)")
        with _translated("connect"):
            async with self._pool.connection() as conn:
                yield conn

    # -- versions ---------------------------------------------------------------------------

    async def ensure_version(self, version: IndexVersion) -> IndexVersion:
        table, dims = _chunks_table(version.name), sql.Literal(version.dimensions)
        async with self._connection() as conn:
            with _translated(f"create index version {version.name}"):
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    await conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {} (id text PRIMARY KEY, document_id text NOT NULL, "
                            "text text NOT NULL, title text NOT NULL, url text NOT NULL, "
                            "source text NOT NULL, tenant text NOT NULL, language text NOT NULL, "
                            "content_hash text NOT NULL, "
                            "model text NOT NULL, dimensions integer NOT NULL, embedding vector({}) NOT NULL)"
                        ).format(table, dims)
                    )
                    for column, kind in (("document_id", "d"), ("tenant", "t")):
                        await conn.execute(
                            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                                _index_name(version.name, kind), table, sql.Identifier(column)
                            )
                        )
                    await conn.execute(
                        sql.SQL(
                            "INSERT INTO {} (name, provider, model, dimensions, state, created_ms) "
                            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING"
                        ).format(_VERSIONS),
                        (
                            version.name,
                            version.provider,
                            version.model,
                            version.dimensions,
                            version.state,
                            version.created_ms,
                        ),
                    )
                    cursor = await conn.execute(
                        sql.SQL(f"SELECT {_VERSION_FIELDS} FROM {{}} WHERE name = %s").format(_VERSIONS),
                        (version.name,),
                    )
                    row = await cursor.fetchone()
        assert row is not None  # inserted or already there, in this transaction
        return _version_of(row)

    async def versions(self) -> list[IndexVersion]:
        async with self._connection() as conn:
            with _translated("read index versions"):
                cursor = await conn.execute(
                    sql.SQL(f"SELECT {_VERSION_FIELDS} FROM {{}} ORDER BY created_ms, name").format(_VERSIONS)
                )
                return [_version_of(row) for row in await cursor.fetchall()]

    async def active(self) -> IndexVersion | None:
        async with self._connection() as conn:
            with _translated("read the active index version"):
                cursor = await conn.execute(
                    sql.SQL(
                        f"SELECT {_VERSION_FIELDS} FROM {{}} WHERE state = %s "
                        "ORDER BY created_ms DESC LIMIT 1"
                    ).format(_VERSIONS),
                    (ACTIVE,),
                )
                row = await cursor.fetchone()
        return None if row is None else _version_of(row)

    async def activate(self, name: str) -> None:
        async with self._connection() as conn:
            with _translated(f"activate {name}"):
                async with conn.transaction():
                    cursor = await conn.execute(
                        sql.SQL("SELECT name FROM {} WHERE name = %s FOR UPDATE").format(_VERSIONS), (name,)
                    )
                    if await cursor.fetchone() is None:
                        raise UnknownIndexVersion(f"no index version {name!r}")
                    await conn.execute(
                        sql.SQL("UPDATE {} SET state = %s WHERE state = %s AND name <> %s").format(_VERSIONS),
                        (RETIRED, ACTIVE, name),
                    )
                    await conn.execute(
                        sql.SQL("UPDATE {} SET state = %s WHERE name = %s").format(_VERSIONS), (ACTIVE, name)
                    )

    async def revision(self, version: str) -> int:
        async with self._connection() as conn:
            with _translated(f"read the revision of {version}"):
                cursor = await conn.execute(
                    sql.SQL("SELECT revision FROM {} WHERE name = %s").format(_VERSIONS), (version,)
                )
                row = await cursor.fetchone()
        if row is None:
            raise UnknownIndexVersion(f"no index version {version!r}")
        return int(row[0])

    # -- chunks -----------------------------------------------------------------------------

    async def replace_document(self, version: str, document_id: str, chunks: Sequence[Chunk]) -> None:
        dimensions, model = await self._version_facts(version)
        rows = _rows_of(version, document_id, chunks, dimensions, model)
        table = _chunks_table(version)
        columns = sql.SQL(", ").join(
            sql.Identifier(name) for name in (*TEXT_FIELDS, "model", "dimensions", "embedding")
        )
        updates = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name))
            for name in (*TEXT_FIELDS[1:], "model", "dimensions", "embedding")
        )
        placeholders = sql.SQL(", ").join(sql.Placeholder() * (len(TEXT_FIELDS) + 3))
        async with self._connection() as conn:
            with _translated(f"replace document {document_id!r} in {version}"):
                async with conn.transaction():
                    if rows:
                        async with conn.cursor() as cursor:
                            await cursor.executemany(
                                sql.SQL(
                                    "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}"
                                ).format(table, columns, placeholders, updates),
                                rows,
                            )
                    await conn.execute(
                        sql.SQL("DELETE FROM {} WHERE document_id = %s AND NOT (id = ANY(%s))").format(table),
                        (document_id, [chunk.id for chunk in chunks]),
                    )
                    await self._bump(conn, version)
        await self._index_when_large(version)

    async def delete_document(self, version: str, document_id: str) -> None:
        await self._version_facts(version)
        async with self._connection() as conn:
            with _translated(f"delete document {document_id!r} from {version}"):
                async with conn.transaction():
                    await conn.execute(
                        sql.SQL("DELETE FROM {} WHERE document_id = %s").format(_chunks_table(version)),
                        (document_id,),
                    )
                    await self._bump(conn, version)

    async def vectors_of(self, version: str, chunk_ids: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        await self._version_facts(version)
        if not chunk_ids:
            return {}
        async with self._connection() as conn:
            with _translated(f"read vectors of {version}"):
                cursor = await conn.execute(
                    sql.SQL("SELECT id, embedding FROM {} WHERE id = ANY(%s)").format(_chunks_table(version)),
                    (list(chunk_ids),),
                )
                rows = await cursor.fetchall()
        return {chunk_id: _array_of(vector) for chunk_id, vector in rows}

    async def search(
        self, version: str, vector: npt.NDArray[np.float32], k: int, filters: Filters = NO_FILTERS
    ) -> list[Hit]:
        dimensions, _ = await self._version_facts(version)
        row = check_vector(vector, dimensions, f"search in {version}")
        if k <= 0:
            return []
        conditions: list[sql.Composable] = []
        params: list[Any] = [row]
        if filters.tenant is not None:
            conditions.append(sql.SQL("(tenant = %s OR tenant = '')"))
            params.append(filters.tenant)
        if filters.source is not None:
            conditions.append(sql.SQL("source = %s"))
            params.append(filters.source)
        if filters.language is not None:
            conditions.append(sql.SQL("language = %s"))
            params.append(filters.language)
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
        params.extend([row, k])
        query = sql.SQL(
            "SELECT {}, embedding <=> %s AS distance FROM {}{} ORDER BY embedding <=> %s LIMIT %s"
        ).format(_COLUMNS, _chunks_table(version), where)
        async with self._connection() as conn:
            with _translated(f"search {version}"):
                cursor = conn.cursor(row_factory=dict_row)
                await cursor.execute(query, params)
                found = await cursor.fetchall()
        return [
            Hit(chunk=Chunk(**{name: hit[name] for name in TEXT_FIELDS}), score=1.0 - float(hit["distance"]))
            for hit in found
        ]

    async def chunks(self, version: str) -> list[Chunk]:
        await self._version_facts(version)
        async with self._connection() as conn:
            with _translated(f"read chunks of {version}"):
                cursor = conn.cursor(row_factory=dict_row)
                await cursor.execute(
                    sql.SQL("SELECT {} FROM {} ORDER BY id").format(_COLUMNS, _chunks_table(version))
                )
                return [Chunk(**row) for row in await cursor.fetchall()]

    async def count(self, version: str) -> int:
        await self._version_facts(version)
        async with self._connection() as conn:
            with _translated(f"count {version}"):
                cursor = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_chunks_table(version)))
                row = await cursor.fetchone()
        return 0 if row is None else int(row[0])

    # -- inside -----------------------------------------------------------------------------

    async def build_index(self, version: str) -> None:
        """Build the HNSW index now (writes build it themselves at ``index_min_rows``). A bulk
        load is faster loading first and indexing after: every row written while the index
        exists is inserted into its graph."""
        await self._version_facts(version)
        async with self._connection() as conn:
            with _translated(f"build the HNSW index of {version}"):
                async with conn.transaction():
                    # One build at a time per version, across processes too: two concurrent
                    # CREATE INDEX IF NOT EXISTS race on the catalog and the loser fails; after
                    # the lock the second finds the index made and does nothing.
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"podium-hnsw-{version}",)
                    )
                    # The graph is built in memory when it fits (else on disk, far slower):
                    # 50,000 rows of 256 dimensions took 101 s with the default 64MB, 41 s here.
                    await conn.execute(
                        sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(_BUILD_MEMORY))
                    )
                    await conn.execute(
                        sql.SQL(
                            "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops)"
                        ).format(_index_name(version, "h"), _chunks_table(version))
                    )
        self._indexed.add(version)

    async def index_type(self, version: str) -> str | None:
        """``hnsw`` once the version's approximate index is built, None while search is exact."""
        await self._version_facts(version)
        async with self._connection() as conn:
            with _translated(f"list the indices of {version}"):
                cursor = await conn.execute(
                    "SELECT 1 FROM pg_indexes WHERE indexname = %s", (f"c_{version}_h",)
                )
                return "hnsw" if await cursor.fetchone() is not None else None

    async def _index_when_large(self, version: str) -> None:
        if version in self._indexed:
            return
        async with self._index_lock:  # the writes in flight do not each start a build
            if version in self._indexed:
                return
            if await self.index_type(version) is not None:
                self._indexed.add(version)
            elif await self.count(version) >= self._index_min_rows:
                await self.build_index(version)

    async def _version_facts(self, version: str) -> tuple[int, str]:
        if version not in self._dimensions:
            async with self._connection() as conn:
                with _translated(f"read index version {version}"):
                    cursor = await conn.execute(
                        sql.SQL("SELECT dimensions, model FROM {} WHERE name = %s").format(_VERSIONS),
                        (version,),
                    )
                    row = await cursor.fetchone()
            if row is None:
                raise UnknownIndexVersion(f"no index version {version!r} (ensure_version creates one)")
            self._dimensions[version], self._models[version] = int(row[0]), str(row[1])
        return self._dimensions[version], self._models[version]

    @staticmethod
    async def _bump(conn: psycopg.AsyncConnection[Any], version: str) -> None:
        await conn.execute(
            sql.SQL("UPDATE {} SET revision = revision + 1 WHERE name = %s").format(_VERSIONS), (version,)
        )


def _rows_of(
    version: str, document_id: str, chunks: Sequence[Chunk], dimensions: int, model: str
) -> list[tuple[Any, ...]]:
    vectors = checked_vectors(version, document_id, chunks, dimensions)
    rows = [
        (*(getattr(chunk, name) for name in TEXT_FIELDS), model, dimensions, vector)
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]
    return rows


def _array_of(vector: Vector | npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    if isinstance(vector, Vector):
        return np.asarray(vector.to_numpy(), dtype=np.float32)
    return np.asarray(vector, dtype=np.float32)


def _version_of(row: Sequence[Any]) -> IndexVersion:
    name, provider, model, dimensions, state, created_ms = row
    return IndexVersion(
        name=name,
        provider=provider,
        model=model,
        dimensions=int(dimensions),
        state=state,
        created_ms=int(created_ms),
    )
