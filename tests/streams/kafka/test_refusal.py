"""A client refused for its security says what is wrong and what to set (real brokers)."""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr

from streams.errors import ConfigError
from streams.kafka.connection import Cluster, KafkaSecurity
from tests.conftest import SecuredBroker

WRONG = "planted-Wr0ng-pa55word-41c2"


def _start(cluster: Cluster, kind: str) -> Any:
    if kind == "producer":
        return cluster.producer(request_timeout_ms=10_000)
    if kind == "consumer":
        return cluster.consumer("anything", request_timeout_ms=10_000)
    return cluster.admin(request_timeout_ms=10_000)


async def _refusal(cluster: Cluster, kind: str = "producer") -> ConfigError:
    client = _start(cluster, kind)
    try:
        with pytest.raises(ConfigError) as refused:
            await client.start()
    finally:
        await (client.close() if kind == "admin" else client.stop())
    assert isinstance(refused.value.__cause__, KafkaConnectionError)
    return refused.value


@pytest.mark.parametrize("kind", ["producer", "consumer", "admin"])
async def test_a_wrong_password_names_the_user_the_mechanism_and_the_settings(
    secured_broker: SecuredBroker, kind: str
) -> None:
    security = dataclasses.replace(secured_broker.cluster.security, sasl_password=SecretStr(WRONG))
    error = await _refusal(Cluster(secured_broker.cluster.bootstrap, security), kind)
    assert str(error).startswith(
        "authentication failed for user podium with SCRAM-SHA-512: "
        "check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"
    )
    assert WRONG not in str(error) and WRONG not in repr(error.__cause__)


async def test_an_unknown_user_is_told_the_same_as_a_wrong_password(secured_broker: SecuredBroker) -> None:
    security = dataclasses.replace(secured_broker.cluster.security, sasl_username="nobody")
    error = await _refusal(Cluster(secured_broker.cluster.bootstrap, security))
    assert "authentication failed for user nobody with SCRAM-SHA-512" in str(error)


async def test_a_plaintext_client_at_the_tls_listener_is_told_to_use_sasl_ssl(
    secured_broker: SecuredBroker,
) -> None:
    error = await _refusal(Cluster(secured_broker.cluster.bootstrap))
    assert "speaks TLS" in str(error) and "KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in str(error)
    assert "set KAFKA_SECURITY_PROTOCOL=SASL_SSL" in str(error) and "KAFKA_SSL_CA_LOCATION" in str(error)


async def test_a_ca_that_did_not_sign_the_broker_certificate_names_the_ca_setting(
    secured_broker: SecuredBroker,
) -> None:
    # The system's CAs: a real CA list, none of which signed the local broker's certificate.
    security = dataclasses.replace(secured_broker.cluster.security, ca_file=None)
    error = await _refusal(Cluster(secured_broker.cluster.bootstrap, security))
    assert "is not signed by a CA this client trusts" in str(error)
    assert "set KAFKA_SSL_CA_LOCATION" in str(error) and "ca.pem" in str(error)


async def test_a_tls_client_at_a_plaintext_listener_is_told_it_does_not_speak_tls(bootstrap: str) -> None:
    ca = None  # the system's CAs: the handshake fails before any certificate is read
    error = await _refusal(Cluster(bootstrap, KafkaSecurity(protocol="SSL", ca_file=ca)))
    assert "TLS handshake failed" in str(error) and "KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in str(error)


async def test_a_broker_that_is_down_keeps_the_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    producer = Cluster(f"127.0.0.1:{port}").producer(request_timeout_ms=2000)
    try:
        with pytest.raises(KafkaConnectionError):
            await producer.start()
    finally:
        await producer.stop()
