"""A fresh store of either backend per test: LanceDB in a temporary directory, or a database of
its own on the session's PostgreSQL (``postgres_database``, in tests/agents/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.rag import VectorStore, open_store


@pytest.fixture(params=["lance", "pgvector"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """``None`` (LanceDB under the test's home) or a PostgreSQL database of the test's own."""
    if request.param == "lance":
        return None
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
async def store(store_url: str | None, tmp_path: Path) -> AsyncIterator[VectorStore]:
    store = open_store(store_url, tmp_path)
    await store.start()
    try:
        yield store
    finally:
        await store.stop()
