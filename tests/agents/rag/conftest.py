"""A real PostgreSQL with pgvector for the session (the ``pgserver`` wheel bundles both), and a
fresh store of either backend per test: LanceDB in a temporary directory, or a database of its
own on that server."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from agents.rag import VectorStore, open_store

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's URL (a Unix socket in its data directory); stopped at the end of the session."""
    with warnings.catch_warnings():
        # Importing pgserver asks platformdirs for a runtime directory, which warns when
        # XDG_RUNTIME_DIR is unset (as in a container): harmless, its sockets go to the data dir.
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def database_url(server_url: str, database: str) -> str:
    """The same server, another database (the URL is ``postgresql://user:@/<db>?host=...``)."""
    before, _, after = server_url.partition("?")
    return f"{before.rsplit('/', 1)[0]}/{database}?{after}"


@pytest.fixture
def postgres_database(postgres: str) -> str:
    name = f"rag_{next(_databases)}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(postgres, name)


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
