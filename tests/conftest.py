"""Shared fixtures. The broker fixture starts the project's own real Kafka once per session."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from streams.config import Settings, load_settings
from streams.schemas import SchemaStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def schema_store() -> SchemaStore:
    return SchemaStore.load(REPO / "schemas")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def broker_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("podium-home")
    return load_settings(
        PODIUM_HOME=str(home),
        PODIUM_BROKER_PORT=_free_port(),
        PODIUM_SCHEMAS=str(REPO / "schemas"),
        PODIUM_TOPICS=str(REPO / "topics.yaml"),
    )


@pytest.fixture(scope="session")
async def bootstrap(broker_settings: Settings) -> AsyncIterator[str]:
    """A real Apache Kafka broker (KRaft) for the whole session, or KAFKA_BOOTSTRAP_SERVERS."""
    if broker_settings.bootstrap_servers:
        yield broker_settings.bootstrap_servers
        return
    from streams.broker import LocalBroker

    broker = LocalBroker(broker_settings)
    state = await broker.start(timeout_s=120)
    os.environ["PODIUM_TEST_BOOTSTRAP"] = state.bootstrap
    try:
        yield state.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def unique() -> Iterator[str]:
    yield "t" + os.urandom(4).hex()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)
