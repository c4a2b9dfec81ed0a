"""SCRAM credentials on a running cluster (KIP-554's AlterUserScramCredentials, API key 51).

``kafka-storage format --add-scram`` creates users only in an empty data directory; a user
needed later (a stage registered after the secured broker was made) is created here, over the
admin client :meth:`~streams.kafka.connection.Cluster.admin` makes, as a super user. aiokafka
has no such request, so its structure is declared below from Kafka's
``AlterUserScramCredentialsRequest.json`` (v0, a flexible version).

The client salts the password (PBKDF2, RFC 5802's Hi): only the salt and the salted password
travel, over the TLS the admin client already uses.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from aiokafka.errors import for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)
from pydantic import SecretStr

from streams.errors import BrokerError
from streams.kafka.connection import Cluster

__all__ = ["ITERATIONS", "salted_password", "upsert_scram_users"]

# Kafka's minimum for SCRAM-SHA-512 is 4096; 8192 is what its own tools use by default.
ITERATIONS = 8192
_SCRAM_SHA_512 = 2  # org.apache.kafka.clients.admin.ScramMechanism


def salted_password(password: SecretStr, salt: bytes, iterations: int = ITERATIONS) -> bytes:
    """SCRAM-SHA-512's SaltedPassword: Hi(password, salt, i) is PBKDF2 with HMAC-SHA-512."""
    return hashlib.pbkdf2_hmac("sha512", password.get_secret_value().encode(), salt, iterations)


class AlterUserScramCredentialsResponse_v0(Response):  # type: ignore[misc]
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest(Request[AlterUserScramCredentialsRequest_v0]):  # type: ignore[misc]
    API_KEY = 51

    def __init__(self, upsertions: list[tuple[Any, ...]]) -> None:
        self._upsertions = upsertions

    def build(
        self, request_struct_class: type[AlterUserScramCredentialsRequest_v0]
    ) -> AlterUserScramCredentialsRequest_v0:
        return request_struct_class([], self._upsertions, {})


async def upsert_scram_users(cluster: Cluster, users: Mapping[str, SecretStr]) -> None:
    """Create (or set the password of) each SCRAM-SHA-512 user; ``cluster`` as a super user."""
    if not users:
        return
    upsertions: list[tuple[Any, ...]] = []
    for name, password in sorted(users.items()):
        salt = secrets.token_bytes(24)
        salted = salted_password(password, salt)
        upsertions.append((name, _SCRAM_SHA_512, ITERATIONS, salt, salted, {}))
    admin = cluster.admin()
    await admin.start()
    try:
        # aiokafka's admin client sends any request it is given; this one has no method of its own.
        response = await admin._send_request(AlterUserScramCredentialsRequest(upsertions))
    finally:
        await admin.close()
    failed = [
        f"{user}: {for_code(code).__name__} {message or ''}".strip()
        for user, code, message, _tags in response.results
        if code != 0
    ]
    if failed:
        raise BrokerError(f"the cluster refused SCRAM users ({'; '.join(failed)})")
