"""The knowledge base's crash proofs (issue 13, section 7) on the real broker: while a corpus of
300 documents is ingested, the embed worker (then the index worker) runs in a process of
its own and is killed with SIGKILL mid-way; documents are updated and deleted while it is down,
and it is started again. Once the groups have no lag, the index holds every live document's
chunks (the ids the chunker gives for the corpus), each id exactly once, nothing of a deleted
document or a replaced version; the poison documents of the same run are on kb.documents.dlq
with their reasons. Killing the embed worker also shows the vectors already stored reused after
the restart, where the index had them.

Every group (the killed worker's ``podium.<stage>`` and the in-process stages' own) is first set
to the end of its topic, so the run reads this test's records only."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from agents import PIPELINES
from agents.kb.documents import Draft, KbPublisher, drafts_from_path, request_id_for
from agents.kb.records import CHUNKS, DOCUMENTS, EMBEDDED, INDEXED
from agents.kb.services import KbServices
from agents.kb.stages import ChunkStage
from agents.rag.store import open_store
from streams.contracts import dlq_topic
from streams.contracts.headers import now_ms
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Arrival, Follower
from streams.runtime.project import Project
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import committed, running, start_group_at_end, start_worker, wait_for

DOCS = 300
UPDATED = range(0, DOCS, 10)  # a new version of their second section, published while the worker is down
DELETED = range(5, DOCS, 15)  # tombstones, likewise
POISON = {  # file -> (error type, words of the reason)
    "poison/binary.md": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary_document", "NUL bytes"),
    "poison/empty.md": (b"", "empty_document", ""),
    "poison/latin1.txt": (
        "Caf\xe9 cr\xe8me br\xfbl\xe9e, na\xefve r\xe9sum\xe9".encode("latin-1"),
        "binary_document",
        "not UTF-8",
    ),
}
INPUT = {"embed": CHUNKS, "index": EMBEDDED}
OUTPUT = {"embed": EMBEDDED, "index": INDEXED}


def _document(n: int, version: int) -> str:
    """A Markdown page of two sections (about 700 characters each, so a chunk each)."""

    def section(s: int, v: int) -> str:
        words = " ".join(f"w{n}s{s}t{i}v{v}" for i in range(70))
        return f"## Part {s} of topic {n}\n\nTopic {n}, part {s}, explains: {words}.\n"

    return f"# Topic {n}\n\n{section(1, 1)}\n{section(2, version)}"


@dataclass
class Corpus:
    """The documents under ``<root>/<unique>``, and the chunk ids each version should give."""

    root: Path
    unique: str
    chunker: ChunkStage
    ids_of: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (id, content hash)

    @property
    def folder(self) -> Path:
        return self.root / self.unique

    def document_id(self, n: int) -> str:
        return f"{self.unique}/topic-{n:03d}.md"

    def write(self, numbers: range | list[int], version: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for n in numbers:
            (self.folder / f"topic-{n:03d}.md").write_text(_document(n, version))

    def write_poison(self) -> None:
        for name, (content, _, _) in POISON.items():
            (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
            (self.folder / name).write_bytes(content)

    def drafts(self) -> dict[str, Draft]:
        drafts = {}
        for draft in drafts_from_path(self.root):
            assert isinstance(draft, Draft), draft
            drafts[draft.document_id] = draft
        return drafts

    def expected(self, draft: Draft) -> list[str]:
        """The chunker's ids for this version of the document (agents.rag.chunking)."""
        key = (draft.document_id, draft.content_hash)
        if key not in self.ids_of:
            self.ids_of[key] = [c["id"] for c in self.chunker.chunks_of(draft.record())["chunks"]]
        return self.ids_of[key]


async def _lag(cluster: Cluster, group: str, topic: str) -> int:
    async with Follower(cluster, [topic]) as follower:
        ends = await follower.ends()
    done = await committed(cluster, group)
    return sum(end - done.get((tp.topic, tp.partition), 0) for tp, end in ends.items())


class Killable:
    """``podium run <stage>`` in a process of its own, killed with SIGKILL and started again."""

    def __init__(self, cluster: Cluster, stage: str, folder: Path, env: dict[str, str]) -> None:
        self.cluster, self.stage, self.folder, self.env = cluster, stage, folder, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        log = self.folder / f"{self.stage}-{self.starts}.log"
        self.proc = start_worker(self.cluster, log, self.stage, env=self.env)
        await asyncio.to_thread(wait_for, log, "podium: running", 120)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Run:
    """What a run left: arrivals of this test's documents by request id, the restart's time."""

    output: dict[str, list[Arrival]]  # on the killed stage's output topic
    indexed: dict[str, list[Arrival]]
    dead: dict[str, list[Arrival]]
    at_kill: int  # documents of this test on the killed stage's output when it was killed
    restarted_ms: int
    home: Path


