"""Real-time feed ingestion: news items from RSS, Atom or JSON onto ``market.news``.

- :func:`parse_feed` (pure) turns a feed body into items and the entries it could not read.
- :class:`NewsIngester` publishes new items keyed by item id, and every malformed entry to
  ``market.ingest.failed`` as a ``podium.DeadLetter`` with its raw text and the reason. Items
  already on ``market.news`` (read back at start) are skipped, so a restart re-publishes nothing.
- :func:`poll_feed` polls a URL with conditional requests (ETag / Last-Modified; a 304 costs
  nothing), retries failures with backoff, and reports a feed that stopped bringing news.
- :func:`replay_file` plays a recorded feed (JSON lines) through the same path, in real time
  or faster, so the demo and the tests exercise what a live feed does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import feedparser
import httpx

from streams.contracts import DEAD_LETTER_SCHEMA, REQUEST_ID, Catalog, Codec, now_ms
from streams.ingress import Publisher
from streams.kafka import Cluster, Selection, TopicReader
from streams.runtime import dead_letter

__all__ = [
    "FAILED_TOPIC",
    "NEWS_TOPIC",
    "Malformed",
    "NewsIngester",
    "NewsItem",
    "parse_feed",
    "parse_recording",
    "play_paced",
    "poll_feed",
    "replay_file",
    "send_dead_letter",
    "source_ms",
]

E = TypeVar("E")
NEWS_TOPIC = "market.news"
FAILED_TOPIC = "market.ingest.failed"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewsItem:
    item_id: str
    source: str
    title: str
    summary: str
    url: str | None
    published_ms: int  # the source's own timestamp, kept as it was
    symbols: tuple[str, ...]

    def record(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "source": self.source,
            "title": self.title,
            "summary": self.summary,
            "url": self.url,
            "published_ms": self.published_ms,
            "symbols": list(self.symbols),
            "ingested_ms": now_ms(),
        }


@dataclass(frozen=True)
class Malformed:
    raw: str
    reason: str


def source_ms(value: Any) -> int | None:
    """Epoch ms from a number (s or ms), an ISO-8601 or an RFC-822 date; None if unreadable."""
    if isinstance(value, int | float):
        return int(value if value > 10**11 else value * 1000)
    if isinstance(value, str) and value:
        from datetime import datetime

        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
        try:
            return int(parsedate_to_datetime(value).timestamp() * 1000)
        except (TypeError, ValueError):
            return None
    return None


def _item(source: str, entry: dict[str, Any]) -> NewsItem | Malformed:
    raw = json.dumps(entry, default=str, sort_keys=True)
    title = str(entry.get("title") or "").strip()
    if not title:
        return Malformed(raw, "no title")
    published = source_ms(entry.get("published_ms") or entry.get("published") or entry.get("updated"))
    if published is None:
        return Malformed(raw, "no readable publication time")
    url = entry.get("link") or entry.get("url")
    item_id = str(entry.get("id") or url or hashlib.sha256(f"{title}|{published}".encode()).hexdigest()[:32])
    symbols = entry.get("symbols") or [t.get("term") for t in entry.get("tags", []) if t.get("term")]
    if not isinstance(symbols, list):
        return Malformed(raw, "symbols must be a list")
    summary = str(entry.get("summary") or entry.get("description") or "")
    return NewsItem(item_id, source, title, summary, url, published, tuple(str(s).upper() for s in symbols))


def parse_feed(source: str, body: bytes) -> list[NewsItem | Malformed]:
    """A JSON feed (a list, or ``{"items": [...]}``), else RSS or Atom (feedparser)."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return [Malformed(text[:10_000], f"not JSON: {exc}")]
        entries = data.get("items", []) if isinstance(data, dict) else data
        return [
            _item(source, e)
            if isinstance(e, dict)
            else Malformed(json.dumps(e), "an entry must be an object")
            for e in entries
        ]
    parsed = feedparser.parse(body)
    if parsed.bozo and not parsed.entries:
        return [Malformed(text[:10_000], f"not RSS or Atom: {parsed.get('bozo_exception')}")]
    return [_item(source, dict(e)) for e in parsed.entries]


class NewsIngester:
    """Publishes what a feed brings: new items once, malformed entries to the failed topic."""

    def __init__(self, publisher: Publisher, catalog: Catalog, codec: Codec, source: str) -> None:
        self._publisher = publisher
        self._codec = codec
        self._catalog = catalog
        self.source = source
        self.seen: set[str] = set()
        self.rejected: set[str] = set()  # keys of malformed entries already dead-lettered
        self.published = 0
        self.failed = 0

    async def load_seen(self, cluster: Cluster) -> int:
        """Item ids already on market.news (and malformed entries already dead-lettered), so a
        restarted ingester publishes nothing twice."""
        for topic, keys in ((NEWS_TOPIC, self.seen), (FAILED_TOPIC, self.rejected)):
            # A reader per topic: an aiokafka consumer only refreshes metadata for the topics it
            # was already given, so a second topic on the same reader may look missing.
            async with TopicReader(cluster) as reader:
                async for record in reader.read(await reader.plan(Selection(topic))):
                    if record.key is not None:
                        keys.add(record.key.decode("utf-8", "replace"))
        return len(self.seen)

    async def ingest(self, entries: Sequence[NewsItem | Malformed]) -> int:
        new = 0
        for entry in entries:
            if isinstance(entry, Malformed):
                await self._reject(entry)
                continue
            if entry.item_id in self.seen:
                continue
            await self._publisher.publish(NEWS_TOPIC, entry.record(), request_id=entry.item_id)
            self.seen.add(entry.item_id)
            new += 1
        self.published += new
        return new

    async def _reject(self, entry: Malformed) -> None:
        key = hashlib.sha256(f"{self.source}|{entry.raw}".encode()).hexdigest()[:32]
        if key in self.rejected:
            return
        await send_dead_letter(
            self._publisher, self._codec, key, f"ingest-news:{self.source}", self.source, entry
        )
        self.rejected.add(key)
        self.failed += 1


