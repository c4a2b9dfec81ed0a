"""Price ticks: parsed with the source's timestamp, newer-only per symbol across restarts,
unreadable ones dead-lettered, and a real local WebSocket stream ingested."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from agents.market.feeds.news import FAILED_TOPIC, Malformed
from agents.market.feeds.ticks import TICKS_TOPIC, Tick, TickIngester, parse_ticks, replay_ticks, stream_ticks
from streams.config import Settings
from streams.ingress.publish import Publisher
from streams.kafka.admin import TopicAdmin
from streams.kafka.connection import Cluster
from streams.runtime.project import Project
from tests.streams.running import REPO, read_topic


def test_ticks_keep_the_source_time_and_bad_ones_say_why() -> None:
    good, iso, *bad = parse_ticks(
        json.dumps(
            [
                {"symbol": "acme", "price": 101.5, "volume": 3, "ts": 1795600000},
                {"symbol": "GLBX", "price": "49.9", "timestamp": "2026-11-25T10:00:00Z"},
                {"symbol": "", "price": 1, "ts": 1},
                {"symbol": "X", "price": "n/a", "ts": 1},
                {"symbol": "X", "price": -1, "ts": 1},
                {"symbol": "X", "price": 1},
                7,
            ]
        )
    )
    assert good == Tick("ACME", 101.5, 3.0, 1795600000000)
    assert iso == Tick("GLBX", 49.9, 0.0, 1795600800000)
    assert [b.reason for b in bad if isinstance(b, Malformed)] == [
        "no symbol",
        "price (and volume) must be numbers",
        "price must be positive",
        "no readable timestamp",
        "a tick must be an object",
    ]
    assert isinstance(parse_ticks("{oops")[0], Malformed)


@pytest.fixture
async def project(broker_settings: Settings, cluster: Cluster) -> Project:
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": cluster.bootstrap}))
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog.select([TICKS_TOPIC, FAILED_TOPIC]))
    return project


async def test_a_replay_publishes_each_tick_once_across_a_restart(
    project: Project, make_topics, unique: str
) -> None:  # type: ignore[no-untyped-def]
    cluster = project.cluster()
    # A topic of this test's own: the demo test replays the same sample to market.ticks.
    await make_topics("topics:\n  {p}.ticks: {value: podium.market.Tick}\n", unique)
    topic = f"{unique}.ticks"
    sample = REPO / "agents" / "data" / "market" / "ticks.jsonl"
    published = []
    for _ in range(2):
        async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
            ingester = TickIngester(pub, project.codec, str(sample), topic=topic)
            await ingester.load_last(cluster)
            published.append(await replay_ticks(ingester, sample))
            assert ingester.failed == 1
    assert published == [480, 0]
    ticks = [
        project.codec.decode("podium.market.Tick", v)
        for k, v in await read_topic(cluster, topic)
        if k == "ACME"
    ]
    assert len(ticks) == 120 and ticks[0]["source_ms"] == 1795600000000
    assert [t["source_ms"] for t in ticks] == sorted(
        t["source_ms"] for t in ticks
    )  # one partition per symbol


async def test_a_websocket_stream_is_ingested(project: Project, unique: str) -> None:
    symbol = unique.upper()
    messages = [
        json.dumps({"symbol": symbol, "price": 10.0, "ts": 1795600000}),
        json.dumps(
            [
                {"symbol": symbol, "price": 10.5, "ts": 1795600001},
                {"symbol": symbol, "price": 9, "ts": 1795600000},
            ]
        ),
        "not json",
    ]

    async def feed(socket: websockets.ServerConnection) -> None:
        for message in messages:
            await socket.send(message)
        await asyncio.sleep(5)

    async with websockets.serve(feed, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub:
            ingester = TickIngester(pub, project.codec, f"ws://127.0.0.1:{port}")
            await asyncio.wait_for(stream_ticks(ingester, f"ws://127.0.0.1:{port}", max_messages=3), 20)
    assert (ingester.published, ingester.failed) == (2, 1)  # the older 9.0 tick was not newer
    mine = [
        project.codec.decode("podium.market.Tick", v)
        for k, v in await read_topic(project.cluster(), TICKS_TOPIC)
        if k == symbol
    ]
    assert [t["price"] for t in mine] == [10.0, 10.5]
