"""One suite, both backends (LanceDB in a directory, PostgreSQL + pgvector on a real server):
the same calls, the same assertions."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from agents.rag import (
    Chunk,
    DimensionMismatch,
    Filters,
    IndexVersion,
    StoreUnavailable,
    UnknownIndexVersion,
    VectorStore,
    VectorStoreError,
    open_store,
    version_name,
)
from agents.rag.lance import LanceStore
from agents.rag.pgvector import PgVectorStore
from streams.errors import is_retryable

DIMS = 8
HOSTILE = [
    "x' OR '1'='1",
    "' OR 1=1 --",
    "acme'; DROP TABLE index_versions; --",
    "%s",
    "a\\'b",
    '"; --',
    "ü'",
]


def version(model: str = "test-model", state: str = "building", created_ms: int = 1) -> IndexVersion:
    return IndexVersion(
        name=version_name(model, DIMS),
        provider="local",
        model=model,
        dimensions=DIMS,
        state=state,
        created_ms=created_ms,
    )


def unit(*values: float) -> npt.NDArray[np.float32]:
    row = np.zeros(DIMS, dtype=np.float32)
    row[: len(values)] = values
    return row / np.linalg.norm(row)


def chunk(chunk_id: str, document_id: str, vector: npt.NDArray[np.float32], **fields: str) -> Chunk:
    return Chunk(
        id=chunk_id,
        document_id=document_id,
        text=fields.pop("text", f"text of {chunk_id}"),
        title=fields.pop("title", f"Title of {document_id}"),
        url=fields.pop("url", f"https://docs.example/{document_id}"),
        source=fields.pop("source", "docs"),
        vector=vector,
        **fields,
    )


async def ids_of(store: VectorStore, name: str) -> set[str]:
    return {c.id for c in await store.chunks(name)}


async def test_replace_upserts_and_drops_the_old_ids(store: VectorStore) -> None:
    name = (await store.ensure_version(version())).name
    await store.replace_document(name, "d1", [chunk(f"d1#{i}", "d1", unit(1, i)) for i in range(3)])
    await store.replace_document(
        name, "d2", [chunk("d2#0", "d2", unit(0, 1)), chunk("d2#1", "d2", unit(0, 0, 1))]
    )
    assert await store.count(name) == 5
    # d1 shrinks and changes: d1#1 keeps its id with a new text, d1#0 and d1#2 go, d1#9 is new.
    await store.replace_document(
        name, "d1", [chunk("d1#1", "d1", unit(1, 1), text="new"), chunk("d1#9", "d1", unit(1))]
    )
    assert await ids_of(store, name) == {"d1#1", "d1#9", "d2#0", "d2#1"}
    texts = {c.id: c.text for c in await store.chunks(name)}
    assert texts["d1#1"] == "new"
    # The same replace again changes nothing.
    await store.replace_document(
        name, "d1", [chunk("d1#1", "d1", unit(1, 1), text="new"), chunk("d1#9", "d1", unit(1))]
    )
    assert await store.count(name) == 4
    await store.delete_document(name, "d2")
    assert await ids_of(store, name) == {"d1#1", "d1#9"}
    # No chunks is a delete; deleting what is not there is no error.
    await store.replace_document(name, "d1", [])
    await store.delete_document(name, "never-indexed")
    assert await store.count(name) == 0


async def test_chunks_come_back_whole_without_vectors(store: VectorStore) -> None:
    name = (await store.ensure_version(version())).name
    original = Chunk(
        id="faq/refunds#0",
        document_id="faq/refunds",
        text="Rückerstattung: «within 30 days» — 払い戻し",
        title="Refunds > Timing",
        url="https://docs.example/faq/refunds#timing",
        source="faq",
        tenant="acme",
        language="de",
        content_hash="ab" * 32,
        vector=unit(1, 2, 3),
    )
    await store.replace_document(name, original.document_id, [original])
    (back,) = await store.chunks(name)
    assert back == Chunk(**{**original.__dict__, "vector": None})


async def test_search_is_nearest_first_with_a_cosine_score(store: VectorStore) -> None:
    name = (await store.ensure_version(version())).name
    query = unit(1)
    angles = {"near": 0.1, "mid": 0.6, "far": 1.2, "opposite": 3.0}
    await store.replace_document(
        name, "d", [chunk(key, "d", unit(np.cos(a), np.sin(a))) for key, a in angles.items()]
    )
    hits = await store.search(name, query, k=3)
    assert [h.chunk.id for h in hits] == ["near", "mid", "far"]
    assert [round(h.score, 4) for h in hits] == [round(float(np.cos(angles[h.chunk.id])), 4) for h in hits]
    assert all(h.chunk.vector is None for h in hits)
    assert [h.chunk.id for h in await store.search(name, query, k=10)][-1] == "opposite"
    assert await store.search(name, query, k=0) == []


async def test_filters_tenant_with_shared_source_and_language(store: VectorStore) -> None:
    name = (await store.ensure_version(version())).name
    rows = [
        chunk("shared", "d1", unit(1, 0.1)),
        chunk("acme", "d2", unit(1, 0.2), tenant="acme"),
        chunk("globex", "d3", unit(1, 0.3), tenant="globex"),
        chunk("acme-faq-fr", "d4", unit(1, 0.4), tenant="acme", source="faq", language="fr"),
    ]
    for row in rows:
        await store.replace_document(name, row.document_id, [row])
    query = unit(1)

    async def found(filters: Filters) -> list[str]:
        return [h.chunk.id for h in await store.search(name, query, k=10, filters=filters)]

    assert await found(Filters()) == ["shared", "acme", "globex", "acme-faq-fr"]
    assert await found(Filters(tenant="acme")) == ["shared", "acme", "acme-faq-fr"]
    assert await found(Filters(tenant="")) == ["shared"]
    assert await found(Filters(tenant="initech")) == ["shared"]
    assert await found(Filters(source="faq")) == ["acme-faq-fr"]
    assert await found(Filters(language="en")) == ["shared", "acme", "globex"]
    assert await found(Filters(tenant="globex", source="docs", language="en")) == ["shared", "globex"]
    assert await found(Filters(tenant="globex", source="faq")) == []


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_a_hostile_filter_value_is_a_value_not_sql(store: VectorStore, hostile: str) -> None:
    name = (await store.ensure_version(version())).name
    await store.replace_document(name, "d1", [chunk("shared", "d1", unit(1))])
    await store.replace_document(name, "d2", [chunk("acme", "d2", unit(1, 1), tenant="acme")])
    await store.replace_document(name, "d3", [chunk("odd", "d3", unit(1, 2), tenant=hostile, source=hostile)])
    query = unit(1)
    # The filter does not widen: only the shared chunk and the one whose tenant IS that string.
    hits = await store.search(name, query, k=10, filters=Filters(tenant=hostile))
    assert [h.chunk.id for h in hits] == ["shared", "odd"]
    assert [h.chunk.id for h in await store.search(name, query, k=10, filters=Filters(source=hostile))] == [
        "odd"
    ]
    assert await store.search(name, query, k=10, filters=Filters(language=hostile)) == []
    # Hostile ids and document ids are values too; nothing was dropped on the way.
    await store.delete_document(name, hostile)
    assert await store.vectors_of(name, [hostile]) == {}
    assert await store.count(name) == 3
    assert [v.name for v in await store.versions()] == [name]


async def test_versions_the_existing_row_wins_and_activate_retires_the_old(store: VectorStore) -> None:
    assert await store.versions() == []
    assert await store.active() is None
    first = await store.ensure_version(version("model-a", created_ms=10))
    again = await store.ensure_version(
        IndexVersion(
            name=first.name, provider="other", model="model-a", dimensions=DIMS, state="active", created_ms=99
        )
    )
    assert again == first
    second = await store.ensure_version(version("model-b", created_ms=20))
    assert [v.name for v in await store.versions()] == ["model-a-8", "model-b-8"]
    await store.activate(first.name)
    assert await store.active() == IndexVersion(**{**first.__dict__, "state": "active"})
    await store.activate(second.name)
    states = {v.name: v.state for v in await store.versions()}
    assert states == {"model-a-8": "retired", "model-b-8": "active"}
    await store.activate(second.name)  # already active: nothing changes
    assert (await store.active()) is not None and (await store.active()).name == second.name  # type: ignore[union-attr]
    with pytest.raises(UnknownIndexVersion):
        await store.activate("no-such-version-8")
    # Each version has its own table: chunks of one are not in the other.
    await store.replace_document(first.name, "d", [chunk("a", "d", unit(1))])
    assert await store.count(first.name) == 1 and await store.count(second.name) == 0


async def test_vectors_of_returns_what_was_stored(store: VectorStore) -> None:
    name = (await store.ensure_version(version())).name
    rng = np.random.default_rng(3)
    vectors = {
        f"c{i}": (v / np.linalg.norm(v)).astype(np.float32)
        for i, v in enumerate(rng.standard_normal((5, DIMS)))
    }
    await store.replace_document(name, "d", [chunk(cid, "d", v) for cid, v in vectors.items()])
    got = await store.vectors_of(name, ["c1", "c3", "missing"])
    assert sorted(got) == ["c1", "c3"]
    for cid, v in got.items():
        assert v.dtype == np.float32 and v.shape == (DIMS,)
        np.testing.assert_array_equal(v, vectors[cid])
    assert await store.vectors_of(name, []) == {}


async def test_the_revision_changes_on_every_write(store: VectorStore) -> None:
    name = (await store.ensure_version(version())).name
    seen = [await store.revision(name)]
    await store.replace_document(name, "d", [chunk("a", "d", unit(1))])
    seen.append(await store.revision(name))
    await store.replace_document(name, "d", [chunk("b", "d", unit(1))])
    seen.append(await store.revision(name))
    await store.delete_document(name, "d")
    seen.append(await store.revision(name))
    assert len(set(seen)) == 4 and seen == sorted(seen)
    await store.search(name, unit(1), k=3)
    await store.chunks(name)
    assert await store.revision(name) == seen[-1]  # reads do not count


async def test_documents_written_at_once_are_all_there(store: VectorStore) -> None:
    # The index stage writes the documents in flight concurrently (one at a time per key only).
    name = (await store.ensure_version(version())).name
    before = await store.revision(name)
    await asyncio.gather(
        *(
            store.replace_document(
                name, f"d{i}", [chunk(f"d{i}-{j}", f"d{i}", unit(1, i, j)) for j in range(3)]
            )
            for i in range(200)
        )
    )
    assert await store.count(name) == 600
    assert await store.revision(name) == before + 200


async def test_everything_is_there_after_a_reopen(
    store: VectorStore, store_url: str | None, tmp_path: Path
) -> None:
    name = (await store.ensure_version(version())).name
    await store.activate(name)
    await store.replace_document(name, "d", [chunk("a", "d", unit(1)), chunk("b", "d", unit(0, 1))])
    revision = await store.revision(name)
    await store.stop()
    reopened = open_store(store_url, tmp_path)
    await reopened.start()
    try:
        assert (await reopened.active()) == IndexVersion(**{**version().__dict__, "state": "active"})
        assert await reopened.count(name) == 2
        assert await reopened.revision(name) == revision
        assert [h.chunk.id for h in await reopened.search(name, unit(0, 1), k=1)] == ["b"]
    finally:
        await reopened.stop()
    await store.start()  # the fixture stops it again


async def test_a_vector_of_the_wrong_dimension_is_refused(store: VectorStore) -> None:
    name = (await store.ensure_version(version())).name
    await store.replace_document(name, "d", [chunk("ok", "d", unit(1))])
    short = np.ones(DIMS - 1, dtype=np.float32)
    with pytest.raises(DimensionMismatch, match=f"{DIMS} dimensions") as refused:
        await store.replace_document(name, "d", [chunk("ok", "d", unit(1)), chunk("short", "d", short)])
    assert not is_retryable(refused.value)
    with pytest.raises(DimensionMismatch):
        await store.search(name, np.ones(DIMS + 1, dtype=np.float32), k=1)
    with pytest.raises(DimensionMismatch, match="NaN"):
        await store.replace_document(name, "d", [chunk("nan", "d", np.full(DIMS, np.nan, dtype=np.float32))])
    assert await ids_of(store, name) == {"ok"}  # the refused replace changed nothing


async def test_bad_calls_are_named(store: VectorStore) -> None:
    name = (await store.ensure_version(version())).name
    with pytest.raises(UnknownIndexVersion):
        await store.count("nothing-8")
    with pytest.raises(UnknownIndexVersion):
        await store.revision("nothing-8")
    with pytest.raises(VectorStoreError, match="belongs to document"):
        await store.replace_document(name, "d1", [chunk("x", "d2", unit(1))])
    with pytest.raises(VectorStoreError, match="no vector"):
        await store.replace_document(name, "d1", [Chunk("x", "d1", "t", "T", "u", "docs")])
    with pytest.raises(VectorStoreError, match="twice"):
        await store.replace_document(name, "d1", [chunk("x", "d1", unit(1)), chunk("x", "d1", unit(1))])


async def test_a_search_during_replaces_never_sees_the_document_empty(store: VectorStore) -> None:
    name = (await store.ensure_version(version())).name
    sets = [
        [chunk(f"a{i}", "d", unit(1, i), source="only-d") for i in range(3)],
        [chunk(f"b{i}", "d", unit(i, 1), source="only-d") for i in range(2)],
    ]
    await store.replace_document(name, "d", sets[0])
    done = asyncio.Event()

    async def replace_many() -> None:
        for i in range(12):
            await store.replace_document(name, "d", sets[i % 2])
        done.set()

    writer = asyncio.create_task(replace_many(), name="replace-many")
    seen = []
    while not done.is_set():
        hits = await store.search(name, unit(1, 1), k=10, filters=Filters(source="only-d"))
        seen.append({h.chunk.id[0] for h in hits})
    await writer
    assert seen and all(len(s) == 1 for s in seen), seen  # one whole set each time, never none or a mix


def test_version_names_are_table_safe_slugs() -> None:
    assert version_name("local-wordllama", 256) == "local-wordllama-256"
    assert version_name("Text_Embedding 3 Large", 3072) == "text-embedding-3-large-3072"
    assert version_name("text-embedding-3-large", 3072) == "text-embedding-3-large-3072"
    assert version_name("BAAI/bge-m3", 1024) == "baai-bge-m3-1024"
    assert version_name("3small", 8) == "m-3small-8"
    assert version_name("x' OR '1'='1", 8) == "x-or-1-1-8"
    long = version_name("a" * 200, 1536)
    assert len(long) <= 56 and long.endswith("-1536")
    # Two long names that differ only past the cut stay two versions.
    assert version_name("a" * 60 + "x", 1536) != version_name("a" * 60 + "y", 1536)
    with pytest.raises(VectorStoreError):
        version_name("m", 0)
    with pytest.raises(VectorStoreError, match="slug"):
        IndexVersion(name="Not A Slug", provider="p", model="m", dimensions=4, state="building", created_ms=0)
    with pytest.raises(VectorStoreError, match="state"):
        IndexVersion(name="m-4", provider="p", model="m", dimensions=4, state="live", created_ms=0)


def test_open_store_picks_the_backend_from_the_url(tmp_path: Path) -> None:
    assert isinstance(open_store(None, tmp_path), LanceStore)
    assert isinstance(open_store("postgresql://u:pw@db/x", tmp_path), PgVectorStore)
    with pytest.raises(VectorStoreError, match="unknown scheme 'mysql'") as refused:
        open_store("mysql://u:secret-pw@db/x", tmp_path)
    assert "secret-pw" not in str(refused.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_postgres_is_a_clear_retryable_error() -> None:
    url = f"postgresql://podium:hunter2-secret@127.0.0.1:{_closed_port()}/vectors"
    store = PgVectorStore(url, connect_timeout_s=1)
    with pytest.raises(StoreUnavailable, match="cannot be reached") as down:
        await store.start()
    assert is_retryable(down.value)
    assert "hunter2" not in str(down.value) and "***" in str(down.value)
    await store.stop()


@pytest.mark.parametrize("backend", ["lance", "pgvector"])
async def test_the_approximate_index_is_built_once_the_table_is_large(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store: LanceStore | PgVectorStore
    if backend == "lance":
        store = LanceStore(tmp_path / "vectors", index_min_rows=300)
    else:
        store = PgVectorStore(request.getfixturevalue("postgres_database"), index_min_rows=300)
    await store.start()
    try:
        name = (await store.ensure_version(version())).name
        rng = np.random.default_rng(5)
        rows = rng.standard_normal((400, DIMS)).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        await store.replace_document(name, "a", [chunk(f"a{i}", "a", rows[i]) for i in range(250)])
        assert await store.index_type(name) is None  # exact below the threshold
        await store.replace_document(name, "b", [chunk(f"b{i}", "b", rows[i]) for i in range(250, 400)])
        assert await store.index_type(name) is not None
        for i in (3, 260, 399):
            (best,) = await store.search(name, rows[i], k=1)
            assert best.chunk.id == (f"a{i}" if i < 250 else f"b{i}") and best.score == pytest.approx(
                1.0, abs=0.02
            )
        # As deep as the hybrid retriever asks (40 candidates): LanceDB refines k x 4 of them.
        assert len(await store.search(name, rows[7], k=40)) == 40
        await store.build_index(name)  # again: a rebuild, not an error
        assert await store.count(name) == 400
        # Reads of every chunk are not cut at a default page size.
        assert len(await store.chunks(name)) == 400
        assert len(await store.vectors_of(name, [c.id for c in await store.chunks(name)])) == 400
    finally:
        await store.stop()


def test_lance_filters_quote_their_values() -> None:
    from agents.rag.lance import filter_expression

    assert filter_expression(Filters()) is None
    where = filter_expression(Filters(tenant="x' OR '1'='1", source="docs"))
    assert where is not None
    assert where.to_sql() == "(((tenant = 'x'' OR ''1''=''1') OR (tenant = '')) AND (`source` = 'docs'))"


def test_a_url_is_shown_without_its_password() -> None:
    from agents.rag.pgvector import redacted

    assert redacted("postgresql://podium:s3cr:et@db:5432/x") == "postgresql://podium:***@db:5432/x"
    assert redacted("postgresql://podium@db/x") == "postgresql://podium@db/x"
    assert (
        redacted("postgresql://postgres:@/postgres?host=/tmp/s")
        == "postgresql://postgres:***@/postgres?host=/tmp/s"
    )


async def test_lance_compacts_its_small_files_as_writes_add_up(tmp_path: Path) -> None:
    store = LanceStore(tmp_path / "vectors")
    await store.start()
    try:
        name = (await store.ensure_version(version())).name
        for i in range(70):  # past one compaction (every 64 writes)
            await store.replace_document(name, f"d{i}", [chunk(f"d{i}#0", f"d{i}", unit(1, i / 70))])
        await store.delete_document(name, "d0")
        assert await store.count(name) == 69
        assert [h.chunk.id for h in await store.search(name, unit(1, 69 / 70), k=1)] == ["d69#0"]
        assert await store.revision(name) == 71
    finally:
        await store.stop()
