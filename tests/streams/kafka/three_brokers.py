"""A real three-node KRaft cluster (each node broker and controller) from the local broker's jars,
for the tests of what a multi-broker cluster changes (replication); stopped when the block ends.

Its brokers default to three replicas and min.insync.replicas=2, as a production cluster would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from aiokafka.errors import KafkaError

from streams.config import Settings
from streams.kafka.broker import LocalBroker, _random_cluster_id
from streams.kafka.connection import Cluster

NODES = (1, 2, 3)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _properties(node: int, ports: dict[int, int], controllers: dict[int, int], data: Path) -> str:
    voters = ",".join(f"{n}@127.0.0.1:{controllers[n]}" for n in NODES)
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node),
        "controller.quorum.voters": voters,
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://127.0.0.1:{ports[node]},CONTROLLER://127.0.0.1:{controllers[node]}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{ports[node]}",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data),
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "3",
        "share.coordinator.state.topic.replication.factor": "3",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _spawn(command: list[str], log: Path | None = None) -> subprocess.Popen[bytes]:
    if log is None:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


@contextlib.asynccontextmanager
async def three_brokers(settings: Settings, root: Path, timeout_s: float = 90.0) -> AsyncIterator[str]:
    """Start the cluster under ``root``; yields its bootstrap address once all three brokers
    are in its metadata."""
    local = LocalBroker(settings)
    libs, java = local.fetch(), local.java()
    base = [java, "-Xmx256m", "-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", f"{libs}/*"]
    listed = _free_ports(6)
    ports, controllers = dict(zip(NODES, listed[:3], strict=True)), dict(zip(NODES, listed[3:], strict=True))
    cluster_id = _random_cluster_id()
    configs = {}
    for node in NODES:
        folder = root / f"node-{node}"
        folder.mkdir(parents=True)
        configs[node] = folder / "server.properties"
        configs[node].write_text(_properties(node, ports, controllers, folder / "data"))
    # The three formats at once: each is a JVM start.
    formats = [
        _spawn([*base, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(configs[n])])
        for n in NODES
    ]
    if any(await asyncio.gather(*(asyncio.to_thread(p.wait) for p in formats))):
        raise RuntimeError(f"kafka-storage format failed for the three-broker cluster under {root}")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for node in NODES:
            processes.append(
                _spawn([*base, "kafka.Kafka", str(configs[node])], root / f"node-{node}" / "out.log")
            )
        bootstrap = ",".join(f"127.0.0.1:{ports[n]}" for n in NODES)
        async with asyncio.timeout(timeout_s):
            while True:
                if any(p.poll() is not None for p in processes):
                    raise RuntimeError(
                        f"a node of the three-broker cluster exited: see {root}/node-*/out.log"
                    )
                admin = Cluster(bootstrap).admin(request_timeout_ms=5000)
                try:
                    await admin.start()
                    if len((await admin.describe_cluster())["brokers"]) == len(NODES):
                        break
                except KafkaError:
                    pass
                finally:
                    await admin.close()
                await asyncio.sleep(0.5)
        yield bootstrap
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
