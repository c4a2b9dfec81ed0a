"""Settings, read once at the entry point into one frozen object and passed down.

Every environment variable podium reads is listed here, and nowhere else reads the environment.

=============================  ===========================================================
``KAFKA_BOOTSTRAP_SERVERS``    An existing cluster (``host:port,...``). When set, every
                               command talks to it and ``podium broker start`` is not needed.
``KAFKA_SECURITY_PROTOCOL``    ``security.protocol`` of every client: ``PLAINTEXT`` | ``SSL`` |
                               ``SASL_PLAINTEXT`` | ``SASL_SSL``. ``PLAINTEXT``
``KAFKA_SASL_MECHANISM``       ``sasl.mechanism``: ``PLAIN`` | ``SCRAM-SHA-256`` |
                               ``SCRAM-SHA-512``
``KAFKA_SASL_USERNAME``        ``sasl.username``
``KAFKA_SASL_PASSWORD``        ``sasl.password`` (``SecretStr``, never printed)
``KAFKA_SSL_CA_LOCATION``      ``ssl.ca.location``: the CA certificates (PEM) that signed the
                               brokers' certificates; unset: the system's CAs
``KAFKA_SSL_CERTIFICATE_LOCATION``  ``ssl.certificate.location``: the client's certificate
                               (PEM), for mutual TLS
``KAFKA_SSL_KEY_LOCATION``     ``ssl.key.location``: the client's private key (PEM)
``KAFKA_SSL_KEY_PASSWORD``     ``ssl.key.password`` (``SecretStr``)
``KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM``  ``https`` (check the broker's host name
                               against its certificate) | ``none``. ``https``
``PODIUM_HOME``                Project data directory (broker data, state, logs). ``./.podium``
``PODIUM_CACHE_DIR``           Where broker jars are cached per version. ``~/.cache/podium``
``PODIUM_KAFKA_VERSION``       Apache Kafka version of the local broker. ``4.4.0``
``PODIUM_BROKER_PORT``         Preferred client port of the local broker (a free one is
                               chosen when it is taken). ``9092``
``PODIUM_BROKER_HEAP``         Java heap of the local broker. ``768m``
``PODIUM_TOPICS``              The topic catalog. ``./topics.yaml``
``PODIUM_SCHEMAS``             The Avro schema directory. ``./schemas``
``PODIUM_MODELS``              The model gateway's providers, prices, policies. ``./models.yaml``
``PODIUM_PIPELINES``           The pipelines' quality gates and windows. ``./pipelines.yaml``
``PODIUM_SCHEMA_REGISTRY_URL`` Use the Confluent wire format through this registry instead
                               of Avro single-object encoding.
``PODIUM_VECTOR_URL``          The vector store of retrieval (agents/rag): unset, LanceDB
                               under ``PODIUM_HOME/vectors``; ``postgresql://...``,
                               PostgreSQL with pgvector. May hold a password: read as
                               ``SecretStr``, never printed.
``PODIUM_API_KEYS_FILE``       The HTTP gateway's API keys (argon2id hashes, never the keys;
                               ``podium keys create|list|revoke`` edit it, ``podium serve``
                               rereads it when it changes). Point it elsewhere to share one
                               file between replicas (a mounted secret).
                               ``PODIUM_HOME/keys.json``
``PODIUM_JWT_JWKS``            Bearer JWTs from an identity provider: its JWKS as a file path
                               or an ``https://`` URL. Unset: API keys only.
``PODIUM_JWT_ISSUER``          The ``iss`` a token must carry (required with a JWKS).
``PODIUM_JWT_AUDIENCE``        The ``aud`` a token must carry (required with a JWKS).
``PODIUM_JWT_TENANT_CLAIM``    The claim holding the caller's tenant. ``tenant``
``PODIUM_JWT_PIPELINES_CLAIM`` The claim listing the pipelines it may call (a list, or names
                               separated by spaces; absent: every pipeline). ``pipelines``
``PODIUM_JWT_ALGORITHMS``      The signature algorithms accepted, comma separated (``none``
                               never is). ``RS256,ES256``
``PODIUM_JWT_RATE``            Each token subject's rate limit, as ``podium keys create
                               --rate`` reads it (``10/s``, ``300/min``). Unset: none.
``PODIUM_JWT_CONCURRENCY``     Each token subject's requests in flight at most. Unset: none.
``JAVA_HOME``                  The JDK that runs the local broker (else ``java`` on PATH).
``PODIUM_OTEL_EXPORTER``       ``kafka`` (spans as Avro on ``podium.telemetry``, no server
                               needed) | ``otlp`` (reads the standard ``OTEL_EXPORTER_OTLP_*``
                               variables) | ``console`` | ``none``. ``kafka``
``PODIUM_TENANT_WEIGHTS``      How every stage of ``podium run`` / ``up`` shares its in-flight
                               slots between tenants (``podium-tenant``): ``gold=3,free=0.5``.
                               A tenant not named weighs what its stage says (1 unless the
                               stage's ``Fairness`` names it); named here, this wins.
``PODIUM_METRICS_PORT``        Prometheus ``/metrics`` of a worker (a free port when taken).
                               ``9464``
``PODIUM_EVENT_LOOP``          The event loop of ``podium run`` / ``up``: ``auto`` (uvloop
                               when ``podium[fast]`` installed it, else asyncio's) |
                               ``uvloop`` (refuses to start without it) | ``asyncio``. ``auto``
``*_KEY``, ``*_TOKEN``         API keys of the model providers, named in models.yaml by
                               ``api_key_env`` (``OPENAI_API_KEY``, ...). Read once into
                               :attr:`Settings.provider_keys` as ``SecretStr``, never printed.
=============================  ===========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from streams.errors import ConfigError

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "PROVIDER_KEY_SUFFIXES",
    "SUPPORTED_KAFKA_VERSIONS",
    "Settings",
    "load_settings",
]

DEFAULT_KAFKA_VERSION = "4.4.0"
# Both run the whole suite; see README "Which Kafka".
SUPPORTED_KAFKA_VERSIONS = ("4.4.0", "4.1.1", "3.9.1")
# The environment variables that may hold a model provider's API key (models.yaml names one
# per provider with ``api_key_env``: OPENAI_API_KEY, ANTHROPIC_API_KEY, ..., HF_TOKEN).
PROVIDER_KEY_SUFFIXES = ("_KEY", "_TOKEN")


def _provider_keys_of_the_environment() -> Mapping[str, SecretStr]:
    return MappingProxyType(
        {name: SecretStr(value) for name, value in os.environ.items() if name.endswith(PROVIDER_KEY_SUFFIXES)}
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    bootstrap_servers: str | None = Field(default=None, alias="KAFKA_BOOTSTRAP_SERVERS")
    # Kafka's client security properties (streams/kafka/connection.py turns them into options).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str | None = Field(default=None, alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(default=None, alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_ca_location: Path | None = Field(default=None, alias="KAFKA_SSL_CA_LOCATION")
    kafka_ssl_certificate_location: Path | None = Field(default=None, alias="KAFKA_SSL_CERTIFICATE_LOCATION")
    kafka_ssl_key_location: Path | None = Field(default=None, alias="KAFKA_SSL_KEY_LOCATION")
    kafka_ssl_key_password: SecretStr | None = Field(default=None, alias="KAFKA_SSL_KEY_PASSWORD")
    kafka_ssl_endpoint_identification_algorithm: Literal["https", "none", ""] = Field(
        default="https", alias="KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM"
    )
    home: Path = Field(default_factory=lambda: Path.cwd() / ".podium", alias="PODIUM_HOME")
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "podium", alias="PODIUM_CACHE_DIR"
    )
    kafka_version: str = Field(default=DEFAULT_KAFKA_VERSION, alias="PODIUM_KAFKA_VERSION")
    broker_port: int = Field(default=9092, alias="PODIUM_BROKER_PORT", ge=1, le=65535)
    broker_heap: str = Field(default="768m", alias="PODIUM_BROKER_HEAP", pattern=r"^\d+[mg]$")
    topics_file: Path = Field(default=Path("topics.yaml"), alias="PODIUM_TOPICS")
    schemas_dir: Path = Field(default=Path("schemas"), alias="PODIUM_SCHEMAS")
    models_file: Path = Field(default=Path("models.yaml"), alias="PODIUM_MODELS")
    pipelines_file: Path = Field(default=Path("pipelines.yaml"), alias="PODIUM_PIPELINES")
    schema_registry_url: str | None = Field(default=None, alias="PODIUM_SCHEMA_REGISTRY_URL")
    # A database URL may hold a password: SecretStr, so it is never printed or dumped.
    vector_url: SecretStr | None = Field(default=None, alias="PODIUM_VECTOR_URL")
    java_home: Path | None = Field(default=None, alias="JAVA_HOME")
    api_keys_file: Path | None = Field(default=None, alias="PODIUM_API_KEYS_FILE")
    jwt_jwks: str | None = Field(default=None, alias="PODIUM_JWT_JWKS")
    jwt_issuer: str | None = Field(default=None, alias="PODIUM_JWT_ISSUER")
    jwt_audience: str | None = Field(default=None, alias="PODIUM_JWT_AUDIENCE")
    jwt_tenant_claim: str = Field(default="tenant", alias="PODIUM_JWT_TENANT_CLAIM", min_length=1)
    jwt_pipelines_claim: str = Field(default="pipelines", alias="PODIUM_JWT_PIPELINES_CLAIM", min_length=1)
    jwt_algorithms: str = Field(default="RS256,ES256", alias="PODIUM_JWT_ALGORITHMS", min_length=1)
    jwt_rate: str | None = Field(default=None, alias="PODIUM_JWT_RATE")
    jwt_concurrency: int | None = Field(default=None, alias="PODIUM_JWT_CONCURRENCY", ge=1)
    otel_exporter: Literal["none", "console", "otlp", "kafka"] = Field(
        default="kafka", alias="PODIUM_OTEL_EXPORTER"
    )
    # The standard OTel variable, with its standard values so a setting made for other OTel
    # programs does not stop podium. Only `otlp` adds the OTLP metric reader (with
    # PODIUM_OTEL_EXPORTER=otlp); any other value exports spans only (Arize Phoenix takes traces
    # and answers metrics with 405). `prometheus` adds nothing: a worker serves /metrics on
    # PODIUM_METRICS_PORT whatever this says; podium has no console metric exporter.
    otel_metrics_exporter: Literal["otlp", "prometheus", "console", "none"] = Field(
        default="otlp", alias="OTEL_METRICS_EXPORTER"
    )
    metrics_port: int = Field(default=9464, alias="PODIUM_METRICS_PORT", ge=0, le=65535)
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(default="auto", alias="PODIUM_EVENT_LOOP")
    # NoDecode: the variable is "gold=3,free=0.5", not JSON (see _tenant_weights).
    tenant_weights: Annotated[Mapping[str, float], NoDecode] = Field(
        default_factory=dict, alias="PODIUM_TENANT_WEIGHTS"
    )
    # A snapshot taken when the settings are read: not a field, so neither printed nor dumped
    # nor parsed from a variable of its own.
    _provider_keys: Mapping[str, SecretStr] = PrivateAttr(default_factory=_provider_keys_of_the_environment)

    @field_validator("tenant_weights", mode="before")
    @classmethod
    def _tenant_weights(cls, value: object) -> object:
        """``tenant=weight`` pairs, comma separated; each weight a positive number."""
        if not isinstance(value, str):
            return value
        weights: dict[str, float] = {}
        for pair in filter(None, (p.strip() for p in value.split(","))):
            tenant, sep, number = (part.strip() for part in pair.partition("="))
            try:
                weight = float(number)
            except ValueError:
                weight = -1.0
            if not sep or not tenant or not 0 < weight < float("inf"):
                raise ValueError(
                    f"'{pair}' is not tenant=weight with a positive weight (e.g. gold=3,free=0.5)"
                )
            if tenant in weights:
                raise ValueError(f"tenant {tenant} is named twice")
            weights[tenant] = weight
        return weights

    @property
    def keys_path(self) -> Path:
        """Where the HTTP gateway's API keys are kept (``PODIUM_API_KEYS_FILE``, else under home)."""
        return self.api_keys_file if self.api_keys_file is not None else self.home / "keys.json"

    @property
    def provider_keys(self) -> Mapping[str, SecretStr]:
        """The ``*_KEY`` and ``*_TOKEN`` variables as they were when the settings were read (read-only)."""
        return self._provider_keys


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; a bad value fails here, naming the variable.

    ``overrides`` use the environment names (``PODIUM_HOME=...``), so tests and callers speak
    the same language as the README.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid podium settings (environment): {problems}") from exc
