"""How podium reaches a Kafka cluster: its address and its security, and the one place that makes
the aiokafka clients.

Every producer, consumer and admin client podium makes comes from a :class:`Cluster`, so a
secured cluster (TLS, mutual TLS, SASL/PLAIN, SASL/SCRAM) is configured once
(``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``, ``KAFKA_SSL_*`` in :mod:`streams.config`) and
every worker, table, reader, publisher, replay and the HTTP gateway uses it.

The password and the key's password are :class:`~pydantic.SecretStr`: their repr is masked, and
they are unwrapped only here, into the client's own options, never into a message.

A client that cannot start because of its security (a wrong password, a plaintext client at a
TLS listener, a CA that did not sign the broker's certificate) raises a
:class:`~streams.errors.ConfigError` saying what to set (:mod:`streams.kafka.refusal`), instead
of aiokafka's "Unable to bootstrap".
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

from streams.config import Settings
from streams.errors import BrokerError, ConfigError, PodiumError
from streams.kafka.refusal import explain_refusal

__all__ = ["PLAINTEXT", "Cluster", "KafkaSecurity", "Protocol", "SaslMechanism"]

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class KafkaSecurity:
    """Kafka's client security properties (their names in the comments)."""

    protocol: Protocol = "PLAINTEXT"  # security.protocol
    sasl_mechanism: SaslMechanism | None = None  # sasl.mechanism
    sasl_username: str | None = None  # sasl.username
    sasl_password: SecretStr | None = field(default=None, repr=False)  # sasl.password
    ca_file: Path | None = None  # ssl.ca.location (PEM); unset: the system's CAs
    certificate_file: Path | None = None  # ssl.certificate.location: mutual TLS
    key_file: Path | None = None  # ssl.key.location
    key_password: SecretStr | None = field(default=None, repr=False)  # ssl.key.password
    # ssl.endpoint.identification.algorithm: "https" checks the broker's name against its
    # certificate; "" (none) does not.
    check_hostname: bool = True

    def __post_init__(self) -> None:
        sasl = self.protocol.startswith("SASL_")
        if sasl and (self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None):
            raise ConfigError(
                f"KAFKA_SECURITY_PROTOCOL={self.protocol} needs KAFKA_SASL_MECHANISM "
                "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512), KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if not sasl and self.sasl_mechanism is not None:
            raise ConfigError(
                f"KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL={self.protocol} does not "
                "authenticate with SASL: use SASL_SSL (or SASL_PLAINTEXT on a trusted network)"
            )
        tls_files = (self.ca_file, self.certificate_file, self.key_file)
        if not self.tls and any(f is not None for f in tls_files):
            raise ConfigError(
                f"KAFKA_SSL_* files are set but KAFKA_SECURITY_PROTOCOL={self.protocol} does not "
                "use TLS: use SSL or SASL_SSL"
            )
        if (self.certificate_file is None) != (self.key_file is None):
            raise ConfigError(
                "mutual TLS needs both KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION"
            )
        for name, path in (
            ("KAFKA_SSL_CA_LOCATION", self.ca_file),
            ("KAFKA_SSL_CERTIFICATE_LOCATION", self.certificate_file),
            ("KAFKA_SSL_KEY_LOCATION", self.key_file),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(f"{name}={path}: no such file")

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        """The ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*`` and ``KAFKA_SSL_*`` settings."""
        return cls(
            protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
            ca_file=settings.kafka_ssl_ca_location,
            certificate_file=settings.kafka_ssl_certificate_location,
            key_file=settings.kafka_ssl_key_location,
            key_password=settings.kafka_ssl_key_password,
            check_hostname=settings.kafka_ssl_endpoint_identification_algorithm == "https",
        )

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """For messages: what is configured, never a secret."""
        parts: list[str] = [self.protocol]
        if self.sasl_mechanism:
            parts.append(f"{self.sasl_mechanism} as {self.sasl_username}")
        if self.tls:
            parts.append(f"CA {self.ca_file}" if self.ca_file else "system CAs")
            if self.certificate_file:
                parts.append(f"client certificate {self.certificate_file}")
        return ", ".join(parts)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        try:
            context: ssl.SSLContext = create_ssl_context(
                cafile=self.ca_file,
                certfile=self.certificate_file,
                keyfile=self.key_file,
                password=self.key_password.get_secret_value() if self.key_password else None,
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"cannot load the TLS files ({self.describe()}): {exc}; check KAFKA_SSL_CA_LOCATION, "
                "KAFKA_SSL_CERTIFICATE_LOCATION, KAFKA_SSL_KEY_LOCATION and KAFKA_SSL_KEY_PASSWORD"
            ) from None
        if self.ca_file is None:
            context.load_default_certs()
        context.check_hostname = self.check_hostname
        return context

    def client_options(self) -> dict[str, Any]:
        """The aiokafka options of these properties (the only place a password is unwrapped)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl_mechanism is not None:
            assert self.sasl_password is not None  # checked in __post_init__
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options


PLAINTEXT = KafkaSecurity()


@dataclass(frozen=True)
class Cluster:
    """A Kafka cluster as podium reaches it. ``str(cluster)`` is its address, for messages."""

    bootstrap: str
    security: KafkaSecurity = PLAINTEXT

    def __str__(self) -> str:
        return self.bootstrap

    def describe(self) -> str:
        return f"{self.bootstrap} ({self.security.describe()})"

    def producer(self, **options: Any) -> AIOKafkaProducer:
        return _Producer(self, **self._options(options))

    def consumer(self, *topics: str, **options: Any) -> AIOKafkaConsumer:
        return _Consumer(self, *topics, **self._options(options))

    def admin(self, **options: Any) -> AIOKafkaAdminClient:
        return _Admin(self, **self._options(options))

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap, **self.security.client_options(), **options}

    async def refusal(self) -> PodiumError | None:
        """What is wrong with this client's security, if that is why it cannot connect."""
        return await explain_refusal(self.bootstrap, self.security)


async def start_admin(cluster: Cluster, client: AIOKafkaAdminClient, fix: str) -> None:
    """Start an admin client ``cluster`` made; when the cluster cannot be reached, close it and
    raise a :class:`~streams.errors.BrokerError` ending in ``fix`` (what to start or set). A
    refusal of its security keeps the ConfigError that says what to set."""
    try:
        await client.start()
    except BaseException as exc:
        await client.close()
        if not isinstance(exc, KafkaError):
            raise  # a ConfigError saying what security to set, or a cancellation
        raise BrokerError(f"cannot reach Kafka at {cluster.describe()} ({exc}); {fix}") from exc


# The clients Cluster makes: aiokafka's own, whose start() says what to set when the cluster
# refuses this client's security, so every caller of start() gets the explanation.
async def _explained(
    cluster: Cluster, start: Callable[[], Awaitable[None]], close: Callable[[], Awaitable[None]]
) -> None:
    try:
        await start()
    except KafkaConnectionError as exc:
        if (problem := await cluster.refusal()) is None:
            raise
        await close()  # the caller catches PodiumError, not KafkaError: nothing left open
        raise problem from exc


class _Producer(AIOKafkaProducer):  # type: ignore[misc]
    def __init__(self, cluster: Cluster, **options: Any) -> None:
        super().__init__(**options)
        self._cluster = cluster

    async def start(self) -> None:
        await _explained(self._cluster, super().start, self.stop)


class _Consumer(AIOKafkaConsumer):  # type: ignore[misc]
    def __init__(self, cluster: Cluster, *topics: str, **options: Any) -> None:
        super().__init__(*topics, **options)
        self._cluster = cluster

    async def start(self) -> None:
        await _explained(self._cluster, super().start, self.stop)


class _Admin(AIOKafkaAdminClient):  # type: ignore[misc]
    def __init__(self, cluster: Cluster, **options: Any) -> None:
        super().__init__(**options)
        self._cluster = cluster

    async def start(self) -> None:
        await _explained(self._cluster, super().start, self.close)
