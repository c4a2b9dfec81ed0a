"""The proof on the secured broker (SASL_SSL, SCRAM, StandardAuthorizer, nothing allowed without an
ACL): after ``podium acls apply``, a stage's principal reads its input and writes its outputs, and
is refused (TopicAuthorizationFailedError) where it does not produce, on a topic it does not
consume and in another stage's group; ``--prune`` takes a grant no stage needs away again.

The stage is the demo pipeline's ``stamp`` (demo.notes -> demo.stamped), as the CLI plans it.
The CLI is given the super user's credentials the way an operator gives them for a production
cluster: KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
)

from agents.passthrough import FINISH, STAMP
from streams.contracts.catalog import load_catalog
from streams.errors import BrokerError
from streams.kafka.acls import Acl, AclAdmin, Operation, Permission, ResourceType, plan_acls
from streams.kafka.admin import ClusterFacts, TopicAdmin
from streams.kafka.connection import Cluster
from streams.runtime.access import merge_access, process_access
from tests.streams.running import REPO, podium

if TYPE_CHECKING:
    from tests.conftest import SecuredBroker

CATALOG = load_catalog(REPO / "topics.yaml")
DEMO = CATALOG.select(n for n in CATALOG.names() if n.startswith("demo."))
STAMP_WRITES = ("demo.stamped", "demo.notes.retry", "demo.notes.dlq")


def cli_env(cluster: Cluster, home: Path) -> dict[str, str]:
    """The settings an operator would set to reach ``cluster`` as its principal."""
    security = cluster.security
    env = {
        "PODIUM_HOME": str(home),
        "COLUMNS": "200",
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "KAFKA_SECURITY_PROTOCOL": security.protocol,
    }
    if security.sasl_mechanism is not None:
        assert security.sasl_username and security.sasl_password is not None
        env["KAFKA_SASL_MECHANISM"] = security.sasl_mechanism
        env["KAFKA_SASL_USERNAME"] = security.sasl_username
        env["KAFKA_SASL_PASSWORD"] = security.sasl_password.get_secret_value()
    if security.ca_file is not None:
        env["KAFKA_SSL_CA_LOCATION"] = str(security.ca_file)
    if security.tls:
        env["KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM"] = "https" if security.check_hostname else "none"
    return env


async def create_demo_topics(cluster: Cluster) -> None:
    async with TopicAdmin(cluster) as admin:
        assert await admin.facts() == ClusterFacts(brokers=1, default_replication=1)
        await admin.apply(DEMO)
        assert {t.replicas for t in (await admin.existing(DEMO.names())).values()} == {1}


@asynccontextmanager
async def producing(cluster: Cluster) -> AsyncIterator[AIOKafkaProducer]:
    # As the workers make theirs: acks=all and idempotent (no IDEMPOTENT_WRITE ACL: KIP-679).
    producer = cluster.producer(acks="all", enable_idempotence=True, request_timeout_ms=10000)
    try:
        await producer.start()  # inside: a producer refused its producer id is stopped too
        yield producer
    finally:
        await producer.stop()


@asynccontextmanager
async def consuming(cluster: Cluster, topic: str, group: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = cluster.consumer(topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        await consumer.start()  # inside: one refused its group or topic at start is stopped too
        yield consumer
    finally:
        await consumer.stop()


async def refused_write(cluster: Cluster, topic: str) -> None:
    async with producing(cluster) as producer:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(topic, b"not yours")


async def test_a_stage_principal_may_do_what_its_stage_does_and_is_refused_anything_else(
    secured_broker: SecuredBroker, tmp_path: Path, unique: str
) -> None:
    podium_cluster, stamp = secured_broker.cluster, secured_broker.cluster_for("stamp")
    env = cli_env(podium_cluster, tmp_path)
    await create_demo_topics(podium_cluster)
    async with producing(podium_cluster) as producer:
        await producer.send_and_wait("demo.notes", unique.encode(), key=unique.encode())
    # From no ACL at all (whatever an earlier test left): the broker allows a stage nothing.
    async with AclAdmin(podium_cluster) as admin:
        await admin.apply([], prune=True, scope={"User:stage-stamp"})
    # With WRITE on no topic, not even an idempotent producer id (KIP-679).
    with pytest.raises(ClusterAuthorizationFailedError):
        async with producing(stamp):
            pass

    applied = podium("acls", "apply", "demo", env=env)
    assert applied.returncode == 0, applied.stderr
    for line in (
        "create ALLOW User:stage-stamp READ TOPIC demo.notes",
        "create ALLOW User:stage-stamp READ GROUP podium.stamp",
        "create ALLOW User:stage-stamp WRITE TOPIC demo.stamped",
    ):
        assert line in applied.stdout
    again = podium("acls", "apply", "demo", env=env)
    assert again.returncode == 0, again.stderr
    # The demo's two stages' 12, and podium-worker's on their topics and the podium.* ones.
    stages = [STAMP, FINISH]
    planned = len(plan_acls([*merge_access(stages, CATALOG), process_access(stages, CATALOG)]))
    assert planned > 12
    assert f"0 created, 0 deleted, {planned} already present" in again.stdout
    # The local secured broker's own home: nothing to set, the CLI reaches it as podium.
    local = podium(
        "acls",
        "apply",
        "demo",
        env={"PODIUM_HOME": str(secured_broker.settings.home), "KAFKA_BOOTSTRAP_SERVERS": ""},
    )
    assert local.returncode == 0, local.stderr
    assert f"0 created, 0 deleted, {planned} already present" in local.stdout and "as podium" in local.stdout

    # Its input, in its own group: read and committed.
    async with consuming(stamp, "demo.notes", "podium.stamp") as consumer:
        seen: list[bytes] = []
        while unique.encode() not in seen:
            batch = await consumer.getmany(timeout_ms=1000)
            seen += [r.value for records in batch.values() for r in records if r.value is not None]
        await consumer.commit()
    # Its output, its retry and dead-letter topics: written, acknowledged by all replicas.
    async with producing(stamp) as producer:
        for topic in STAMP_WRITES:
            assert (await producer.send_and_wait(topic, unique.encode())).topic == topic

    # The next stage's output: refused. So is reading its own output, and another stage's group.
    await refused_write(stamp, "demo.done")
    await refused_write(stamp, "demo.notes")  # its input is read-only to it
    with pytest.raises(TopicAuthorizationFailedError):
        async with consuming(stamp, "demo.stamped", "podium.stamp") as consumer:
            await consumer.getmany(timeout_ms=5000)
    with pytest.raises(GroupAuthorizationFailedError):
        async with consuming(stamp, "demo.notes", "podium.finish") as consumer:
            await consumer.getmany(timeout_ms=5000)


async def test_prune_takes_away_a_grant_no_stage_needs_and_leaves_other_stages_alone(
    secured_broker: SecuredBroker, tmp_path: Path, unique: str
) -> None:
    podium_cluster, stamp = secured_broker.cluster, secured_broker.cluster_for("stamp")
    env = cli_env(podium_cluster, tmp_path)
    await create_demo_topics(podium_cluster)
    stale = Acl("User:stage-stamp", ResourceType.TOPIC, "demo.done", Operation.WRITE)
    other = Acl("User:stage-other", ResourceType.TOPIC, "demo.done", Operation.READ)
    # Someone's deliberate DENY on a demo stage: shown, never pruned.
    deny = Acl("User:stage-finish", ResourceType.TOPIC, "demo.notes", Operation.WRITE, Permission.DENY)
    async with AclAdmin(podium_cluster) as admin:
        await admin.apply([stale, other, deny])
    async with producing(stamp) as producer:
        await producer.send_and_wait("demo.done", unique.encode())  # granted by hand, for now

    dry = podium("acls", "apply", "demo", "--prune", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"would delete {stale}" in dry.stdout and str(other) not in dry.stdout
    pruned = podium("acls", "apply", "demo", "--prune", env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert f"delete {stale}" in pruned.stdout
    assert f"{deny} overrides what the plan grants" in " ".join(pruned.stderr.split())

    await refused_write(stamp, "demo.done")
    async with AclAdmin(podium_cluster) as admin:
        have = await admin.existing()
    assert other in have and stale not in have  # the demo's plan does not cover stage-other
    assert deny in have


async def test_a_change_the_broker_has_not_shown_yet_says_to_apply_again(
    secured_broker: SecuredBroker,
) -> None:
    grant = Acl("User:stage-other", ResourceType.TOPIC, "demo.notes", Operation.READ)
    async with AclAdmin(secured_broker.cluster) as admin:
        await admin.apply([], prune=True, scope={grant.principal})
    # No time at all to see it: the created ACL is there, the wait for it is not.
    async with AclAdmin(secured_broker.cluster, visible_within_s=0) as hasty:
        with pytest.raises(BrokerError, match=r"did not show them within 0 s; run `podium acls apply` again"):
            await hasty.apply([grant])
    async with AclAdmin(secured_broker.cluster) as admin:
        again = await admin.apply([grant])
    assert again.present == (grant,) and again.create == ()


def test_topics_apply_reaches_the_secured_broker_as_podium_and_finds_nothing_to_warn_about(
    secured_broker: SecuredBroker,
) -> None:
    env = {"PODIUM_HOME": str(secured_broker.settings.home), "KAFKA_BOOTSTRAP_SERVERS": "", "COLUMNS": "200"}
    dry = podium("topics", "apply", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "warning" not in dry.stderr  # one broker: no replicas to ask for
    assert "topics in topics.yaml" in dry.stdout
    # Whatever other tests of the session created already, the rest would get the cluster's 1.
    creates = [line for line in dry.stdout.splitlines() if line.startswith("would create")]
    assert all(line.endswith("1 replica(s), the cluster's default") for line in creates)


async def test_a_principal_that_may_not_manage_acls_is_told_to_run_as_a_super_user(
    secured_broker: SecuredBroker,
) -> None:
    async with AclAdmin(secured_broker.cluster_for("other")) as admin:
        with pytest.raises(BrokerError, match=r"stage-other may not manage ACLs .* run as a super user"):
            await admin.existing()
