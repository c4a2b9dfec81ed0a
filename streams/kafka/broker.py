"""A real Apache Kafka broker on this machine: one KRaft node, jars from Maven Central.

Lifecycle: ``fetch`` (cached per version under ``PODIUM_CACHE_DIR``) -> ``format`` (once per
data directory) -> ``start`` (returns when the broker answers a metadata request) -> ``stop``.
State (ports, pid, version, cluster id, security mode) lives in ``<PODIUM_HOME>/broker/state.json``
so that a restart reuses the same ports, data and mode: topics survive restarts, which replay
depends on.

Plaintext is the default. ``security="sasl_ssl"`` starts it with one SASL_SSL listener
(SCRAM-SHA-512 users, TLS with a CA of its own, ACLs enforced by KRaft's StandardAuthorizer);
the material is made once per home (:mod:`streams.kafka.broker_security`), and
:meth:`LocalBroker.client_security` is how a client reaches it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aiokafka.errors import KafkaError

from streams.config import SUPPORTED_KAFKA_VERSIONS, Settings
from streams.errors import BrokerError, ConfigError, ToolMissing
from streams.kafka.broker_security import SECURITY_MODES, BrokerSecurity, SecurityMode, write_private
from streams.kafka.connection import PLAINTEXT, Cluster, KafkaSecurity
from streams.kafka.principals import PODIUM
from streams.kafka.scram import upsert_scram_users

__all__ = ["CLUSTER_SETTINGS", "BrokerState", "LocalBroker", "server_properties", "wait_for_metadata"]

_LOG4J1 = """log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
"""

_LOG4J2 = """status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


# Settings of the one-node cluster that docker-compose.yml mirrors (tests keep them in step).
CLUSTER_SETTINGS = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "num.partitions": "3",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
    # Dead letters carry the original bytes: allow records well above 1 MB.
    "message.max.bytes": str(16 * 1024 * 1024),
    "replica.fetch.max.bytes": str(16 * 1024 * 1024),
}


def server_properties(
    state: BrokerState, data_dir: Path, security: BrokerSecurity | None = None
) -> dict[str, str]:
    """The broker's settings; ``security`` (for a ``sasl_ssl`` state) replaces the listeners."""
    properties = {
        **CLUSTER_SETTINGS,
        "controller.quorum.voters": f"1@127.0.0.1:{state.controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{state.port},CONTROLLER://127.0.0.1:{state.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{state.port}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
    }
    if state.security == "sasl_ssl":
        if security is None:
            raise ValueError("a sasl_ssl broker needs its security material")
        properties.update(security.server_properties(state.port, state.controller_port))
    return properties


def _major(version: str) -> int:
    return int(version.split(".")[0])


def _logging_deps(version: str) -> list[tuple[str, str, str]]:
    # kafka_2.13 does not depend on a logging backend: without one the broker logs nothing.
    if _major(version) < 4:
        return [
            ("ch.qos.reload4j", "reload4j", "1.2.25"),
            ("org.slf4j", "slf4j-reload4j", "1.7.36"),
        ]
    return [
        ("org.apache.logging.log4j", "log4j-api", "2.24.3"),
        ("org.apache.logging.log4j", "log4j-core", "2.24.3"),
        ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
    ]