@asynccontextmanager
async def _in_process(project: Project, stages: list[Any], unique: str) -> AsyncIterator[None]:
    workers = [
        StageWorker(
            s,
            cluster=project.cluster(),
            catalog=project.catalog,
            codec=project.codec,
            group_id=f"{unique}-{s.name}",
        )
        for s in stages
    ]
    async with running(*workers):
        yield


async def _collect(follower: Follower, into: dict[str, dict[str, list[Arrival]]], timeout_s: float) -> None:
    for request_id, arrivals in (await follower.poll(timeout_s)).items():
        for arrival in arrivals:
            into[arrival.topic].setdefault(request_id, []).append(arrival)


async def _crash_run(
    project: Project, tmp_path: Path, unique: str, killed: str, vector_url: str | None
) -> tuple[Corpus, Run]:
    """Ingest the corpus with ``killed`` in its own process, killed once, until the index holds it."""
    cluster = project.cluster()
    home = tmp_path / "home"
    settings = project.settings.model_copy(
        update={"home": home, "vector_url": None if vector_url is None else SecretStr(vector_url)}
    )
    stages = Project(settings, PIPELINES).stages("kb")
    services = stages[2].resources[0]
    assert isinstance(services, KbServices) and [s.name for s in stages] == ["chunk", "embed", "index"]
    corpus = Corpus(tmp_path / "docs", unique, ChunkStage(services.config))
    alongside = [s for s in stages if s.name != killed]
    for stage in alongside:
        await start_group_at_end(cluster, f"{unique}-{stage.name}", stage.consumes)
    await start_group_at_end(cluster, f"podium.{killed}", INPUT[killed])

    env = {"PODIUM_HOME": str(home), "PODIUM_OTEL_EXPORTER": "none"}
    if vector_url is not None:
        env["PODIUM_VECTOR_URL"] = vector_url
    worker = Killable(cluster, killed, tmp_path, env)
    corpus.write(range(DOCS), version=1)
    corpus.write_poison()
    mine = {request_id_for(corpus.document_id(n)) for n in range(DOCS)}
    poison = {f"{unique}/{name}" for name in POISON}
    seen: dict[str, dict[str, list[Arrival]]] = {OUTPUT[killed]: {}, INDEXED: {}, dlq_topic(DOCUMENTS): {}}
    topics = list(seen)
    try:
        async with (
            Follower(cluster, topics) as follower,
            Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as publisher,
            _in_process(project, alongside, unique),
        ):
            kb = KbPublisher(publisher, project.catalog, project.codec)
            await kb.load(cluster)
            drafts = corpus.drafts()
            for draft in drafts.values():
                if draft.document_id not in poison:
                    corpus.expected(draft)
            await asyncio.gather(*(kb.publish(d) for d in drafts.values()))
            await worker.start()

            # Killed once some of this test's documents came out of it, but not all.
            deadline = time.monotonic() + 120
            while len(mine & set(seen[OUTPUT[killed]])) < DOCS // 10:
                assert time.monotonic() < deadline, f"{killed} wrote nothing in 120 s"
                await _collect(follower, seen, 0.05)
            worker.kill()
            await _collect(follower, seen, 0.5)  # what it wrote before it died
            at_kill = len(mine & set(seen[OUTPUT[killed]]))
            assert at_kill < DOCS, f"the kill landed after the last document ({at_kill} out)"

            # While it is down: new versions of some documents, others deleted.
            corpus.write(UPDATED, version=2)
            for draft in corpus.drafts().values():
                if draft.document_id in {corpus.document_id(n) for n in UPDATED}:
                    corpus.expected(draft)
                    assert await kb.publish(draft)
            for n in DELETED:
                await kb.delete(corpus.document_id(n))
                (corpus.folder / f"topic-{n:03d}.md").unlink()
            restarted_ms = now_ms()
            await worker.start()

            # Drained: every group at the end of its topic, and the last of the deletions indexed.
            last = request_id_for(corpus.document_id(DELETED[-1]))
            deadline = time.monotonic() + 180
            while True:
                await _collect(follower, seen, 0.5)
                gone = [a for a in seen[INDEXED].get(last, []) if a.timestamp_ms >= restarted_ms]
                if gone and not await _lags(cluster, unique, killed, alongside):
                    break
                assert time.monotonic() < deadline, "the pipeline did not drain in 180 s"
    finally:
        worker.stop()
    run = Run(seen[OUTPUT[killed]], seen[INDEXED], seen[dlq_topic(DOCUMENTS)], at_kill, restarted_ms, home)
    return corpus, run


async def _lags(cluster: Cluster, unique: str, killed: str, alongside: list[Any]) -> int:
    lags = [await _lag(cluster, f"podium.{killed}", INPUT[killed])]
    lags += [await _lag(cluster, f"{unique}-{s.name}", s.consumes) for s in alongside]
    return sum(lags)


