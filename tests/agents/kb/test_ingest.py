"""`podium ingest docs` and the chunk stage on the real broker: documents once per version,
chunks with deterministic ids, poison dead-lettered with its reason, deletions as tombstones."""

from __future__ import annotations

import json
from pathlib import Path

from agents.kb.config import KbConfig, KbTuning
from agents.kb.documents import KbPublisher, drafts_from_path, request_id_for
from agents.kb.records import CHUNKS, DOCUMENTS
from agents.kb.stages import chunk_stage
from agents.rag.chunking import chunk_document
from agents.rag.parsing import MARKDOWN, Limits, parse
from streams.contracts import dlq_topic
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Arrival, Follower
from streams.runtime.project import Project
from streams.runtime.stage_worker import StageWorker
from tests.agents.rag.documents import GUIDE, PAGE, make_pdf
from tests.streams.running import podium, running

LIMITS = Limits(max_bytes=64 * 1024)


def _knowledge_base(root: Path, unique: str) -> dict[str, str]:
    """A folder of documents under ``<root>/<unique>``; returns what each id should become."""
    folder = root / unique
    folder.mkdir(parents=True)
    (folder / "guide.md").write_bytes(GUIDE.read_bytes())
    (folder / "page.html").write_bytes(PAGE.read_bytes())
    (folder / "manual.pdf").write_bytes(make_pdf([["Invoices are issued monthly."]], "Manual"))
    rows = [
        {"id": f"{unique}-faq-1", "question": "How do I export?", "answer": "Use Settings > Export."},
        {"id": f"{unique}-faq-2", "title": "Quotas", "text": "Each workspace may hold 50 projects."},
        {"id": f"{unique}-faq-empty", "question": "Blank?", "answer": ""},
    ]
    (folder / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "binary.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (folder / "empty.txt").write_bytes(b"  \n\n ")
    (folder / "huge.txt").write_bytes(b"words and more words. " * 4000)  # 88 KB: over the stage's limit
    (folder / "notes.docx").write_bytes(b"not read")  # an unsupported type: passed over
    return {
        f"{unique}/guide.md": "chunks",
        f"{unique}/page.html": "chunks",
        f"{unique}/manual.pdf": "chunks",
        f"{unique}-faq-1": "chunks",
        f"{unique}-faq-2": "chunks",
        f"{unique}-faq-empty": "empty_document",
        f"{unique}/binary.md": "binary_document",
        f"{unique}/empty.txt": "empty_document",
        f"{unique}/huge.txt": "document_too_large",
    }


def _worker(project: Project, cluster: Cluster, unique: str) -> StageWorker:
    stage = chunk_stage(KbConfig(models=Path("models.yaml"), tuning=KbTuning(limits=LIMITS)))
    return StageWorker(
        stage, cluster=cluster, catalog=project.catalog, codec=project.codec, group_id=f"{unique}-chunk"
    )


def _env(cluster: Cluster) -> dict[str, str]:
    return {"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap, "COLUMNS": "200"}


async def _end(project: Project, cluster: Cluster) -> int:
    async with Follower(cluster, [DOCUMENTS]) as follower:
        return sum((await follower.ends()).values())


def _last(arrivals: list[Arrival]) -> Arrival:
    return max(arrivals, key=lambda a: a.timestamp_ms)


async def _collect(
    follower: Follower, document_ids: set[str], timeout_s: float = 60
) -> dict[str, list[Arrival]]:
    """Arrivals by document id (they travel under request_id_for(id), keyed by the id)."""
    by_request = {request_id_for(d): d for d in document_ids}
    found = await follower.collect(set(by_request), timeout_s=timeout_s)
    return {by_request[r]: items for r, items in found.items() if r in by_request}


async def test_a_folder_becomes_chunks_with_deterministic_ids_and_poison_dead_letters_with_reasons(
    project: Project, cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    expected = _knowledge_base(tmp_path, unique)
    codec = project.codec
    async with (
        Follower(cluster, [CHUNKS, dlq_topic(DOCUMENTS)]) as follower,
        running(_worker(project, cluster, unique)),
    ):
        first = podium("ingest", "docs", str(tmp_path), env=_env(cluster))
        assert first.returncode == 0, first.stderr
        assert "9 published, 0 unchanged, 0 refused" in first.stdout, first.stdout
        arrivals = await _collect(follower, set(expected))

    assert set(arrivals) == set(expected)
    for document_id, outcome in expected.items():
        [arrival] = arrivals[document_id]
        assert arrival.key == document_id.encode()
        if outcome == "chunks":
            assert arrival.topic == CHUNKS
            record = codec.decode("podium.kb.Chunks", arrival.value or b"")
            assert record["document_id"] == document_id and not record["deleted"] and record["chunks"]
            assert len({c["id"] for c in record["chunks"]}) == len(record["chunks"])
        else:
            assert arrival.topic == dlq_topic(DOCUMENTS)
            letter = codec.decode("podium.DeadLetter", arrival.value or b"")
            assert (letter["stage"], letter["error_type"]) == ("chunk", outcome), letter["error_message"]
            assert letter["attempts"] == 1, "a poison document is not retried"

    guide = codec.decode("podium.kb.Chunks", arrivals[f"{unique}/guide.md"][0].value or b"")
    again = chunk_document(f"{unique}/guide.md", parse(GUIDE.read_bytes(), MARKDOWN))
    assert [c["id"] for c in guide["chunks"]] == [c.id for c in again]
    assert guide["chunks"][1]["title"] == "Workspace guide > Inviting people"
    assert guide["source"] == tmp_path.name and guide["content_hash"]
    faq = codec.decode("podium.kb.Chunks", arrivals[f"{unique}-faq-1"][0].value or b"")
    assert faq["source"] == "faq" and faq["chunks"][0]["title"] == "How do I export?"
    assert faq["chunks"][0]["text"] == "Use Settings > Export."
    letter = codec.decode("podium.DeadLetter", arrivals[f"{unique}/binary.md"][0].value or b"")
    assert "NUL bytes" in letter["error_message"]

    # Unchanged: nothing is written. An edited paragraph: that document alone, one chunk id new.
    before = await _end(project, cluster)
    second = podium("ingest", "docs", str(tmp_path), env=_env(cluster))
    assert "0 published, 9 unchanged, 0 refused" in second.stdout, second.stdout
    assert await _end(project, cluster) == before

    guide_file = tmp_path / unique / "guide.md"
    guide_file.write_text(guide_file.read_text().replace("seven days", "ten days"))
    async with (
        Follower(cluster, [CHUNKS]) as follower,
        running(_worker(project, cluster, unique)),
    ):
        third = podium("ingest", "docs", str(tmp_path), env=_env(cluster))
        assert "1 published, 8 unchanged" in third.stdout, third.stdout
        deleted = podium("kb", "delete", f"{unique}-faq-2", env=_env(cluster))
        assert deleted.returncode == 0, deleted.stderr
        updates = await _collect(follower, {f"{unique}/guide.md", f"{unique}-faq-2"})
    edited = codec.decode("podium.kb.Chunks", _last(updates[f"{unique}/guide.md"]).value or b"")
    old_ids, new_ids = [c["id"] for c in guide["chunks"]], [c["id"] for c in edited["chunks"]]
    assert len(old_ids) == len(new_ids) and sum(a != b for a, b in zip(old_ids, new_ids, strict=True)) == 1
    gone = codec.decode("podium.kb.Chunks", _last(updates[f"{unique}-faq-2"]).value or b"")
    assert gone["deleted"] and gone["chunks"] == [] and gone["document_id"] == f"{unique}-faq-2"

    unknown = podium("kb", "delete", f"{unique}-never", env=_env(cluster))
    assert unknown.returncode == 1 and "no document" in unknown.stderr


async def test_a_file_larger_than_the_topic_accepts_is_refused_by_the_command(
    project: Project, cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    folder = tmp_path / unique
    folder.mkdir()
    (folder / "ok.md").write_text("# Fine\n\nA small document.\n")
    spec = project.catalog.get(DOCUMENTS)
    (folder / "giant.txt").write_bytes(b"x" * (spec.max_message_bytes + 1))
    done = podium("ingest", "docs", str(tmp_path), env=_env(cluster))
    assert done.returncode == 1
    assert "1 published, 0 unchanged, 1 refused" in done.stdout, done.stdout
    assert f"{unique}/giant.txt" in done.stderr and "larger than kb.documents accepts" in done.stderr


async def test_the_publisher_reads_the_compacted_topic_to_its_end_and_forgets_deleted_documents(
    project: Project, cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    (tmp_path / f"{unique}.md").write_text("# A\n\nText.\n")
    [draft] = list(drafts_from_path(tmp_path / f"{unique}.md"))
    async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
        kb = KbPublisher(pub, project.catalog, project.codec)
        await kb.load(cluster)
        assert await kb.publish(draft) and not await kb.publish(draft)
        await kb.load(cluster)
        assert draft.document_id in kb.known and not await kb.publish(draft)
        await kb.delete(draft.document_id)
        await kb.load(cluster)
        assert draft.document_id not in kb.known and await kb.publish(draft)
