"""Why a cluster refused a client, in words that say what to set.

aiokafka logs the cause of a failed bootstrap and raises only "Unable to bootstrap from [...]"
(the same words for a broker that is down, a wrong password, a plaintext client at a TLS
listener and a certificate nobody trusts). When a client cannot start, :func:`explain_refusal`
connects once more with the same security, this time keeping the cause, and turns it into a
:class:`~streams.errors.ConfigError` naming the settings to change. Nothing here ever puts a
password into a message: the messages name the user and the mechanism only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import TYPE_CHECKING

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

from streams.errors import ConfigError, PodiumError

if TYPE_CHECKING:
    from streams.kafka.connection import KafkaSecurity

__all__ = ["explain_refusal"]

_TIMEOUT_S = 10.0
# What the local broker's users find beside its CA; other clusters' operators know their own.
_LOCAL_HINT = "(the local broker's CA is PODIUM_HOME/broker/security/ca.pem)"


def _first_address(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    return host.strip("[]"), int(port)


async def _speaks_tls(host: str, port: int) -> bool:
    """Does the listener answer a TLS handshake? (Trusting any certificate: this only asks.)"""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            _, writer = await asyncio.open_connection(host, port, ssl=context)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


async def explain_refusal(bootstrap: str, security: KafkaSecurity) -> PodiumError | None:
    """The reason ``security`` cannot connect to ``bootstrap``; None when it is not one of the
    security mistakes (the broker is down, or it connects now: the caller keeps its own error)."""
    host, port = _first_address(bootstrap)
    where = f"{bootstrap} ({security.describe()})"
    try:
        options = security.client_options()
        conn = await create_conn(host, port, request_timeout_ms=int(_TIMEOUT_S * 1000), **options)
    except SaslAuthenticationFailed:
        return ConfigError(
            f"authentication failed for user {security.sasl_username} with {security.sasl_mechanism}: "
            f"check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD (and KAFKA_SASL_MECHANISM) for {bootstrap}"
        )
    except UnsupportedSaslMechanismError as exc:
        return ConfigError(f"{where}: {exc}; set KAFKA_SASL_MECHANISM to one the cluster enables")
    except ssl.SSLCertVerificationError as exc:
        if exc.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
            return ConfigError(
                f"the certificate of {bootstrap} is not for the name '{host}' ({exc.verify_message}): "
                "connect by a name it holds, or KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM=none "
                "to skip the name check"
            )
        return ConfigError(
            f"the certificate of {bootstrap} is not signed by a CA this client trusts "
            f"({exc.verify_message}): set KAFKA_SSL_CA_LOCATION to the PEM file of the CA that "
            f"signed it {_LOCAL_HINT}"
        )
    except (KafkaError, OSError, TimeoutError):
        # ssl.SSLError is an OSError too: a plaintext listener resets or garbles the handshake.
        if not await _accepts(host, port):
            return None  # nothing listens: the broker is down, not a security mistake
        tls = await _speaks_tls(host, port)
        if tls and not security.tls:
            return ConfigError(
                f"{bootstrap} speaks TLS but this client connects with "
                f"KAFKA_SECURITY_PROTOCOL={security.protocol}: set KAFKA_SECURITY_PROTOCOL=SASL_SSL "
                f"(or SSL) and KAFKA_SSL_CA_LOCATION to the CA that signed its certificate {_LOCAL_HINT}"
            )
        if security.tls and not tls:
            return ConfigError(
                f"{where}: the TLS handshake failed: {bootstrap} does not speak TLS; "
                "use KAFKA_SECURITY_PROTOCOL=PLAINTEXT (or SASL_PLAINTEXT) for a plaintext listener"
            )
        return None
    conn.close()
    return None


async def _accepts(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