async def _assert_index_complete(project: Project, corpus: Corpus, run: Run, vector_url: str | None) -> None:
    live = {
        d.document_id: d
        for d in corpus.drafts().values()
        if not d.document_id.startswith(f"{corpus.unique}/poison/")
    }
    assert len(live) == DOCS - len(DELETED)
    expected = {d: corpus.expected(draft) for d, draft in live.items()}
    assert all(expected.values()) and len({i for ids in expected.values() for i in ids}) == sum(
        map(len, expected.values())
    )

    store = open_store(vector_url, run.home)
    await store.start()
    try:
        active = await store.active()
        assert active is not None
        stored = [c for c in await store.chunks(active.name) if c.document_id.startswith(f"{corpus.unique}/")]
        assert await store.count(active.name) == len(stored)  # nothing but this test's documents
    finally:
        await store.stop()
    counts = Counter(c.id for c in stored)
    twice = {i: n for i, n in counts.items() if n > 1}
    assert not twice, f"{len(twice)} chunk ids stored more than once: {list(twice.items())[:5]}"
    by_document: dict[str, set[str]] = {}
    for chunk in stored:
        by_document.setdefault(chunk.document_id, set()).add(chunk.id)
    missing = sorted(set(expected) - set(by_document))
    assert not missing, f"{len(missing)} documents missing from the index: {missing[:5]}"
    deleted = sorted(set(by_document) - set(expected))
    assert not deleted, f"{len(deleted)} deleted documents still in the index: {deleted[:5]}"
    wrong = {
        d: (sorted(ids - set(expected[d])), sorted(set(expected[d]) - ids))
        for d, ids in by_document.items()
        if ids != set(expected[d])
    }
    assert not wrong, (
        f"{len(wrong)} documents with stale or missing chunks (stale, missing): {list(wrong.items())[:3]}"
    )
    for chunk in stored:
        assert chunk.content_hash == live[chunk.document_id].content_hash, chunk

    # The poison of the same run, dead-lettered by the chunk stage with its reason.
    for name, (_, error_type, words) in POISON.items():
        [letter] = run.dead[request_id_for(f"{corpus.unique}/{name}")]
        dead = project.codec.decode("podium.DeadLetter", letter.value or b"")
        assert (dead["stage"], dead["error_type"]) == ("chunk", error_type), dead
        assert words in dead["error_message"], dead["error_message"]


async def test_kill_9_of_the_embed_worker_mid_ingest_leaves_the_index_complete_after_restart(
    project: Project, unique: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    corpus, run = await _crash_run(project, tmp_path, unique, "embed", None)
    await _assert_index_complete(project, corpus, run, None)

    # Vectors the index held at the restart were reused: the first record of a document the
    # restarted worker wrote reuses every chunk id of the version indexed before the restart.
    shown = 0
    for request_id, arrivals in run.output.items():
        after = sorted((a for a in arrivals if a.timestamp_ms >= run.restarted_ms), key=lambda a: a.offset)
        before = [
            project.codec.decode("podium.kb.Indexed", a.value or b"")
            for a in run.indexed.get(request_id, [])
            if a.timestamp_ms < run.restarted_ms
        ]
        if not after or not before or before[-1]["deleted"]:
            continue
        indexed_ids = set(corpus.ids_of[(before[-1]["document_id"], before[-1]["content_hash"])])
        record = project.codec.decode("podium.kb.Embedded", after[0].value or b"")
        held = indexed_ids & {c["id"] for c in record["chunks"]}
        assert record["reused"] >= len(held), (request_id, record["reused"], len(held))
        shown += bool(held)
    replayed = sum(1 for arrivals in run.output.values() if len(arrivals) > 1)
    print(
        f"embed crash: {run.at_kill}/{DOCS} documents embedded at the kill, {replayed} written twice, "
        f"{shown} reusing stored vectors after the restart, {time.monotonic() - started:.1f} s"
    )


@pytest.mark.parametrize("backend", ["lance", "pgvector"])
async def test_kill_9_of_the_index_worker_mid_ingest_leaves_the_index_complete_after_restart(
    project: Project, unique: str, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    started = time.monotonic()
    url: str | None = request.getfixturevalue("postgres_database") if backend == "pgvector" else None
    corpus, run = await _crash_run(project, tmp_path, unique, "index", url)
    await _assert_index_complete(project, corpus, run, url)
    replayed = sum(1 for arrivals in run.output.values() if len(arrivals) > 1)
    print(
        f"index crash ({backend}): {run.at_kill}/{DOCS} documents indexed at the kill, {replayed} indexed "
        f"twice, {time.monotonic() - started:.1f} s"
    )
