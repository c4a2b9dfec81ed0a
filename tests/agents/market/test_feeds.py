"""Feed ingestion: parsing RSS, Atom and JSON; new items once across restarts; malformed entries
dead-lettered with their raw text; conditional polling against a real local HTTP feed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents.market.feeds.news import (
    FAILED_TOPIC,
    NEWS_TOPIC,
    Malformed,
    NewsIngester,
    NewsItem,
    parse_feed,
    play_paced,
    poll_feed,
    replay_file,
)
from streams.config import Settings
from streams.ingress.publish import Publisher
from streams.kafka.admin import TopicAdmin
from streams.kafka.connection import Cluster
from streams.runtime.project import Project
from tests.streams.running import REPO, read_topic

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><guid>r1</guid><title>ACME beats estimates</title><link>https://n/r1</link>
<pubDate>Wed, 25 Nov 2026 10:00:00 GMT</pubDate><category>ACME</category></item>
<item><guid>r2</guid><title></title><pubDate>Wed, 25 Nov 2026 10:01:00 GMT</pubDate></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
<entry><id>a1</id><title>Globex cuts guidance</title><updated>2026-11-25T10:00:00Z</updated></entry></feed>"""


def test_rss_atom_and_json_become_items_and_bad_entries_say_why() -> None:
    rss = parse_feed("rss", RSS)
    assert isinstance(rss[0], NewsItem) and rss[0].item_id == "r1" and rss[0].symbols == ("ACME",)
    assert rss[0].published_ms == 1795600800000  # the source's own time, kept
    assert isinstance(rss[1], Malformed) and rss[1].reason == "no title"
    atom = parse_feed("atom", ATOM)
    assert (
        isinstance(atom[0], NewsItem) and atom[0].item_id == "a1" and atom[0].title == "Globex cuts guidance"
    )
    feed = json.dumps({"items": [{"id": "j1", "title": "x", "published_ms": 5_000_000_000_000}, 7]}).encode()
    items = parse_feed("json", feed)
    assert isinstance(items[0], NewsItem) and isinstance(items[1], Malformed)
    [garbage] = parse_feed("junk", b"\x00\x01 not a feed")
    assert isinstance(garbage, Malformed) and "not RSS or Atom" in garbage.reason


@pytest.fixture
async def project(broker_settings: Settings, cluster: Cluster) -> Project:
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": cluster.bootstrap}))
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog.select([NEWS_TOPIC, FAILED_TOPIC]))
    return project


async def test_a_replayed_feed_publishes_each_item_once_even_after_a_restart(project: Project) -> None:
    cluster = project.cluster()
    sample = REPO / "agents" / "data" / "market" / "news.jsonl"
    before = {k for k, _ in await read_topic(cluster, NEWS_TOPIC)}
    for run in range(2):  # the second run is a restarted ingester
        async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
            ingester = NewsIngester(pub, project.catalog, project.codec, str(sample))
            await ingester.load_seen(cluster)
            new = await replay_file(ingester, sample)
            # Other tests publish news of their own: only the sample's ids count here.
            assert new == (len({f"n{i}" for i in range(1, 9)} - before) if run == 0 else 0)
    news = await read_topic(cluster, NEWS_TOPIC)
    keys = [k for k, _ in news]
    assert len(keys) == len(set(keys)) and {"n1", "n8"} <= set(keys)
    item = project.codec.decode("podium.market.NewsItem", dict(news)["n1"])
    assert item["published_ms"] == 1795600000000 and item["symbols"] == ["ACME"]
    failed = [
        project.codec.decode("podium.DeadLetter", v) for _, v in await read_topic(cluster, FAILED_TOPIC)
    ]
    mine = [f for f in failed if f["original_topic"] == str(sample)]
    assert len(mine) == 1 and mine[0]["error_message"] == "no title"
    assert b"an entry without a title" in mine[0]["original_value"]


class FeedServer:
    """A real HTTP feed on a local port that answers If-None-Match with 304."""

    def __init__(self) -> None:
        self.requests = self.not_modified = 0

        async def feed(request: Request) -> Response:
            self.requests += 1
            if request.headers.get("if-none-match") == '"v1"':
                self.not_modified += 1
                return Response(status_code=304)
            return Response(ATOM, media_type="application/atom+xml", headers={"etag": '"v1"'})

        self.server = uvicorn.Server(
            uvicorn.Config(Starlette(routes=[Route("/feed", feed)]), port=0, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}/feed"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    yield FeedServer()


async def test_polling_uses_conditional_requests(
    project: Project, feed_server: FeedServer, tmp_path: Path
) -> None:
    cluster = project.cluster()
    statuses: list[str] = []
    with feed_server as url:
        async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
            ingester = NewsIngester(pub, project.catalog, project.codec, url)
            await ingester.load_seen(cluster)
            await poll_feed(
                ingester,
                url,
                interval_s=0.05,
                rounds=3,
                on_round=lambda _, __, status: statuses.append(status),
            )
    assert feed_server.requests == 3 and feed_server.not_modified == 2
    assert statuses[1:] == ["not modified", "not modified"]
    assert "a1" in {k for k, _ in await read_topic(cluster, NEWS_TOPIC)}


async def test_paced_play_groups_entries_by_source_time_and_untimed_ones_go_with_the_group_before() -> None:
    calls: list[list[tuple[str, int | None]]] = []

    async def ingest(group: list[tuple[str, int | None]]) -> int:
        calls.append(group)
        return len(group)

    entries = [("a", 0), ("b", 0), ("c", 1000), ("bad", None), ("d", 2000)]
    assert await play_paced(entries, lambda e: e[1], 100_000.0, ingest) == 5
    assert calls == [[("a", 0), ("b", 0)], [("c", 1000), ("bad", None)], [("d", 2000)]]
    calls.clear()
    assert await play_paced(entries, lambda e: e[1], None, ingest) == 5
    assert calls == [entries]
