"""``podium kb search``, ``podium kb status`` and ``podium eval retrieval`` as a person runs them,
over an index the kb stages filled on the real broker: ``podium run kb`` in a process of its own
(the stages' own groups, ``podium.<stage>``, whose lag ``kb status`` reads) indexing the shipped
knowledge base of agents/data/kb (published once for the module) into LanceDB under a temporary
PODIUM_HOME."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.kb.documents import Draft, KbPublisher, drafts_from_path, request_id_for
from agents.kb.records import CHUNKS, DOCUMENTS, EMBEDDED, INDEXED
from agents.rag.store import open_store
from streams.contracts import dlq_topic
from streams.ingress.publish import Publisher
from streams.kafka.follow import Follower
from streams.runtime.project import Project
from tests.streams.running import REPO, podium, start_worker, wait_for

SHIPPED = REPO / "agents" / "data" / "kb"


def _shipped_ids() -> set[str]:
    return {d.document_id for d in drafts_from_path(SHIPPED) if isinstance(d, Draft)}


@pytest.fixture(scope="module")
async def indexed(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """The environment of a PODIUM_HOME whose index holds the shipped knowledge base, the kb
    stages stopped (so their groups' offsets are final)."""
    cluster = project.cluster()
    home = tmp_path_factory.mktemp("kb-home")
    env = {"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap, "PODIUM_HOME": str(home), "PODIUM_METRICS_PORT": "0"}
    ids = _shipped_ids()
    log = home / "kb.log"
    worker = start_worker(cluster, log, "kb", env=env)
    try:
        wait_for(log, "podium: running", timeout_s=90)
        # Where each document ends: indexed, or a dead letter of one of the stages (named below).
        ends = [INDEXED, *(dlq_topic(t) for t in (DOCUMENTS, CHUNKS, EMBEDDED))]
        async with Follower(cluster, ends) as follower:
            # Every document is published again (a KbPublisher that has not read the topic sends
            # them all), so the index holds them whatever other tests left on kb.documents and
            # wherever the podium.<stage> groups stand.
            async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
                kb = KbPublisher(pub, project.catalog, project.codec)
                for draft in drafts_from_path(SHIPPED):
                    assert isinstance(draft, Draft) and await kb.publish(draft)
            wanted = {request_id_for(i) for i in ids}
            found = await follower.collect(wanted, timeout_s=240)
            assert set(found) >= wanted, f"not indexed: {wanted - set(found)}"
            letters = [
                project.codec.decode("podium.DeadLetter", a.value or b"")
                for items in found.values()
                for a in items
                if a.topic != INDEXED
            ]
            assert not letters, [(d["stage"], d["request_id"], d["error_message"]) for d in letters]
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    yield env


def _json(result: object) -> dict[str, object]:
    out = getattr(result, "stdout", "")
    assert getattr(result, "returncode", 1) == 0, out + getattr(result, "stderr", "")
    parsed = json.loads(out)
    assert isinstance(parsed, dict)
    return parsed


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_kb_search_finds_the_password_reset_document_in_each_mode(indexed: dict[str, str], mode: str) -> None:
    found = _json(podium("kb", "search", "I forgot my password", "--mode", mode, "--json", env=indexed))
    passages = found["passages"]
    assert isinstance(passages, list) and 0 < len(passages) <= 5
    ids = [p["document_id"] for p in passages]
    assert {"docs-password-reset", "faq-forgot-password"} & set(ids[:3]), ids
    assert found["mode"] == mode and found["index"] == "local-wordllama-256"
    assert [p["rank"] for p in passages] == list(range(1, len(passages) + 1))
    assert len(set(ids)) == len(ids)  # one passage per document
    if mode != "bm25":
        assert found["embed_model"] == "local/local-wordllama"


def test_kb_search_prints_a_table_with_the_mode_index_and_model(indexed: dict[str, str]) -> None:
    shown = podium("kb", "search", "I forgot my password", "--k", "3", env=indexed)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "docs-password-reset" in shown.stdout or "faq-forgot-password" in shown.stdout
    assert "mode hybrid" in shown.stdout and "index local-wordllama-256" in shown.stdout
    assert "local/local-wordllama" in shown.stdout


def test_kb_search_with_a_tenant_still_finds_the_shared_documents(indexed: dict[str, str]) -> None:
    found = _json(podium("kb", "search", "reset my password", "--tenant", "acme", "--json", env=indexed))
    assert found["passages"], found


async def test_kb_status_shows_the_active_version_its_chunks_and_no_lag(indexed: dict[str, str]) -> None:
    status = _json(podium("kb", "status", "--json", env=indexed))
    store = open_store(None, Path(indexed["PODIUM_HOME"]))
    await store.start()
    try:
        chunks = await store.chunks("local-wordllama-256")
    finally:
        await store.stop()
    versions = status["versions"]
    assert isinstance(versions, list) and len(versions) == 1
    (version,) = versions
    assert version["name"] == "local-wordllama-256" and version["state"] == "active"
    assert (version["provider"], version["model"], version["dimensions"]) == ("local", "local-wordllama", 256)
    assert version["chunks"] == len(chunks) >= 80
    assert version["documents"] == len({c.document_id for c in chunks})
    assert _shipped_ids() <= {c.document_id for c in chunks}
    documents = status["documents"]
    assert isinstance(documents, int) and documents >= 80
    stages = status["stages"]
    assert isinstance(stages, list)
    assert [(s["stage"], s["group"], s["topic"], s["lag"]) for s in stages] == [
        ("chunk", "podium.chunk", "kb.documents", 0),
        ("embed", "podium.embed", "kb.chunks", 0),
        ("index", "podium.index", "kb.embedded", 0),
    ]
    assert [s["dlq"] for s in stages] == ["kb.documents.dlq", "kb.chunks.dlq", "kb.embedded.dlq"]

    shown = podium("kb", "status", env=indexed)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "local-wordllama-256" in shown.stdout and "active" in shown.stdout
    assert "podium.index" in shown.stdout and "kb.embedded.dlq" in shown.stdout


def test_eval_retrieval_measures_three_modes_and_hybrid_finds_most_on_held_out(
    indexed: dict[str, str],
) -> None:
    figures = _json(podium("eval", "retrieval", "--json", env=indexed))
    assert figures["index"] == "local-wordllama-256"
    splits = figures["splits"]
    assert isinstance(splits, dict) and set(splits) == {"heldout"}
    held = splits["heldout"]
    assert set(held) == {"bm25", "dense", "hybrid"}
    for score in held.values():
        assert 0.0 <= score["recall_at_5"] <= 1.0 and 0.0 <= score["mrr_at_10"] <= 1.0
        assert score["questions"] == 132
    # Measured through the store: bm25 0.726, dense 0.833, hybrid 0.876 (as in process).
    assert held["hybrid"]["recall_at_5"] >= 0.8
    assert held["hybrid"]["recall_at_5"] > max(held["bm25"]["recall_at_5"], held["dense"]["recall_at_5"])

    shown = podium("eval", "retrieval", "--split", "all", env=indexed)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    for text in ("tune split", "heldout split", "recall@5", "MRR@10", "bm25", "dense", "hybrid"):
        assert text in shown.stdout


def test_nothing_indexed_says_how_to_ingest_and_exits_1(tmp_path: Path) -> None:
    env = {"PODIUM_HOME": str(tmp_path)}
    for command in (("kb", "search", "I forgot my password"), ("eval", "retrieval")):
        result = podium(*command, env=env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "nothing is indexed yet" in result.stderr
        assert "podium run kb" in result.stderr and "podium ingest docs agents/data/kb" in result.stderr