def _random_cluster_id() -> str:
    """What ``kafka-storage random-uuid`` prints, without starting a JVM for it: 16 random bytes
    in URL-safe base64 without padding (Kafka's Uuid), never starting with '-' (Kafka refuses
    those as command-line arguments)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); read its state to be sure.
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1]
        return not status.startswith("Z")
    return True


@dataclass
class BrokerState:
    version: str
    cluster_id: str
    port: int
    controller_port: int
    pid: int | None = None
    #: How clients reach it: "plaintext" or "sasl_ssl" (older state files have no such key).
    security: str = "plaintext"
    #: The SCRAM users the data directory was formatted with (names only, never a password).
    scram_users: list[str] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


async def wait_for_metadata(
    cluster: Cluster | str, timeout_s: float, alive: Callable[[], bool] = lambda: True
) -> list[str]:
    """Return the topic names once the cluster answers a metadata request."""
    if isinstance(cluster, str):
        cluster = Cluster(cluster)
    bootstrap = cluster.bootstrap
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    while time.monotonic() < deadline:
        if not alive():
            raise BrokerError("the broker process exited while starting")
        # A plain TCP probe first: aiokafka logs every refused connection as an error.
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                pass
        except OSError as exc:
            last = exc
            await asyncio.sleep(0.3)
            continue
        admin = cluster.admin(request_timeout_ms=3000)
        try:
            await admin.start()
            topics: list[str] = await admin.list_topics()
            return sorted(topics)
        except (KafkaError, OSError) as exc:
            last = exc
        finally:
            await admin.close()
        await asyncio.sleep(0.3)
    raise BrokerError(f"no metadata answer from {bootstrap} within {timeout_s:.0f}s ({last})")


class LocalBroker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version = settings.kafka_version
        self.dir = settings.home / "broker"
        self.data_dir = self.dir / "data"
        self.log_dir = self.dir / "logs"
        self.state_file = self.dir / "state.json"
        self.libs = settings.cache_dir / f"kafka-{self.version}" / "libs"
        self.security = BrokerSecurity(self.dir, self.java)
        # Held so the child is reaped by stop() in this process (and not reported as leaked).
        self._process: subprocess.Popen[bytes] | None = None

    # -- jars ---------------------------------------------------------------------------
    def java(self) -> str:
        home = self.settings.java_home
        java = (
            str(home / "bin" / "java") if home and (home / "bin" / "java").exists() else shutil.which("java")
        )
        if java is None:
            raise ToolMissing(
                "java not found: install a JDK >= 17 (Debian: apt install openjdk-17-jre-headless) "
                "or set JAVA_HOME"
            )
        return java

    def fetch(self, echo: Callable[[str], None] = print) -> Path:
        """Download the broker's jars from Maven Central once per version."""
        marker = self.libs.parent / ".complete"
        if marker.exists():
            return self.libs
        if self.version not in SUPPORTED_KAFKA_VERSIONS:
            echo(f"note: Kafka {self.version} is not one of the tested versions {SUPPORTED_KAFKA_VERSIONS}")
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ToolMissing(
                "mvn not found: the local broker's jars come from Maven Central through Maven "
                "(Debian: apt install maven), or point KAFKA_BOOTSTRAP_SERVERS at a running cluster"
            )
        deps = [("org.apache.kafka", "kafka_2.13", self.version), *_logging_deps(self.version)]
        dep_xml = "".join(
            f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
            for g, a, v in deps
        )
        pom = (
            '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
            "<groupId>podium</groupId><artifactId>kafka-broker</artifactId><version>1</version>"
            f"<packaging>pom</packaging><dependencies>{dep_xml}</dependencies></project>"
        )
        echo(f"fetching Apache Kafka {self.version} jars from Maven Central into {self.libs} ...")
        staging = Path(tempfile.mkdtemp(prefix="kafka-", dir=self._mkdir(self.libs.parent.parent)))
        try:
            (staging / "pom.xml").write_text(pom)
            result = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={staging / 'libs'}",
                ],
                cwd=staging,
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            if result.returncode != 0:
                tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
                raise BrokerError(f"Maven could not fetch Kafka {self.version}:\n{tail}")
            shutil.rmtree(self.libs.parent, ignore_errors=True)
            self._mkdir(self.libs.parent)
            (staging / "libs").rename(self.libs)
            marker.write_text(self.version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.libs

    # -- state --------------------------------------------------------------------------
    def state(self) -> BrokerState | None:
        try:
            state = BrokerState(**json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise BrokerError(f"{self.state_file} is damaged ({exc}); remove it and start again") from exc
        if state.security not in SECURITY_MODES:
            raise BrokerError(
                f"{self.state_file}: unknown security mode {state.security!r} "
                f"(known: {', '.join(SECURITY_MODES)})"
            )
        return state

    def _save(self, state: BrokerState) -> None:
        self._mkdir(self.dir)
        self.state_file.write_text(json.dumps(asdict(state), indent=2))

    @staticmethod
    def _mkdir(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path

    def running(self) -> BrokerState | None:
        state = self.state()
        if state and state.pid and _pid_alive(state.pid):
            return state
        return None

    # -- start / stop -------------------------------------------------------------------
    def _java_cmd(self, *args: str, tool: bool = False) -> list[str]:
        if _major(self.version) < 4:
            log_opt = f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}"
        else:
            log_opt = f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}"
        # A tool runs for a second: the client compiler alone and the serial collector start
        # it in half the time on a busy machine; the broker gets the long-running settings.
        memory = (
            ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
            if tool
            else [f"-Xmx{self.settings.broker_heap}", "-Xms128m", "-XX:+UseG1GC"]
        )
        return [
            self.java(),
            *memory,
            "-Djava.awt.headless=true",
            log_opt,
            "-cp",
            f"{self.libs}/*",
            *args,
        ]

    def _write_config(self, state: BrokerState) -> Path:
        self._mkdir(self.log_dir)
        self._mkdir(self.data_dir)
        log = self.log_dir / "server.log"
        (self.dir / "log4j.properties").write_text(_LOG4J1.format(log=log))
        (self.dir / "log4j2.properties").write_text(_LOG4J2.format(log=log))
        props = server_properties(state, self.data_dir, self.security)
        path = self.dir / "server.properties"
        # A secured broker's properties hold the keystore's and its own SASL password: 0600.
        write_private(path, "".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _choose_ports(self, previous: BrokerState | None) -> tuple[int, int]:
        wanted = previous.port if previous else self.settings.broker_port
        port = wanted if _port_free(wanted) else _any_free_port()
        wanted_c = previous.controller_port if previous else port + 1
        controller = wanted_c if _port_free(wanted_c) and wanted_c != port else _any_free_port()
        return port, controller

    def _move_note(self, previous: BrokerState | None, port: int) -> str | None:
        """What to tell a person whose broker is not where they expect it."""
        wanted = previous.port if previous else self.settings.broker_port
        return None if port == wanted else f"port {wanted} is taken; the broker moves to {port}"

    def _check_data_dir(self, previous: BrokerState | None, mode: SecurityMode = "plaintext") -> None:
        meta = self.data_dir / "meta.properties"
        if not meta.exists():
            return
        if previous is None:
            raise BrokerError(
                f"{self.data_dir} holds Kafka data but {self.state_file} is missing; "
                "remove the data directory (podium broker reset) to start fresh"
            )
        if _major(previous.version) > _major(self.version):
            raise BrokerError(
                f"{self.data_dir} was written by Kafka {previous.version}, which is newer than "
                f"{self.version}; run with PODIUM_KAFKA_VERSION={previous.version} "
                "or `podium broker reset` to delete the data"
            )
        if mode == "sasl_ssl" and PODIUM not in previous.scram_users:
            # KRaft takes SCRAM users at format time only (before any listener needs them).
            raise BrokerError(
                f"{self.data_dir} was made by a plaintext broker and has no SCRAM users, so a "
                "secured broker could not let anyone in: `podium broker reset --yes` deletes its "
                "topics, then `podium broker start --security sasl_ssl` makes it secured; or keep "
                "it plaintext with `podium broker start --security plaintext`"
            )
        if mode == "sasl_ssl" and not self.security.users_file.exists():
            # Certificates can be made again; the users' passwords are in the data's metadata.
            raise BrokerError(
                f"{self.data_dir} was made secured but {self.security.users_file} is missing: "
                "restore it, or `podium broker reset --yes` to start anew"
            )

    def recorded_security(self) -> SecurityMode:
        """The mode of the last start ("plaintext" for a new home): a start without one keeps it."""
        state = self.state()
        return "sasl_ssl" if state is not None and state.security == "sasl_ssl" else "plaintext"

    def client_security(self, principal: str = PODIUM) -> KafkaSecurity:
        """How ``principal`` (a SCRAM user: ``podium``, or a stage's, see
        :func:`~streams.kafka.principals.stage_principal`) reaches this broker; PLAINTEXT when it
        is not secured."""
        if self.recorded_security() == "plaintext":
            return PLAINTEXT
        return self.security.client_security(principal)

    def cluster(self, principal: str = PODIUM) -> Cluster:
        """The running broker as ``principal`` reaches it."""
        state = self.running()
        if state is None:
            raise BrokerError(
                "the local broker is not running: start it with `podium broker start`, "
                "or set KAFKA_BOOTSTRAP_SERVERS to an existing cluster"
            )
        return Cluster(state.bootstrap, self.client_security(principal))

    async def start(
        self,
        timeout_s: float = 90.0,
        echo: Callable[[str], None] = print,
        security: SecurityMode | None = None,
        users: Sequence[str] = (),
    ) -> BrokerState:
        """Start (or find running) the broker; returns when it answers a metadata request.

        ``security`` None keeps the mode of the last start (plaintext for a new home);
        ``users`` are the SCRAM users a secured broker has besides ``podium`` (the stages')."""
        mode: SecurityMode = security or self.recorded_security()
        if security is not None and security not in SECURITY_MODES:
            raise ConfigError(f"unknown broker security {security!r} (known: {', '.join(SECURITY_MODES)})")
        if (live := self.running()) is not None:
            if live.security == mode:
                await wait_for_metadata(Cluster(live.bootstrap, self.client_security()), timeout_s)
                if mode == "sasl_ssl":
                    await self._add_users(users, echo)
                return self.running() or live
            if mode == "plaintext":
                raise BrokerError(
                    f"the local broker is running {live.security}: stop it (`podium broker stop`) "
                    f"and start it again with --security {mode}"
                )
            await self._secure_plaintext_data(live, users, echo)
        await asyncio.to_thread(self.fetch, echo)
        previous = self.state()
        if (
            mode == "sasl_ssl"
            and previous is not None
            and PODIUM not in previous.scram_users
            and (self.data_dir / "meta.properties").exists()
        ):
            # Plaintext data: its topics are kept, its users made over plaintext first.
            await self._secure_plaintext_data(await self.start(timeout_s, echo, "plaintext"), users, echo)
            previous = self.state()
        self._check_data_dir(previous, mode)
        port, controller = self._choose_ports(previous)
        if (note := self._move_note(previous, port)) is not None:
            echo(note)
        formatted = (self.data_dir / "meta.properties").exists()
        state = BrokerState(
            version=self.version,
            cluster_id=previous.cluster_id if previous else _random_cluster_id(),
            port=port,
            controller_port=controller,
            security=mode,
            scram_users=list(previous.scram_users) if previous and formatted else [],
        )
        if mode == "sasl_ssl":
            self.security.ensure_users(users)
        elif state.scram_users:
            echo("note: plaintext: the broker's SCRAM users and ACLs are kept but not enforced")
        config = self._write_config(state)
        # keytool (the first secured start) and the formatter (the first start) are JVMs that
        # take seconds each and need nothing of each other: run them side by side.
        jobs: list[Awaitable[object]] = []
        if mode == "sasl_ssl":
            jobs.append(asyncio.to_thread(self.security.ensure_certificates))
        if not formatted:
            jobs.append(asyncio.to_thread(self._format, state, config, mode))
        await asyncio.gather(*jobs)
        if not formatted:
            state.scram_users = self.security.users() if mode == "sasl_ssl" else []
        stdout = (self.log_dir / "stdout.log").open("ab")
        # Popen returns at once: the broker is a long-lived child in its own session.
        process = subprocess.Popen(  # noqa: ASYNC220
            self._java_cmd("kafka.Kafka", str(config)),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stdout.close()
        self._process = process
        state.pid = process.pid
        self._save(state)
        try:
            await wait_for_metadata(
                Cluster(state.bootstrap, self.client_security()),
                timeout_s,
                alive=lambda: process.poll() is None,
            )
        except BrokerError as exc:
            self.stop()
            raise BrokerError(
                f"{exc}\nlast lines of {self.log_dir / 'server.log'}:\n{self.tail(20)}"
            ) from exc
        except ConfigError:
            self.stop()  # refused podium's own credentials: users.json is not the data's
            raise
        if mode == "sasl_ssl":
            await self._add_users(users, echo)
        return self.running() or state

    async def add_users(self, users: Sequence[str]) -> list[str]:
        """Give the running secured broker the SCRAM users it lacks; returns those it got.

        A user made after the data directory was formatted (a stage registered since) is
        created on the running cluster, as podium (:func:`~streams.kafka.scram.upsert_scram_users`)."""
        state = self.running()
        if state is None or state.security != "sasl_ssl":
            raise BrokerError(
                "SCRAM users are made on a running secured broker: "
                "start it with `podium broker start --security sasl_ssl`"
            )
        self.security.ensure_users(users)
        missing = [u for u in self.security.users() if u not in state.scram_users]
        if not missing:
            return []
        cluster = Cluster(state.bootstrap, self.client_security())
        await upsert_scram_users(cluster, self.security.passwords(missing))
        # The broker applies the new credentials from the metadata log a moment later.
        await self._until_authenticated(Cluster(state.bootstrap, self.client_security(missing[-1])))
        state.scram_users = sorted({*state.scram_users, *missing})
        self._save(state)
        return missing

    async def _secure_plaintext_data(
        self, live: BrokerState, users: Sequence[str], echo: Callable[[str], None]
    ) -> None:
        """Make the SCRAM users in a running plaintext broker's data, then stop it: it starts
        secured next with its topics and offsets (KRaft keeps the users in the metadata log,
        which a plaintext broker writes like any other)."""
        echo("the broker's data is plaintext: making its SCRAM users over plaintext, once ...")
        self.security.ensure_users(users)
        names = self.security.users()
        await upsert_scram_users(Cluster(live.bootstrap), self.security.passwords(names))
        live.scram_users = names
        self._save(live)
        echo("stopping it to start it secured")
        await asyncio.to_thread(self.stop)

    async def _add_users(self, users: Sequence[str], echo: Callable[[str], None]) -> None:
        added = await self.add_users(users)
        if added:
            echo(f"SCRAM users made on the running broker: {', '.join(added)}")

    @staticmethod
    async def _until_authenticated(cluster: Cluster, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await wait_for_metadata(cluster, 5)
                return
            except ConfigError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    def _format(self, state: BrokerState, config: Path, mode: SecurityMode) -> None:
        base = ("format", "-t", state.cluster_id, "-c", str(config))
        if mode == "plaintext":
            self._run_tool(*base)
            return
        # The SCRAM users go in through a private file: a salted password lets one log in too.
        scram = self.security.scram_arguments()
        with self.security.arguments_file(scram) as from_file:
            self._run_tool(*base, from_file, secrets=scram[1::2])

    def _run_tool(self, *args: str, secrets: Sequence[str] = ()) -> str:
        result = subprocess.run(
            self._java_cmd("kafka.tools.StorageTool", *args, tool=True),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            output = result.stdout + result.stderr
            for secret in secrets:  # never quoted back, should the tool echo an argument
                output = output.replace(secret, "<redacted>")
            raise BrokerError(f"kafka StorageTool {args[0]} failed: {output.strip()[-800:]}")
        return result.stdout

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM (controlled shutdown), SIGKILL after ``timeout_s``. True if one was running."""
        state = self.state()
        if state is None or state.pid is None or not _pid_alive(state.pid):
            return False
        os.killpg(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _pid_alive(state.pid):
            time.sleep(0.2)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(state.pid, os.WNOHANG)
        if _pid_alive(state.pid):
            os.killpg(state.pid, signal.SIGKILL)
        if self._process is not None and self._process.pid == state.pid:
            self._process.wait(timeout=10)
            self._process = None
        state.pid = None
        self._save(state)
        return True

    def reset(self) -> None:
        """Stop and delete all broker data (topics and offsets)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, lines: int = 50) -> str:
        path = self.log_dir / "server.log"
        if not path.exists():
            return "(no log yet)"
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 200_000))
            text = fh.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])
