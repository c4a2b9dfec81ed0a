"""The local broker's security material: a CA, the broker's certificate and the SCRAM users.

``podium broker start --security sasl_ssl`` makes them once per ``PODIUM_HOME`` under
``<PODIUM_HOME>/broker/security/`` (a 0700 directory; every file 0600) and reuses them on every
start, so keytool runs only the first time:

- ``ca.p12`` the CA's key and certificate (kept to sign a new broker certificate), ``ca.pem``
  the CA's certificate, which clients trust (``KAFKA_SSL_CA_LOCATION``);
- ``broker.p12`` the broker's key and its certificate for ``127.0.0.1`` and ``localhost``,
  signed by the CA (a PKCS12 keystore: Kafka cannot read a key from keytool otherwise);
- ``users.json`` a random password per SCRAM-SHA-512 user: ``podium`` (a super user: admin,
  serve, the CLI), ``broker`` (the broker's own identity, a super user) and ``stage-<name>`` for
  every stage (:func:`~streams.kafka.principals.stage_principal`), plus the keystore's password.

The passwords are :class:`~pydantic.SecretStr` from the moment they are read and leave this
module only in the broker's ``server.properties`` (0600) and a client's
:class:`~streams.kafka.connection.KafkaSecurity`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from pydantic import SecretStr

from streams.errors import BrokerError, ConfigError, ToolMissing
from streams.kafka.connection import KafkaSecurity, SaslMechanism
from streams.kafka.principals import PODIUM, kafka_principal
from streams.kafka.scram import ITERATIONS, salted_password

__all__ = [
    "BROKER_USER",
    "MECHANISM",
    "SECURITY_MODES",
    "BrokerSecurity",
    "SecurityMode",
    "write_private",
]

SecurityMode = Literal["plaintext", "sasl_ssl"]
SECURITY_MODES: tuple[str, ...] = get_args(SecurityMode)
MECHANISM: SaslMechanism = "SCRAM-SHA-512"
#: The broker's own principal: inter-broker traffic and broker -> controller requests.
BROKER_USER = "broker"
# keytool is a JVM: the client compiler alone and the serial collector halve each run's start.
_KEYTOOL_JVM = ("-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC", "-J-Xshare:auto")
_DAYS = "3650"


def _new_password() -> str:
    # URL-safe characters only: the password goes inside JAAS quotes and never needs escaping.
    return secrets.token_urlsafe(24)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only (created 0600, never world-readable first)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a stale one would keep its own mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class _Secrets:
    keystore_password: SecretStr
    users: Mapping[str, SecretStr] = field(repr=False)


class BrokerSecurity:
    """The security material under ``<broker dir>/security``; made by :meth:`ensure`."""

    def __init__(self, broker_dir: Path, java: Callable[[], str]) -> None:
        self.dir = broker_dir / "security"
        self.java = java  # the JDK's java: keytool is found beside it
        self.ca_store = self.dir / "ca.p12"
        self.ca_file = self.dir / "ca.pem"
        self.keystore = self.dir / "broker.p12"
        self.users_file = self.dir / "users.json"

    # -- reading ------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.keystore.exists() and self.ca_file.exists() and self.users_file.exists()

    def _secrets(self) -> _Secrets:
        try:
            raw = json.loads(self.users_file.read_text())
            return _Secrets(
                keystore_password=SecretStr(raw["keystore_password"]),
                users={name: SecretStr(pw) for name, pw in raw["users"].items()},
            )
        except FileNotFoundError:
            raise BrokerError(
                f"{self.users_file} is missing: start the broker secured "
                "(`podium broker start --security sasl_ssl`) to make it"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # The exception's text could quote the file: name the problem, never the content.
            raise BrokerError(
                f"{self.users_file} is damaged ({type(exc).__name__}); "
                "`podium broker reset --yes` makes a new one (and deletes the broker's data)"
            ) from None

    def users(self) -> list[str]:
        return sorted(self._secrets().users)

    def passwords(self, users: Iterable[str]) -> dict[str, SecretStr]:
        found = self._secrets().users
        return {user: found[user] for user in users}

    def client_security(self, user: str = PODIUM) -> KafkaSecurity:
        """How ``user`` reaches the secured local broker: SASL_SSL, SCRAM-SHA-512, our CA."""
        users = self._secrets().users
        if user not in users:
            raise ConfigError(
                f"the local broker has no user {user!r} (it has {', '.join(sorted(users))}); "
                "a stage's user is made when the broker starts with its pipeline registered"
            )
        return KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism=MECHANISM,
            sasl_username=user,
            sasl_password=users[user],
            ca_file=self.ca_file,
        )

    # -- making -------------------------------------------------------------------------
    def ensure(self, users: Iterable[str]) -> list[str]:
        """Make what is missing (certificates once, a password per new user); the new users."""
        new = self.ensure_users(users)
        self.ensure_certificates()
        return new

    def ensure_users(self, users: Iterable[str]) -> list[str]:
        """A password for each user ``users.json`` lacks (and the keystores'); the new users.

        Instant, so the broker's storage can be formatted with them while keytool runs."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        current: dict[str, str] = {}
        keystore_password: str | None = None
        if self.users_file.exists():
            found = self._secrets()
            current = {n: p.get_secret_value() for n, p in found.users.items()}
            keystore_password = found.keystore_password.get_secret_value()
        wanted = [PODIUM, BROKER_USER, *users]
        new = [u for u in dict.fromkeys(wanted) if u not in current]
        if new or keystore_password is None:
            current.update({u: _new_password() for u in new})
            self._save(keystore_password or _new_password(), current)
        return new

    def ensure_certificates(self) -> None:
        """The CA and the broker's certificate, unless both are there (keytool: seconds)."""
        if not (self.keystore.exists() and self.ca_file.exists()):
            self._make_certificates(self._secrets().keystore_password)

    def _save(self, keystore_password: str, users: Mapping[str, str]) -> None:
        body = {"mechanism": MECHANISM, "keystore_password": keystore_password, "users": dict(users)}
        write_private(self.users_file, json.dumps(body, indent=2, sort_keys=True))

    def _keytool(self) -> str:
        sibling = Path(self.java()).resolve().parent / "keytool"
        found = str(sibling) if sibling.exists() else shutil.which("keytool")
        if found is None:
            raise ToolMissing(
                "keytool not found beside java: it comes with the JDK "
                "(Debian: apt install openjdk-17-jdk-headless), or set JAVA_HOME to a JDK"
            )
        return found

    def _make_certificates(self, password: SecretStr) -> None:
        """The CA and the broker's certificate, with keytool: four runs one after another, two
        more beside them."""
        keytool = self._keytool()
        for stale in (self.ca_store, self.keystore, self.ca_file):
            stale.unlink(missing_ok=True)
        # keytool reads the store password from the environment, not from its arguments (which
        # any local user can read in ps).
        env = {**os.environ, "PODIUM_KEYSTORE_PASSWORD": password.get_secret_value()}
        pw = ("-storepass:env", "PODIUM_KEYSTORE_PASSWORD")
        key = ("-keyalg", "EC", "-groupname", "secp256r1", "-validity", _DAYS, "-storetype", "PKCS12")

        def run(*args: str, stdin: str | None = None) -> str:
            result = subprocess.run(
                [keytool, *_KEYTOOL_JVM, *args],
                input=stdin,
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
            if result.returncode != 0:
                output = (result.stdout + result.stderr).strip()
                raise BrokerError(f"keytool {args[0]} failed: {output[-600:]}")
            return result.stdout

        ca = ("-alias", "ca", "-keystore", str(self.ca_store), *pw)
        broker = ("-alias", "broker", "-keystore", str(self.keystore), *pw)
        san = "SAN=dns:localhost,ip:127.0.0.1"
        with ThreadPoolExecutor(2) as pool:
            made_ca = pool.submit(
                run, "-genkeypair", *ca, *key, "-dname", "CN=podium local CA",
                "-ext", "bc:c=ca:true", "-ext", "KeyUsage=keyCertSign,cRLSign",
            )  # fmt: skip
            run("-genkeypair", *broker, *key, "-dname", "CN=localhost", "-ext", san)
            request = run("-certreq", *broker)
            made_ca.result()
            signed = pool.submit(
                run, "-gencert", *ca, "-rfc", "-validity", _DAYS, "-ext", san,
                "-ext", "KeyUsage=digitalSignature", "-ext", "ExtendedKeyUsage=serverAuth",
                stdin=request,
            )  # fmt: skip
            ca_pem = run("-exportcert", *ca, "-rfc")
            certificate = signed.result()
        write_private(self.ca_file, ca_pem)
        chain = self.dir / "broker-chain.pem"
        write_private(chain, certificate + ca_pem)
        # The signed certificate with the CA above it: clients get the whole chain.
        run("-importcert", *broker, "-file", str(chain), "-noprompt")
        chain.unlink()
        for path in (self.ca_store, self.keystore):
            path.chmod(0o600)

    # -- the broker's side --------------------------------------------------------------
    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments creating every user before the first start.

        The salted password is given, not the password (it still lets one log in as the user:
        pass these through :meth:`arguments_file`, not the command line)."""
        arguments: list[str] = []
        for name, password in sorted(self._secrets().users.items()):
            salt = secrets.token_bytes(24)
            salted = salted_password(password, salt)
            b64 = base64.b64encode
            arguments += [
                "--add-scram",
                f"{MECHANISM}=[name={name},iterations={ITERATIONS},"
                f'salt="{b64(salt).decode()}",saltedpassword="{b64(salted).decode()}"]',
            ]
        return arguments

    @contextmanager
    def arguments_file(self, arguments: Sequence[str]) -> Iterator[str]:
        """``@<file>`` for a Kafka tool (argparse4j reads one argument per line of it): the
        arguments stay out of the command line, which any local user can read in ps. The file
        is 0600 and deleted afterwards."""
        path = self.dir / "tool.args"
        write_private(path, "".join(f"{a}\n" for a in arguments))
        try:
            yield f"@{path}"
        finally:
            path.unlink(missing_ok=True)

    def server_properties(self, port: int, controller_port: int) -> dict[str, str]:
        return _secured_properties(self, self._secrets(), port, controller_port)


def _secured_properties(
    material: BrokerSecurity, found: _Secrets, port: int, controller_port: int
) -> dict[str, str]:
    """The listeners, TLS, SASL and authorizer settings of the secured one-node cluster.

    Clients and inter-broker traffic share the one SASL_SSL listener, the broker authenticating
    as ``broker`` like any other user: no principal is trusted for where it connects from (a
    PLAINTEXT inter-broker listener would make ``User:ANONYMOUS`` a super user that any local
    process could reach). The controller listener stays on loopback, but a local process could
    reach it too, so it authenticates with SASL/PLAIN (SCRAM cannot: the controller keeps the
    SCRAM credentials in the metadata log it serves) with the same broker identity and password;
    plain text there is loopback traffic only.
    """
    password = found.users[BROKER_USER].get_secret_value()
    keystore_password = found.keystore_password.get_secret_value()
    scram_login = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER_USER}" password="{password}";'
    )
    plain_login = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{BROKER_USER}" password="{password}" user_{BROKER_USER}="{password}";'
    )
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
        "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": MECHANISM,
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": scram_login,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain_login,
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(material.keystore),
        "ssl.keystore.password": keystore_password,
        "ssl.key.password": keystore_password,
        # Kafka reads a PEM truststore (KIP-651): the same ca.pem the clients trust.
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(material.ca_file),
        "ssl.client.auth": "none",
        "ssl.endpoint.identification.algorithm": "https",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": ";".join(kafka_principal(u) for u in (PODIUM, BROKER_USER)),
        "allow.everyone.if.no.acl.found": "false",
    }
