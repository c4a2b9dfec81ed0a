"""Planted secrets (the broker's SCRAM passwords, a wrong password, a client key's password) never
reach a log record (DEBUG, aiokafka's loggers included), `podium broker status`, or an error."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from streams.errors import ConfigError
from streams.kafka.connection import Cluster
from tests.conftest import SecuredBroker
from tests.streams.running import podium

WRONG = "planted-Wr0ng-pa55word-77e1"
KEY_PASSWORD = "planted-key-Pa55word-5d0c"


def _client_certificate(folder: Path) -> tuple[Path, Path]:
    """A client certificate whose key is encrypted with the planted key password."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podium-client")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "client.pem", folder / "client.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    return cert_file, key_file


async def test_planted_passwords_reach_no_log_status_or_error(
    secured_broker: SecuredBroker, caplog: pytest.LogCaptureFixture, tmp_path: Path, unique: str
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    stored = json.loads(secured_broker.broker.security.users_file.read_text())
    planted = [*stored["users"].values(), stored["keystore_password"], WRONG, KEY_PASSWORD]
    assert all(len(secret) >= 20 for secret in planted)
    seen: list[str] = []

    # A round trip as podium with a client certificate whose key needs the planted password.
    cert_file, key_file = _client_certificate(tmp_path)
    security = dataclasses.replace(
        secured_broker.cluster.security,
        certificate_file=cert_file,
        key_file=key_file,
        key_password=SecretStr(KEY_PASSWORD),
    )
    cluster = Cluster(secured_broker.cluster.bootstrap, security)
    seen += [repr(security), str(cluster), cluster.describe(), repr(secured_broker.broker.state())]
    topic = f"{unique}.planted"
    admin = cluster.admin()
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = cluster.producer()
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"x")
    finally:
        await producer.stop()
    consumer = cluster.consumer(topic, group_id=f"{unique}-g", auto_offset_reset="earliest")
    await consumer.start()
    try:
        assert (await asyncio.wait_for(consumer.getone(), 30)).value == b"x"
    finally:
        await consumer.stop()

    # A wrong SCRAM password and a wrong key password: their errors, chained causes included.
    wrong = Cluster(cluster.bootstrap, dataclasses.replace(security, sasl_password=SecretStr(WRONG)))
    failing = wrong.producer(request_timeout_ms=10_000)
    with pytest.raises(ConfigError) as refused:
        await failing.start()
    await failing.stop()
    seen += [str(refused.value), repr(refused.value), repr(refused.value.__cause__)]
    bad_key = dataclasses.replace(security, key_password=SecretStr(WRONG))
    with pytest.raises(ConfigError) as unreadable:
        bad_key.client_options()
    seen += [str(unreadable.value), repr(unreadable.value)]

    # What `podium broker status` prints of the secured broker.
    env = {"PODIUM_HOME": str(secured_broker.settings.home), "KAFKA_BOOTSTRAP_SERVERS": ""}
    for args in (("broker", "status", "--json"), ("broker", "status")):
        result = podium(*args, env=env)
        assert result.returncode == 0, result.stderr
        seen += [result.stdout, result.stderr]
    status = json.loads(seen[-4])
    assert status["security"] == "sasl_ssl" and topic in status["topics"]
    assert "podium" in status["users"] and status["ca_file"].endswith("ca.pem")

    # The capture did hold aiokafka's DEBUG records (the check below is not of an empty log).
    assert any(r.name.startswith("aiokafka") and r.levelno == logging.DEBUG for r in caplog.records)
    assert any("authentication" in r.getMessage().lower() for r in caplog.records)
    seen += [caplog.text, *(str(r.args) for r in caplog.records)]
    text = "\n".join(seen)
    for secret in planted:
        assert secret not in text
