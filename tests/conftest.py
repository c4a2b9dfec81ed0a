"""Shared fixtures. The broker fixture starts the project's own real Kafka once per session."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.config import Settings, load_settings
from streams.contracts.schemas import SchemaStore
from streams.kafka.broker import LocalBroker
from streams.kafka.connection import Cluster, KafkaSecurity
from streams.kafka.principals import WORKER, stage_principal
from tests.phoenix import Phoenix, start_phoenix, stop_phoenix

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
async def local_broker(broker_settings: Settings) -> AsyncIterator[LocalBroker | None]:
    """The project's own real Apache Kafka broker (KRaft), once per session.

    None when KAFKA_BOOTSTRAP_SERVERS points the suite at an existing cluster instead.
    """
    if broker_settings.bootstrap_servers:
        yield None
        return
    broker = LocalBroker(broker_settings)
    await broker.start(timeout_s=120)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def bootstrap(broker_settings: Settings, local_broker: LocalBroker | None) -> str:
    if local_broker is None:
        assert broker_settings.bootstrap_servers
        return broker_settings.bootstrap_servers
    state = local_broker.running()
    assert state is not None, "the session broker is not running"
    return state.bootstrap


# The stages the secured broker has SCRAM users for: the demo pipeline's, and names for tests.
SECURED_STAGES = ("stamp", "finish", "reader", "writer", "other")


@dataclass(frozen=True)
class SecuredBroker:
    """A second local broker, secured (SASL_SSL, SCRAM-SHA-512, StandardAuthorizer, no ACLs
    yet: only ``podium``, a super user, may do anything until ACLs are made)."""

    broker: LocalBroker
    #: Its own PODIUM_HOME and port (KAFKA_BOOTSTRAP_SERVERS unset: a Project from these
    #: settings reaches it as podium by itself).
    settings: Settings
    #: As ``podium``, the super user.
    cluster: Cluster

    def cluster_for(self, stage_name: str) -> Cluster:
        """As the stage's principal (``stage-<name>``): one of :data:`SECURED_STAGES`, or of
        :meth:`add_stages` before."""
        return Cluster(self.cluster.bootstrap, self.broker.client_security(stage_principal(stage_name)))

    async def add_stages(self, *stage_names: str) -> None:
        """Give these stages SCRAM users on the running broker (those it lacks; idempotent)."""
        await self.broker.add_users([stage_principal(name) for name in stage_names])


@pytest.fixture(scope="session")
async def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecuredBroker]:
    """The project's real broker started with ``--security sasl_ssl`` in a home of its own, once
    per session (its CA, certificate and users are made by the project, as on a fresh machine)."""
    home = tmp_path_factory.mktemp("podium-secured-home")
    settings = load_settings(
        PODIUM_HOME=str(home),
        PODIUM_BROKER_PORT=_free_port(),
        PODIUM_BROKER_HEAP="512m",
        PODIUM_SCHEMAS=str(REPO / "schemas"),
        PODIUM_TOPICS=str(REPO / "topics.yaml"),
    ).model_copy(update={"bootstrap_servers": None})
    broker = LocalBroker(settings)
    users = [WORKER, *(stage_principal(name) for name in SECURED_STAGES)]
    await broker.start(timeout_s=120, security="sasl_ssl", users=users)
    try:
        yield SecuredBroker(broker, settings, broker.cluster())
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def cluster(broker_settings: Settings, bootstrap: str) -> Cluster:
    """The session's cluster as podium reaches it (with the KAFKA_SECURITY_* settings when the
    suite is pointed at an existing cluster)."""
    return Cluster(bootstrap, KafkaSecurity.from_settings(broker_settings))


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    """Arize Phoenix from .venv-phoenix (`make phoenix`, a prerequisite of `make test`), a real
    `phoenix serve` once per session; missing, it fails the tests that need it instead of skipping."""
    try:
        server = start_phoenix(tmp_path_factory.mktemp("phoenix"), _free_port(), _free_port())
    except RuntimeError as exc:
        failure = str(exc)  # failed below, outside this block: the message alone says it all
    else:
        failure = ""
    if failure:
        pytest.fail(failure, pytrace=False)
    try:
        yield server
    finally:
        stop_phoenix(server)


@pytest.fixture
def unique() -> Iterator[str]:
    yield "t" + os.urandom(4).hex()


# Tests that leave hundreds of documents on the session's kb.documents run last: the tests that
# read that compacted topic from its beginning (a reindex, a first run) would wait on them.
LAST = ("tests/agents/kb/test_crash.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"bootstrap", "secured_broker"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)
    items.sort(key=lambda item: item.nodeid.startswith(LAST))  # stable: the rest keep their order


@pytest.fixture
def make_topics(cluster: Cluster, schema_store: SchemaStore):  # type: ignore[no-untyped-def]
    """Apply a catalog given as YAML text (use {p} for a per-test prefix); returns it."""
    from streams.contracts.catalog import Catalog, parse_catalog
    from streams.kafka.admin import TopicAdmin

    async def make(text: str, prefix: str) -> Catalog:
        catalog = parse_catalog(text.replace("{p}", prefix), Path("test-topics.yaml"), schema_store.names())
        async with TopicAdmin(cluster) as admin:
            await admin.apply(catalog)
        return catalog

    return make


@pytest.fixture(scope="session")
async def shipped_kb(
    broker_settings: Settings, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A PODIUM_HOME whose vector store holds the shipped knowledge base, ingested as `make demo`
    ingests it: published on kb.documents and indexed by the kb pipeline on the real broker.

    The pipeline's groups start at their topics' ends and every document is published again, so
    the index holds the shipped documents alone, whatever other tests left on kb.documents."""
    import uuid

    from agents.kb.config import KbConfig
    from agents.kb.documents import Draft, KbPublisher, drafts_from_path, request_id_for
    from agents.kb.records import INDEXED
    from agents.kb.stages import kb_stages
    from streams.ingress.publish import Publisher
    from streams.kafka.admin import TopicAdmin
    from streams.kafka.follow import Follower
    from streams.runtime.project import Project
    from streams.runtime.stage_worker import StageWorker
    from tests.streams.running import REPO, running, start_group_at_end

    home = tmp_path_factory.mktemp("shipped-kb-home")
    project = Project(
        broker_settings.model_copy(update={"bootstrap_servers": cluster.bootstrap, "home": home})
    )
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog)
    drafts = [d for d in drafts_from_path(REPO / "agents" / "data" / "kb") if isinstance(d, Draft)]
    assert len(drafts) == 80, "the shipped knowledge base is 45 docs and 35 FAQ entries"
    stages = kb_stages(KbConfig(models=REPO / "models.yaml", home=home))
    group = f"shipped-kb-{uuid.uuid4().hex[:8]}"
    workers = []
    for stage in stages:
        await start_group_at_end(cluster, f"{group}-{stage.name}", stage.consumes)
        workers.append(
            StageWorker(
                stage,
                cluster=cluster,
                catalog=project.catalog,
                codec=project.codec,
                group_id=f"{group}-{stage.name}",
            )
        )
    wanted = {request_id_for(d.document_id) for d in drafts}
    async with Follower(cluster, [INDEXED]) as follower, running(*workers):
        async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
            kb = KbPublisher(pub, project.catalog, project.codec)  # not loaded: every one is sent
            for draft in drafts:
                assert await kb.publish(draft)
        found = await follower.collect(wanted, timeout_s=120)
        assert set(found) >= wanted, f"not indexed: {sorted(wanted - set(found))[:5]}"
    return home
