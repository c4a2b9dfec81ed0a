"""The local broker: restarts keep topics; status and errors say what a person needs to know."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from streams.config import Settings, load_settings
from streams.errors import BrokerError, ToolMissing
from streams.kafka.broker import LocalBroker, wait_for_metadata
from streams.kafka.connection import Cluster
from tests.streams.running import podium


async def test_topics_survive_a_restart_on_the_same_port(
    cluster: Cluster, local_broker: LocalBroker | None, make_topics, unique: str
) -> None:  # type: ignore[no-untyped-def]
    if local_broker is None:
        pytest.skip("an external cluster is not ours to restart")
    await make_topics("topics:\n  {p}.kept: {value: podium.demo.Note}\n", unique)
    broker = local_broker
    assert broker.stop()
    assert broker.running() is None
    state = await broker.start()
    assert state.bootstrap == cluster.bootstrap
    assert f"{unique}.kept" in await wait_for_metadata(state.bootstrap, 30)


def test_status_prints_address_version_data_dir_pid_and_topics(
    cluster: Cluster, broker_settings: Settings, make_topics, unique: str
) -> None:  # type: ignore[no-untyped-def]
    if broker_settings.bootstrap_servers:
        pytest.skip("local broker only")
    result = podium("broker", "status", "--json", env={"PODIUM_HOME": str(broker_settings.home)})
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["running"] and info["bootstrap"] == cluster.bootstrap
    assert info["version"] == broker_settings.kafka_version
    assert info["data_dir"].startswith(str(broker_settings.home)) and info["pid"] > 0
    assert "__consumer_offsets" in info["topics"] or isinstance(info["topics"], list)


def test_a_taken_port_moves_the_broker_elsewhere(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        settings = load_settings(PODIUM_HOME=str(tmp_path), PODIUM_BROKER_PORT=port)
        broker = LocalBroker(settings)
        chosen, controller = broker._choose_ports(None)
    assert chosen != port and controller not in (port, chosen)
    # A fresh data dir says so too, not only a restart.
    assert broker._move_note(None, chosen) == f"port {port} is taken; the broker moves to {chosen}"
    assert broker._move_note(None, port) is None


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    broker = LocalBroker(load_settings(PODIUM_HOME=str(tmp_path)))
    with pytest.raises(ToolMissing, match="java not found: install a JDK"):
        broker.java()


def test_missing_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    broker = LocalBroker(load_settings(PODIUM_HOME=str(tmp_path), PODIUM_CACHE_DIR=str(tmp_path / "cache")))
    with pytest.raises(ToolMissing, match="mvn not found"):
        broker.fetch(echo=lambda _: None)


def test_data_from_a_newer_kafka_is_refused(tmp_path: Path) -> None:
    broker = LocalBroker(load_settings(PODIUM_HOME=str(tmp_path), PODIUM_KAFKA_VERSION="3.9.1"))
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("version=1\n")
    from streams.kafka.broker import BrokerState

    with pytest.raises(BrokerError, match=r"written by Kafka 4\.1\.1.*PODIUM_KAFKA_VERSION=4\.1\.1"):
        broker._check_data_dir(BrokerState("4.1.1", "id", 1, 2))
    with pytest.raises(BrokerError, match=r"state\.json is missing"):
        broker._check_data_dir(None)


def test_commands_without_a_broker_say_how_to_get_one(tmp_path: Path) -> None:
    result = podium("topics", "list", env={"PODIUM_HOME": str(tmp_path), "KAFKA_BOOTSTRAP_SERVERS": ""})
    assert result.returncode == 2
    assert "podium broker start" in result.stderr and "KAFKA_BOOTSTRAP_SERVERS" in result.stderr


def test_a_plaintext_data_dir_cannot_start_secured_and_the_error_says_what_to_do(tmp_path: Path) -> None:
    from streams.kafka.broker import BrokerState

    broker = LocalBroker(load_settings(PODIUM_HOME=str(tmp_path)))
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("version=1\n")
    plaintext = BrokerState(broker.version, "id", 1, 2)
    broker._check_data_dir(plaintext, "plaintext")
    with pytest.raises(BrokerError) as refused:
        broker._check_data_dir(plaintext, "sasl_ssl")
    message = str(refused.value)
    assert "made by a plaintext broker and has no SCRAM users" in message
    assert "podium broker reset --yes" in message and "--security sasl_ssl" in message
    assert "--security plaintext" in message
    # Secured data whose users.json is gone: podium's password cannot be guessed.
    secured = BrokerState(broker.version, "id", 1, 2, security="sasl_ssl", scram_users=["broker", "podium"])
    missing = r"made secured but .*users\.json is missing: restore it, or `podium broker reset --yes`"
    with pytest.raises(BrokerError, match=missing):
        broker._check_data_dir(secured, "sasl_ssl")
    # Secured data started plaintext: it works (ACLs are simply not enforced).
    broker._check_data_dir(secured, "plaintext")


def test_a_new_home_is_plaintext_and_its_clients_need_no_credentials(tmp_path: Path) -> None:
    from streams.kafka.connection import PLAINTEXT

    broker = LocalBroker(load_settings(PODIUM_HOME=str(tmp_path)))
    assert broker.recorded_security() == "plaintext"
    assert broker.client_security("stage-anything") == PLAINTEXT
    with pytest.raises(BrokerError, match="podium broker start"):
        broker.cluster()


def test_a_damaged_users_file_is_named_without_quoting_it(tmp_path: Path) -> None:
    broker = LocalBroker(load_settings(PODIUM_HOME=str(tmp_path)))
    broker.security.dir.mkdir(parents=True)
    broker.security.users_file.write_text('{"users": {"podium": "planted-Half-written-pa55')
    with pytest.raises(BrokerError) as damaged:
        broker.security.client_security()
    assert "users.json is damaged" in str(damaged.value) and "planted" not in str(damaged.value)


def test_the_secured_broker_trusts_no_principal_for_where_it_connects_from(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from streams.kafka.broker import BrokerState, server_properties
    from streams.kafka.broker_security import BrokerSecurity, _Secrets

    material = BrokerSecurity(tmp_path, lambda: "java")
    secrets = _Secrets(SecretStr("ks-pw"), {"broker": SecretStr("broker-pw"), "podium": SecretStr("p")})
    state = BrokerState("4.4.0", "id", 9100, 9101, security="sasl_ssl")
    material._secrets = lambda: secrets  # type: ignore[method-assign]
    props = server_properties(state, tmp_path / "data", material)
    assert props["listeners"] == "SASL_SSL://127.0.0.1:9100,CONTROLLER://127.0.0.1:9101"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:9100"
    # No PLAINTEXT listener at all: nothing authenticates as User:ANONYMOUS, so it is no super user.
    assert "PLAINTEXT" not in props["listener.security.protocol.map"].replace("SASL_PLAINTEXT", "")
    assert props["super.users"] == "User:podium;User:broker"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["ssl.truststore.location"] == str(material.ca_file)
    plaintext = server_properties(BrokerState("4.4.0", "id", 9100, 9101), tmp_path / "data")
    assert plaintext["listeners"].startswith("PLAINTEXT://") and "super.users" not in plaintext


def test_a_cluster_id_is_what_kafka_storage_random_uuid_prints() -> None:
    import base64

    from streams.kafka.broker import _random_cluster_id

    ids = {_random_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_the_formatter_gets_the_scram_users_from_a_private_file_not_its_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stat
    import subprocess

    from streams.kafka.broker import BrokerState

    broker = LocalBroker(load_settings(PODIUM_HOME=str(tmp_path)))
    broker.security.ensure_users(["stage-a"])
    seen: dict[str, object] = {}

    def run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        from_file = Path(next(a for a in command if a.startswith("@"))[1:])
        seen["argv"] = " ".join(command)
        seen["mode"] = stat.S_IMODE(from_file.stat().st_mode)
        seen["lines"] = from_file.read_text().splitlines()
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr("streams.kafka.broker.subprocess.run", run)
    broker._format(BrokerState(broker.version, "id", 1, 2, security="sasl_ssl"), tmp_path / "p", "sasl_ssl")
    assert "saltedpassword" not in str(seen["argv"]) and seen["mode"] == 0o600
    lines = seen["lines"]
    assert isinstance(lines, list) and lines[0::2] == ["--add-scram"] * 3
    assert [line.split(",")[0] for line in lines[1::2]] == [
        "SCRAM-SHA-512=[name=broker",
        "SCRAM-SHA-512=[name=podium",
        "SCRAM-SHA-512=[name=stage-a",
    ]
    assert not (broker.security.dir / "tool.args").exists()
