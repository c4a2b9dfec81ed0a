"""`podium kb reindex` as a user runs it, on the real broker into a LanceDB under a tmp home."""

from __future__ import annotations

from pathlib import Path

from agents.kb.documents import Draft, KbPublisher
from agents.rag.store import open_store
from streams.ingress.publish import Publisher
from streams.runtime.project import Project
from tests.streams.running import REPO, podium


async def test_podium_kb_reindex_builds_then_activates_then_has_nothing_to_do(
    project: Project, unique: str, tmp_path: Path
) -> None:
    cluster = project.cluster()
    async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
        kb = KbPublisher(pub, project.catalog, project.codec)
        await kb.load(cluster)
        await kb.publish(
            Draft(f"{unique}/guide.md", "docs", "text/markdown", b"# Guide\n\nExports run every night.\n")
        )
        # Poison: the chunk stage dead-letters it, the reindex passes over it and counts it.
        await kb.publish(Draft(f"{unique}/empty.md", "docs", "text/markdown", b"   \n"))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "PODIUM_HOME": str(tmp_path / "home"),
        "PODIUM_MODELS": str(REPO / "models.yaml"),
    }

    built = podium("kb", "reindex", "--no-activate", env=env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "local-wordllama-256 is building (--activate switches to it)" in built.stdout, built.stdout
    assert " unreadable passed over" in built.stdout and " 0 unreadable" not in built.stdout, built.stdout
    store = open_store(None, tmp_path / "home")
    await store.start()
    try:
        [version] = await store.versions()
        assert version.state == "building"
        assert f"{unique}/guide.md" in {c.document_id for c in await store.chunks(version.name)}
    finally:
        await store.stop()

    switched = podium("kb", "reindex", env=env)
    assert switched.returncode == 0, switched.stdout + switched.stderr
    assert "written, " in switched.stdout and "local-wordllama-256 is active" in switched.stdout
    assert " 0 chunks embedded" in switched.stdout, "the first run's vectors are reused"

    again = podium("kb", "reindex", env=env)
    assert again.returncode == 0 and "already the active version: nothing to do" in again.stdout, again.stdout
