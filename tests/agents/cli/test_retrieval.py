"""The retriever as the commands open it (store and gateway from the settings, every part closed),
and ``podium eval retrieval`` over an index that lacks documents of the question set: it names
them and says how to ingest the shipped knowledge base. No broker: the index is written straight
into LanceDB under a temporary PODIUM_HOME."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.cli.retrieval import open_retriever
from agents.offline.embedder import WordLlamaEmbedder
from agents.rag.evaluate import load_questions
from agents.rag.store import ACTIVE, Chunk, IndexVersion, open_store
from streams import ConfigError
from streams.config import load_settings
from tests.streams.running import REPO, podium

VERSION = IndexVersion("local-wordllama-256", "local", "local-wordllama", 256, ACTIVE, 1)
TEXT = 'To reset your password, click "Forgot password?" on the sign-in page.'


async def _one_document(home: Path) -> None:
    vector = WordLlamaEmbedder.load().embed([TEXT])[0].astype(np.float32)
    store = open_store(None, home)
    await store.start()
    try:
        await store.ensure_version(VERSION)
        await store.activate(VERSION.name)
        chunk = Chunk(
            "docs-password-reset#0",
            "docs-password-reset",
            TEXT,
            "Resetting your password",
            "",
            "docs",
            vector=vector,
        )
        await store.replace_document(VERSION.name, "docs-password-reset", [chunk])
    finally:
        await store.stop()


async def test_the_opened_retriever_searches_the_settings_index_through_the_gateway(tmp_path: Path) -> None:
    await _one_document(tmp_path)
    settings = load_settings(PODIUM_HOME=str(tmp_path), PODIUM_MODELS=str(REPO / "models.yaml"))
    async with open_retriever(settings) as opened:
        found = await opened.retriever.search("I forgot my password", 5, "hybrid")
    assert [p.id for p in found.passages] == ["docs-password-reset"]
    assert found.mode == "hybrid" and found.embed_model == "local/local-wordllama"


async def test_a_bad_models_file_fails_before_the_store_opens(tmp_path: Path) -> None:
    settings = load_settings(PODIUM_HOME=str(tmp_path), PODIUM_MODELS=str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        async with open_retriever(settings):
            pass
    assert not (tmp_path / "vectors").exists()


async def test_eval_retrieval_names_the_documents_the_index_lacks_and_exits_1(tmp_path: Path) -> None:
    await _one_document(tmp_path)
    result = podium("eval", "retrieval", env={"PODIUM_HOME": str(tmp_path)})
    assert result.returncode == 1, result.stdout + result.stderr
    named = {d for q in load_questions() if q.split == "heldout" for d in q.relevant}
    assert f"lacks {len(named - {'docs-password-reset'})} document(s)" in " ".join(result.stderr.split())
    assert "podium ingest docs agents/data/kb" in result.stderr
