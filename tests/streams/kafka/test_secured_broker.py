"""`podium broker start --security sasl_ssl`: the real broker, TLS + SCRAM-SHA-512 + ACLs."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError

from streams.config import Settings
from streams.errors import ConfigError
from streams.kafka.acls import AclAdmin
from streams.kafka.broker import LocalBroker, wait_for_metadata
from streams.kafka.connection import Cluster
from streams.kafka.principals import kafka_principal, stage_principal
from streams.runtime.project import Project
from streams.telemetry.spanlog import TELEMETRY_TOPIC
from tests.conftest import SecuredBroker, _free_port
from tests.streams.running import podium, read_topic, start_worker, wait_for


async def _create(secured: SecuredBroker, topic: str) -> None:
    admin = secured.cluster.admin()
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()


async def test_podium_publishes_and_consumes_a_record_through_tls_and_scram(
    secured_broker: SecuredBroker, unique: str
) -> None:
    topic = f"{unique}.secured"
    await _create(secured_broker, topic)
    # The project finds the secured broker and its credentials by itself: nothing is set.
    cluster = Project(secured_broker.settings).cluster()
    assert cluster.security.protocol == "SASL_SSL" and cluster.security.sasl_username == "podium"
    producer = cluster.producer()
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"over tls", key=b"k")
    finally:
        await producer.stop()
    consumer = cluster.consumer(topic, group_id=f"{unique}-g", auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k", b"over tls")


async def test_a_stage_user_without_acls_is_refused_the_authorizer_is_on(
    secured_broker: SecuredBroker, unique: str
) -> None:
    topic = f"{unique}.guarded"
    await _create(secured_broker, topic)
    producer = secured_broker.cluster_for("writer").producer(request_timeout_ms=10_000)
    await producer.start()  # authenticated: stage-writer is a user
    try:
        with pytest.raises(KafkaError) as refused:
            await producer.send_and_wait(topic, b"no acl")
    finally:
        await producer.stop()
    assert "Authorization" in type(refused.value).__name__


def test_the_material_is_private_and_made_once_per_home(secured_broker: SecuredBroker) -> None:
    material = secured_broker.broker.security
    assert stat.S_IMODE(material.dir.stat().st_mode) == 0o700
    files = sorted(p.name for p in material.dir.iterdir())
    assert files == ["broker.p12", "ca.p12", "ca.pem", "users.json"]
    for path in material.dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((secured_broker.broker.dir / "server.properties").stat().st_mode) == 0o600
    before = {p.name: p.read_bytes() for p in material.dir.iterdir()}
    # A second start finds everything: no keytool run, no new password.
    assert material.ensure(["stage-stamp"]) == []
    assert {p.name: p.read_bytes() for p in material.dir.iterdir()} == before
    state = secured_broker.broker.state()
    assert state is not None and state.security == "sasl_ssl"
    assert {"podium", "broker", "stage-stamp", "stage-writer"} <= set(state.scram_users)


async def test_a_stage_added_after_the_broker_was_made_gets_a_user_that_authenticates(
    secured_broker: SecuredBroker, unique: str
) -> None:
    with pytest.raises(ConfigError, match=f"no user 'stage-{unique}'"):
        secured_broker.cluster_for(unique)
    await secured_broker.add_stages(unique)
    await secured_broker.add_stages(unique)  # a second time: nothing to do
    admin = secured_broker.cluster_for(unique).admin()
    await admin.start()  # authenticated; what it may do is for ACLs to say
    await admin.close()
    state = secured_broker.broker.state()
    assert state is not None and f"stage-{unique}" in state.scram_users


def test_broker_start_secured_gives_every_registered_stage_a_user_and_refuses_a_mode_switch(
    secured_broker: SecuredBroker,
) -> None:
    env = {"PODIUM_HOME": str(secured_broker.settings.home), "KAFKA_BOOTSTRAP_SERVERS": ""}
    # The broker runs already: the command finds it and makes the users podium's stages lack.
    result = podium("broker", "start", "--security", "sasl_ssl", env=env)
    assert result.returncode == 0, result.stderr
    assert "secured: SASL_SSL, SCRAM-SHA-512, ACLs enforced" in result.stdout
    state = secured_broker.broker.state()
    assert state is not None
    wanted = {"stage-classify", "stage-generate", "stage-screen", "stage-billing-agent"}
    assert wanted <= set(state.scram_users)
    switched = podium("broker", "start", "--security", "plaintext", env=env)
    assert switched.returncode == 2
    assert "running sasl_ssl" in switched.stderr and "podium broker stop" in switched.stderr


async def test_a_plaintext_broker_started_secured_keeps_its_topics(
    tmp_path: Path, unique: str, broker_settings: Settings
) -> None:
    settings = broker_settings.model_copy(
        update={"home": tmp_path, "broker_port": _free_port(), "bootstrap_servers": None}
    )
    broker = LocalBroker(settings)
    notes: list[str] = []
    try:
        plain = await broker.start(timeout_s=120, echo=notes.append)
        assert plain.security == "plaintext"
        admin = Cluster(plain.bootstrap).admin()
        await admin.start()
        try:
            await admin.create_topics([NewTopic(f"{unique}.kept", 1, 1)])
        finally:
            await admin.close()
        secured = await broker.start(timeout_s=120, echo=notes.append, security="sasl_ssl", users=["stage-x"])
        assert secured.security == "sasl_ssl" and {"podium", "stage-x"} <= set(secured.scram_users)
        assert f"{unique}.kept" in await wait_for_metadata(broker.cluster(), 30)
        assert any("making its SCRAM users over plaintext" in note for note in notes)
        assert broker.recorded_security() == "sasl_ssl"
    finally:
        broker.stop()


async def test_the_demo_pipeline_runs_end_to_end_on_the_secured_broker_with_nothing_set(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    """`podium topics apply`, `podium acls apply demo`, `podium run demo` and `podium publish
    --wait` as a user runs them in a secured home: every client finds the broker, its CA and its
    password by itself; each stage's consumer and producer run as the stage's own principal, so
    a worker started before its ACLs exist is refused with what to apply; the spans they export
    to podium.telemetry carry no password."""
    home = str(secured_broker.settings.home)
    env = {"PODIUM_HOME": home, "KAFKA_BOOTSTRAP_SERVERS": "", "PODIUM_OTEL_EXPORTER": "kafka"}
    applied = podium("topics", "apply", env=env)
    assert applied.returncode == 0, applied.stderr
    # No grants for the demo's stages (another test may have made them): as podium, the super
    # user, the worker would run anyway; as its stages' principals it must not.
    demo = {stage_principal("stamp"), stage_principal("finish")}
    async with AclAdmin(secured_broker.cluster) as acls:
        await acls.apply([], prune=True, scope={kafka_principal(p) for p in demo})
    refused = tmp_path / "refused.log"
    early = start_worker(secured_broker.cluster, refused, "demo", env=env)
    assert early.wait(timeout=120) != 0
    said = refused.read_text(errors="replace")
    assert "refused stage-" in said and "podium acls apply" in said, said[-2000:]
    granted = podium("acls", "apply", "demo", env=env)
    assert granted.returncode == 0, granted.stderr
    log = tmp_path / "demo.log"
    worker = start_worker(secured_broker.cluster, log, "demo", env=env)
    try:
        wait_for(log, "podium: running", timeout_s=120)
        note = {"text": "over tls", "hops": [], "priority": 1}
        done = podium("publish", "demo.notes", "--json", json.dumps(note), "--wait", env=env)
        assert done.returncode == 0, done.stderr + log.read_text(errors="replace")[-2000:]
        ended = json.loads(done.stdout)
        assert ended["topic"] == "demo.done" and ended["value"]["hops"] == ["stamp", "finish"]
        spans: list[bytes] = []
        for _ in range(40):  # the worker exports its spans every half second
            spans = [value for _key, value in await read_topic(secured_broker.cluster, TELEMETRY_TOPIC)]
            if any(ended["request_id"].encode() in value for value in spans):
                break
            await asyncio.sleep(0.5)
        assert any(ended["request_id"].encode() in value for value in spans)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    stored = json.loads(secured_broker.broker.security.users_file.read_text())
    secrets = [*stored["users"].values(), stored["keystore_password"]]
    exported = b"\n".join(spans) + log.read_bytes() + (done.stdout + done.stderr).encode()
    for secret in secrets:
        assert secret.encode() not in exported
