"""The kb pipeline end to end on the real broker, into LanceDB: documents -> chunk -> embed ->
index; an updated document keeps the vectors of its unchanged chunks and loses its old chunks,
a deleted one is gone from the index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from agents.kb.config import KbConfig
from agents.kb.documents import Draft, KbPublisher, drafts_from_path, request_id_for
from agents.kb.records import INDEXED, STAGES
from agents.kb.services import KbServices
from agents.kb.stages import kb_stages
from agents.offline.embedder import WordLlamaEmbedder
from agents.rag.store import ACTIVE, open_store
from streams.contracts import dlq_topic, parse_headers
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Arrival, Follower
from streams.runtime.project import Project
from streams.runtime.stage_worker import StageWorker
from tests.agents.rag.documents import GUIDE, PAGE
from tests.streams.running import REPO, podium, running, start_group_at_end, start_worker, wait_for

PARAGRAPHS = [
    f"Paragraph {n} of the handbook explains rule {n}: " + " ".join(f"detail{n}x{i}" for i in range(30)) + "."
    for n in range(12)
]


@asynccontextmanager
async def _pipeline(project: Project, cluster: Cluster, unique: str, home: Path) -> AsyncIterator[KbServices]:
    stages = kb_stages(KbConfig(models=REPO / "models.yaml", home=home))
    for stage in stages:  # this test's documents, not the backlog other tests left on the topics
        await start_group_at_end(cluster, f"{unique}-{stage.name}", stage.consumes)
    workers = [
        StageWorker(
            s,
            cluster=cluster,
            catalog=project.catalog,
            codec=project.codec,
            group_id=f"{unique}-{s.name}",
        )
        for s in stages
    ]
    services = stages[1].resources[0]
    assert isinstance(services, KbServices)
    async with running(*workers):
        yield services


async def _indexed(follower: Follower, ids: set[str]) -> dict[str, Arrival]:
    by_request = {request_id_for(i): i for i in ids}
    found = await follower.collect(set(by_request), timeout_s=90)
    assert set(found) >= set(by_request), f"not indexed: {set(by_request) - set(found)}"
    return {by_request[r]: items[-1] for r, items in found.items() if r in by_request}


def _decode(project: Project, arrival: Arrival) -> dict[str, Any]:
    return project.codec.decode("podium.kb.Indexed", arrival.value or b"")


async def test_documents_are_indexed_updated_with_their_unchanged_vectors_kept_and_deleted(
    project: Project, cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    folder = tmp_path / "kb" / unique
    folder.mkdir(parents=True)
    (folder / "guide.md").write_bytes(GUIDE.read_bytes())
    (folder / "page.html").write_bytes(PAGE.read_bytes())
    (folder / "handbook.txt").write_text("\n\n".join(PARAGRAPHS))
    home = tmp_path / "home"
    ids = {f"{unique}/guide.md", f"{unique}/page.html", f"{unique}/handbook.txt"}

    async def publish(*only: str) -> None:
        async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
            kb = KbPublisher(pub, project.catalog, project.codec)
            await kb.load(cluster)
            for draft in drafts_from_path(tmp_path / "kb"):
                assert isinstance(draft, Draft), draft
                if not only or draft.document_id in only:
                    await kb.publish(draft)

    async with (
        Follower(cluster, [INDEXED, dlq_topic("kb.chunks"), dlq_topic("kb.embedded")]) as follower,
        _pipeline(project, cluster, unique, home),
    ):
        await publish()
        first = await _indexed(follower, ids)
    for arrival in first.values():
        assert arrival.topic == INDEXED, project.codec.decode("podium.DeadLetter", arrival.value or b"")
        record = _decode(project, arrival)
        assert record["index"] == "local-wordllama-256" and record["chunks"] > 0 and record["reused"] == 0
        assert parse_headers(arrival.headers).path == ("chunk", "embed", "index")

    store = open_store(None, home)
    await store.start()
    try:
        active = await store.active()
        assert active is not None and active.name == "local-wordllama-256" and active.state == ACTIVE
        chunks = {c.id: c for c in await store.chunks(active.name)}
        handbook_before = {i for i, c in chunks.items() if c.document_id == f"{unique}/handbook.txt"}
        assert len(handbook_before) == _decode(project, first[f"{unique}/handbook.txt"])["chunks"] >= 3
        query = WordLlamaEmbedder.load().embed(["scheduled export every night archives"])[0]
        # The session's other tests' documents are in the index too (the workers read the topic
        # from its beginning): the best of this test's is the page on scheduled exports.
        hits = [
            h for h in await store.search(active.name, query, 20) if h.chunk.document_id.startswith(unique)
        ]
        assert hits[0].chunk.document_id == f"{unique}/page.html"
        assert hits[0].chunk.title.startswith("Exporting your data")
    finally:
        await store.stop()

    # An edited paragraph (inside a chunk): that chunk embedded again, the others keep their
    # vectors; then a deletion.
    edited = [p.replace("detail4x7 ", "changed4x7 ") for p in PARAGRAPHS]
    (folder / "handbook.txt").write_text("\n\n".join(edited))
    async with (
        Follower(cluster, [INDEXED]) as follower,
        _pipeline(project, cluster, unique, home),
    ):
        await publish(f"{unique}/handbook.txt")
        updated = _decode(
            project, (await _indexed(follower, {f"{unique}/handbook.txt"}))[f"{unique}/handbook.txt"]
        )
        async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
            await KbPublisher(pub, project.catalog, project.codec).delete(f"{unique}/guide.md")
        gone = _decode(project, (await _indexed(follower, {f"{unique}/guide.md"}))[f"{unique}/guide.md"])
    assert updated["reused"] == updated["chunks"] - 1 >= 2
    assert gone["deleted"] and gone["chunks"] == 0

    store = open_store(None, home)
    await store.start()
    try:
        after = await store.chunks("local-wordllama-256")
        handbook_after = {c.id for c in after if c.document_id == f"{unique}/handbook.txt"}
        assert len(handbook_after) == len(handbook_before) and len(handbook_after - handbook_before) == 1
        assert not [c for c in after if c.document_id == f"{unique}/guide.md"]
        assert [c for c in after if c.document_id == f"{unique}/page.html"]
    finally:
        await store.stop()


def test_the_kb_pipeline_builds_its_three_stages_in_order_on_its_topics(tmp_path: Path) -> None:
    from agents import PIPELINES
    from streams.config import load_settings

    settings = load_settings(PODIUM_HOME=str(tmp_path), PODIUM_VECTOR_URL="postgresql://u:secret@h/db")
    stages = Project(settings, PIPELINES).stages("kb")
    assert [(s.name, s.consumes, s.produces) for s in stages] == [
        ("chunk", "kb.documents", ("kb.chunks",)),
        ("embed", "kb.chunks", ("kb.embedded",)),
        ("index", "kb.embedded", ("kb.indexed",)),
    ]
    assert all(s.ordered_by_key and not s.retry.retry_topic_delays_s for s in stages)
    assert stages[0].on_tombstone is not None and not stages[0].resources
    services = stages[1].resources[0]
    assert isinstance(services, KbServices) and stages[2].resources == (services,)
    url = services.config.vector_url
    assert url is not None and url.get_secret_value() == "postgresql://u:secret@h/db"
    assert services.config.home == tmp_path and "secret" not in repr(services.config)


async def test_podium_run_kb_indexes_what_podium_ingest_docs_publishes(
    project: Project, unique: str, tmp_path: Path
) -> None:
    cluster = project.cluster()
    home = tmp_path / "home"
    folder = tmp_path / "docs" / unique
    folder.mkdir(parents=True)
    (folder / "guide.md").write_bytes(GUIDE.read_bytes())
    log = tmp_path / "kb.log"
    # `podium run kb` runs on the stages' own groups: from the topics' ends, as a user's would
    # be after the backlog other tests left.
    for stage, topic in STAGES:
        await start_group_at_end(cluster, f"podium.{stage}", topic)
    worker = start_worker(cluster, log, "kb", env={"PODIUM_HOME": str(home)})
    try:
        wait_for(log, "podium: running")
        async with Follower(cluster, [INDEXED]) as follower:
            done = podium(
                "ingest", "docs", str(tmp_path / "docs"), env={"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap}
            )
            assert "1 published" in done.stdout, done.stdout + done.stderr
            arrival = (await _indexed(follower, {f"{unique}/guide.md"}))[f"{unique}/guide.md"]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    record = _decode(project, arrival)
    assert record["chunks"] == 4 and record["index"] == "local-wordllama-256"
    store = open_store(None, home)
    await store.start()
    try:
        titles = {
            c.title for c in await store.chunks("local-wordllama-256") if c.document_id.startswith(unique)
        }
    finally:
        await store.stop()
    assert "Workspace guide > Single sign-on > Setting it up" in titles
