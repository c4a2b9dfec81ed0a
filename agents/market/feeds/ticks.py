"""Price ticks in: HTTP JSON polling or a WebSocket stream onto ``market.ticks``, keyed by symbol.

A tick is ``{"symbol", "price", "volume"?, "ts"}`` (``ts`` also as ``timestamp`` or
``source_ms``: seconds or milliseconds since the epoch, or ISO-8601), alone or in a list. The
source's timestamp is kept. Per symbol only ticks newer than the last one published go out, so a
polled snapshot that has not moved and a restarted ingester (which reads the last hour of
``market.ticks`` back at start) publish nothing twice. What cannot be read goes to
``market.ingest.failed`` with its raw text, as the news ingester does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import websockets

from agents.market.feeds.news import Malformed, play_paced, send_dead_letter, source_ms
from streams.contracts import Codec, now_ms
from streams.errors import CodecError
from streams.ingress import Publisher
from streams.kafka import Cluster, Position, Selection, TopicReader

__all__ = ["TICKS_TOPIC", "Tick", "TickIngester", "parse_ticks", "poll_ticks", "replay_ticks", "stream_ticks"]

TICKS_TOPIC = "market.ticks"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tick:
    symbol: str
    price: float
    volume: float
    source_ms: int

    def record(self, source: str) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "price": self.price,
            "volume": self.volume,
            "source_ms": self.source_ms,
            "source": source,
            "ingested_ms": now_ms(),
        }


def _tick(entry: Any) -> Tick | Malformed:
    raw = json.dumps(entry, default=str)
    if not isinstance(entry, dict):
        return Malformed(raw, "a tick must be an object")
    symbol = str(entry.get("symbol") or "").strip().upper()
    if not symbol:
        return Malformed(raw, "no symbol")
    try:
        price = float(entry["price"])
        volume = float(entry.get("volume") or 0.0)
    except (KeyError, TypeError, ValueError):
        return Malformed(raw, "price (and volume) must be numbers")
    if not price > 0:
        return Malformed(raw, "price must be positive")
    stamp = source_ms(entry.get("ts") or entry.get("timestamp") or entry.get("source_ms"))
    if stamp is None:
        return Malformed(raw, "no readable timestamp")
    return Tick(symbol, price, volume, stamp)


def parse_ticks(text: str) -> list[Tick | Malformed]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [Malformed(text[:10_000], f"not JSON: {exc}")]
    return [_tick(e) for e in (data if isinstance(data, list) else [data])]


class TickIngester:
    def __init__(self, publisher: Publisher, codec: Codec, source: str, topic: str = TICKS_TOPIC) -> None:
        self._publisher = publisher
        self._codec = codec
        self.source = source
        self.topic = topic
        self.last: dict[str, int] = {}  # symbol -> source time of the newest tick published
        self.published = 0
        self.failed = 0

    async def load_last(self, cluster: Cluster, lookback_ms: int = 3_600_000) -> int:
        """The newest tick per symbol in the last hour of market.ticks (a restart resumes there)."""
        async with TopicReader(cluster) as reader:
            since = Selection(self.topic, start=Position(timestamp_ms=now_ms() - lookback_ms))
            async for record in reader.read(await reader.plan(since)):
                try:
                    tick = self._codec.decode("podium.market.Tick", record.value or b"")
                except CodecError:
                    continue  # not a tick someone else's producer wrote: the windows dead-letter it
                self.last[tick["symbol"]] = max(self.last.get(tick["symbol"], 0), tick["source_ms"])
        return len(self.last)

    async def ingest(self, entries: Sequence[Tick | Malformed]) -> int:
        acks = []
        # The newest tick per symbol moves on only once the batch is acknowledged: a failed send
        # leaves it where it was, so those ticks are not skipped as "already published" later.
        last = dict(self.last)
        for entry in entries:
            if isinstance(entry, Malformed):
                key = hashlib.sha256(f"{self.source}|{entry.raw}".encode()).hexdigest()[:32]
                await send_dead_letter(
                    self._publisher, self._codec, key, f"ingest-prices:{self.source}", self.source, entry
                )
                self.failed += 1
                continue
            if entry.source_ms <= last.get(entry.symbol, -1):
                continue  # not newer than what this symbol already has
            last[entry.symbol] = entry.source_ms
            value = self._codec.encode("podium.market.Tick", entry.record(self.source))
            acks.append(await self._publisher.enqueue(self.topic, entry.symbol.encode(), value, []))
        await asyncio.gather(*acks)  # every tick of the batch acknowledged before the next batch
        self.last = last
        self.published += len(acks)
        return len(acks)


async def poll_ticks(
    ingester: TickIngester,
    url: str,
    *,
    interval_s: float,
    rounds: int | None = None,
    on_round: Callable[[int, int, str], None] | None = None,
) -> None:
    """GET ``url`` every ``interval_s``; failures back off exponentially (up to ten intervals)."""
    failures = done = 0
    async with httpx.AsyncClient(timeout=10.0) as http:
        while rounds is None or done < rounds:
            try:
                response = await http.get(url)
                response.raise_for_status()
                new = await ingester.ingest(parse_ticks(response.text))
                status, failures = f"{new} new", 0
            except httpx.HTTPError as exc:
                failures += 1
                new, status = 0, f"failed ({type(exc).__name__}); retry {failures}"
                log.warning("ticks %s: %s", url, status)
            done += 1
            if on_round is not None:
                on_round(done, new, status)
            if rounds is not None and done >= rounds:
                return
            await asyncio.sleep(min(interval_s * 2 ** min(failures, 10), interval_s * 10))


async def stream_ticks(ingester: TickIngester, url: str, *, max_messages: int | None = None) -> None:
    """Read a WebSocket of ticks; a dropped connection is re-opened with backoff (up to 30 s)."""
    received = failures = 0
    while max_messages is None or received < max_messages:
        try:
            async with websockets.connect(url) as socket:
                failures = 0
                async for message in socket:
                    text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                    await ingester.ingest(parse_ticks(text))
                    received += 1
                    if max_messages is not None and received >= max_messages:
                        return
        except (OSError, websockets.WebSocketException) as exc:
            failures += 1
            log.warning("ticks %s: connection lost (%s); reconnecting", url, exc)
            await asyncio.sleep(min(0.5 * 2**failures, 30.0))


async def replay_ticks(ingester: TickIngester, path: Path, speed: float | None = None) -> int:
    """Play recorded ticks (JSON lines, in source-time order), at once or ``speed`` times faster."""
    text = await asyncio.to_thread(path.read_text)
    entries = [e for line in text.splitlines() if line.strip() for e in parse_ticks(line)]
    return await play_paced(
        entries, lambda e: e.source_ms if isinstance(e, Tick) else None, speed, ingester.ingest
    )
