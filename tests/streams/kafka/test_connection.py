from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.config import load_settings
from streams.errors import ConfigError
from streams.kafka.connection import Cluster, KafkaSecurity

PASSWORD = "planted-Pa55word-7f3a"


def test_sasl_needs_a_mechanism_a_user_and_a_password_and_says_which_variables() -> None:
    with pytest.raises(ConfigError, match=r"KAFKA_SASL_MECHANISM.*KAFKA_SASL_USERNAME.*KAFKA_SASL_PASSWORD"):
        KafkaSecurity(protocol="SASL_SSL", sasl_username="podium")


def test_tls_files_without_tls_and_half_a_client_certificate_are_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ConfigError, match="use SSL or SASL_SSL"):
        KafkaSecurity(protocol="PLAINTEXT", ca_file=ca)
    with pytest.raises(ConfigError, match="both KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION"):
        KafkaSecurity(protocol="SSL", certificate_file=ca)
    with pytest.raises(ConfigError, match=r"KAFKA_SSL_CA_LOCATION=.*no such file"):
        KafkaSecurity(protocol="SSL", ca_file=tmp_path / "missing.pem")


def test_a_ca_file_that_is_not_a_certificate_names_the_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"cannot load the TLS files.*KAFKA_SSL_CA_LOCATION"):
        KafkaSecurity(protocol="SSL", ca_file=ca).client_options()


def test_the_password_reaches_the_client_options_and_nothing_printable() -> None:
    security = KafkaSecurity(
        protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="podium",
        sasl_password=SecretStr(PASSWORD),
    )
    cluster = Cluster("127.0.0.1:9092", security)
    for text in (repr(security), str(security), repr(cluster), str(cluster), cluster.describe()):
        assert PASSWORD not in text
    options = security.client_options()
    assert options["sasl_plain_password"] == PASSWORD
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert "ssl_context" not in options


def test_the_settings_become_the_security_of_every_client(tmp_path: Path) -> None:
    settings = load_settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="svc",
        KAFKA_SASL_PASSWORD=PASSWORD,
        KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM="none",
    )
    assert PASSWORD not in repr(settings)
    security = KafkaSecurity.from_settings(settings)
    assert security.tls and not security.check_hostname
    context = security.client_options()["ssl_context"]
    assert context.check_hostname is False
    with pytest.raises(ConfigError, match="KAFKA_SECURITY_PROTOCOL"):
        load_settings(KAFKA_SECURITY_PROTOCOL="TLS")