async def send_dead_letter(
    publisher: Publisher, codec: Codec, key: str, stage: str, source: str, entry: Malformed
) -> None:
    """A feed entry that could not be read, as a ``podium.DeadLetter`` on the failed topic: its
    raw text in ``original_value``, the feed in ``original_topic``, the reason."""
    letter = dead_letter(
        stage=stage,
        error_type="malformed_item",
        reason=entry.reason,
        origin=(source, -1, -1, now_ms()),
        key=None,
        value=entry.raw.encode(),
        attempts=0,
        request_id=key,
        trace_id=None,
    )
    value = codec.encode(DEAD_LETTER_SCHEMA, letter)
    await publisher.send_raw(FAILED_TOPIC, key.encode(), value, [(REQUEST_ID, key.encode())])
    log.warning("feed %s: malformed entry sent to %s: %s", source, FAILED_TOPIC, entry.reason)


async def poll_feed(
    ingester: NewsIngester,
    url: str,
    *,
    interval_s: float,
    rounds: int | None = None,
    stalled_after: int = 10,
    client: httpx.AsyncClient | None = None,
    on_round: Callable[[int, int, str], None] | None = None,
) -> None:
    """Poll ``url`` every ``interval_s`` (``rounds`` times, or until cancelled). Failures are
    retried with exponential backoff up to ten intervals; ``stalled_after`` polls in a row with
    nothing new are reported once as a stalled feed."""
    etag: str | None = None
    modified: str | None = None
    quiet = failures = done = 0
    owned = client is None
    http = client or httpx.AsyncClient(timeout=10.0, follow_redirects=True)
    try:
        while rounds is None or done < rounds:
            headers = {k: v for k, v in (("If-None-Match", etag), ("If-Modified-Since", modified)) if v}
            status, new = "", 0
            try:
                response = await http.get(url, headers=headers)
                if response.status_code == 304:
                    status = "not modified"
                else:
                    response.raise_for_status()
                    etag = response.headers.get("etag") or etag
                    modified = response.headers.get("last-modified") or modified
                    new = await ingester.ingest(parse_feed(ingester.source, response.content))
                    status = f"{new} new"
                failures = 0
            except httpx.HTTPError as exc:
                failures += 1
                status = f"failed ({type(exc).__name__}: {exc}); retry {failures}"
                log.warning("feed %s: %s", url, status)
            quiet = 0 if new else quiet + 1
            if quiet == stalled_after:
                log.warning("feed %s stalled: nothing new in %d polls", url, quiet)
            done += 1
            if on_round is not None:
                on_round(done, new, status)
            if rounds is not None and done >= rounds:
                break
            await asyncio.sleep(min(interval_s * 2 ** min(failures, 10), interval_s * 10))
    finally:
        if owned:
            await http.aclose()


def parse_recording(source: str, text: str) -> list[NewsItem | Malformed]:
    """A recorded feed: one JSON entry per line."""
    entries: list[NewsItem | Malformed] = []
    for line in (line for line in text.splitlines() if line.strip()):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            entries.append(Malformed(line, f"not JSON: {exc}"))
            continue
        entries.append(_item(source, entry) if isinstance(entry, dict) else Malformed(line, "not an object"))
    return entries


async def play_paced(
    entries: Sequence[E],
    time_of: Callable[[E], int | None],
    speed: float | None,
    ingest: Callable[[list[E]], Awaitable[int]],
) -> int:
    """Hand recorded ``entries`` (in source-time order) to ``ingest``: all at once when
    ``speed`` is None, else each group of one source time when its moment comes, the recorded
    gaps divided by ``speed`` (on a fixed schedule, so slow ingests do not add up). An entry
    without a time (a malformed one) goes with the group before it. Returns the sum of what
    ``ingest`` returned (the new entries)."""
    if speed is None:
        return await ingest(list(entries))
    groups: list[tuple[int | None, list[E]]] = []
    for entry in entries:
        at = time_of(entry)
        if groups and (at is None or at == groups[-1][0]):
            groups[-1][1].append(entry)
        else:
            groups.append((at, [entry]))
    first = next((at for at, _ in groups if at is not None), 0)
    started, new = time.monotonic(), 0
    for at, group in groups:
        if at is not None:
            await asyncio.sleep(max(0.0, (at - first) / 1000 / speed - (time.monotonic() - started)))
        new += await ingest(group)
    return new


async def replay_file(ingester: NewsIngester, path: Path, speed: float | None = None) -> int:
    """Play a recorded feed (one JSON entry per line, ordered by ``published_ms``): all at once,
    or spaced as recorded divided by ``speed``. Returns how many items were new."""
    text = await asyncio.to_thread(path.read_text)
    entries = parse_recording(ingester.source, text)
    started = time.monotonic()
    new = await play_paced(
        entries, lambda e: e.published_ms if isinstance(e, NewsItem) else None, speed, ingester.ingest
    )
    log.info("replayed %s in %.1fs", path, time.monotonic() - started)
    return new
