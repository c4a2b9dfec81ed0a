"""The project of the pipelines' tests: the repository's catalog applied to the session broker;
a real PostgreSQL with pgvector for the session (the ``pgserver`` wheel bundles both), a
database of its own per test (the vector store's tests and the kb pipeline's)."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from streams.config import Settings
from streams.kafka.admin import TopicAdmin
from streams.kafka.connection import Cluster
from streams.runtime.project import Project


@pytest.fixture(scope="module")
async def project(broker_settings: Settings, cluster: Cluster) -> AsyncIterator[Project]:
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": cluster.bootstrap}))
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog)
    yield project


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
