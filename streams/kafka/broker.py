"""A real Apache Kafka broker on this machine: one KRaft node, jars from Maven Central.

Lifecycle: ``fetch`` (cached per version under ``PODIUM_CACHE_DIR``) -> ``format`` (once per
data directory) -> ``start`` (returns when the broker answers a metadata request) -> ``stop``.
State (ports, pid, version, cluster id) lives in ``<PODIUM_HOME>/broker/state.json`` so that a
restart reuses the same ports and data: topics survive restarts, which replay depends on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streams.config import SUPPORTED_KAFKA_VERSIONS, Settings
from streams.errors import BrokerError, ToolMissing

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


def server_properties(state: BrokerState, data_dir: Path) -> dict[str, str]:
    return {
        **CLUSTER_SETTINGS,
        "controller.quorum.voters": f"1@127.0.0.1:{state.controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{state.port},CONTROLLER://127.0.0.1:{state.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{state.port}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
    }


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

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


async def wait_for_metadata(
    bootstrap: str, timeout_s: float, alive: Callable[[], bool] = lambda: True
) -> list[str]:
    """Return the topic names once the cluster answers a metadata request."""
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
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
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
            return BrokerState(**json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise BrokerError(f"{self.state_file} is damaged ({exc}); remove it and start again") from exc

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
    def _java_cmd(self, *args: str) -> list[str]:
        if _major(self.version) < 4:
            log_opt = f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}"
        else:
            log_opt = f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}"
        return [
            self.java(),
            f"-Xmx{self.settings.broker_heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
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
        props = server_properties(state, self.data_dir)
        path = self.dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
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

    def _check_data_dir(self, previous: BrokerState | None) -> None:
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

    async def start(self, timeout_s: float = 90.0, echo: Callable[[str], None] = print) -> BrokerState:
        if (live := self.running()) is not None:
            await wait_for_metadata(live.bootstrap, timeout_s)
            return live
        await asyncio.to_thread(self.fetch, echo)
        previous = self.state()
        self._check_data_dir(previous)
        port, controller = self._choose_ports(previous)
        if (note := self._move_note(previous, port)) is not None:
            echo(note)
        state = BrokerState(
            version=self.version,
            cluster_id=previous.cluster_id if previous else await asyncio.to_thread(self._random_uuid),
            port=port,
            controller_port=controller,
        )
        config = self._write_config(state)
        if not (self.data_dir / "meta.properties").exists():
            await asyncio.to_thread(self._run_tool, "format", "-t", state.cluster_id, "-c", str(config))
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
            await wait_for_metadata(state.bootstrap, timeout_s, alive=lambda: process.poll() is None)
        except BrokerError as exc:
            self.stop()
            raise BrokerError(
                f"{exc}\nlast lines of {self.log_dir / 'server.log'}:\n{self.tail(20)}"
            ) from exc
        return state

    def _random_uuid(self) -> str:
        return self._run_tool("random-uuid").strip().splitlines()[-1]

    def _run_tool(self, *args: str) -> str:
        result = subprocess.run(
            self._java_cmd("kafka.tools.StorageTool", *args),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(
                f"kafka StorageTool {args[0]} failed: {(result.stdout + result.stderr).strip()[-800:]}"
            )
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
