"""Exact-match response cache: same normalised request, same answer, at no cost.

The key is a sha256 of the request with its text whitespace-normalised and its JSON keys
sorted, plus the primary model of the policy (another model may answer differently). Entries
expire after a TTL. :class:`KafkaCacheStore` persists them in the compacted ``podium.cache``
topic, so a restarted worker starts warm.

:class:`CompactedTopic` is the mechanism under it, shared with the semantic cache
(:mod:`agents.gateway.semantic_cache`): one record type on a compacted topic keyed by a string;
save a record, read every record (warm), or read every record and then go on following what
other workers add (:meth:`CompactedTopic.follow`).

An entry holds text only: the gateway neither serves nor stores answers to requests with tools
or a response schema (:func:`cacheable` says why), and their key covers the tools, the tool
choice and the schema all the same, so no two different requests ever share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agents.gateway.providers.protocol import ChatRequest
from streams.contracts import Codec, now_ms
from streams.errors import PodiumError
from streams.ingress import Publisher
from streams.kafka import Cluster, Follower, Selection, TopicReader

__all__ = [
    "CACHE_TOPIC",
    "CacheEntry",
    "CompactedTopic",
    "KafkaCacheStore",
    "ResponseCache",
    "cache_key",
    "cacheable",
]

log = logging.getLogger(__name__)

CACHE_TOPIC = "podium.cache"


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def cache_key(request: ChatRequest, model: str) -> str:
    body: dict[str, Any] = {
        "model": model,
        "messages": request.messages,
        "system": request.system,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    if request.tools or request.tool_choice is not None or request.response_schema is not None:
        # Only when set: the keys of plain requests, and so the entries already stored, stay valid.
        body["tools"] = [[t.name, t.description, t.parameters] for t in request.tools]
        body["tool_choice"] = request.tool_choice
        body["response_schema"] = request.response_schema
    return hashlib.sha256(json.dumps(_normalise(body), sort_keys=True).encode()).hexdigest()


def cacheable(request: ChatRequest) -> bool:
    """Whether answers to this request may be served from, and kept in, the cache. Not with
    tools: an entry is text, so a reply of tool calls would come back without its calls, and
    a tool's result may change from one call to the next. Not with a response schema: the reply
    is only checked after the gateway returns it, so an invalid one would be stored and served
    again to every identical request, each then paying for a repair round."""
    return not request.tools and request.response_schema is None


@dataclass(frozen=True)
class CacheEntry:
    key: str
    text: str
    model: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    created_ms: int
    expires_ms: int


class CacheStore(Protocol):
    async def save(self, entry: CacheEntry) -> None: ...

    async def load(self) -> list[CacheEntry]: ...


class ResponseCache:
    def __init__(self, ttl_s: float, store: CacheStore | None = None) -> None:
        self._ttl_ms = int(ttl_s * 1000)
        self._store = store
        self._entries: dict[str, CacheEntry] = {}

    async def warm(self) -> int:
        """Load what the store kept (newest entry per key wins); returns how many are live."""
        if self._store is not None:
            for entry in await self._store.load():
                self._entries[entry.key] = entry
        now = now_ms()
        self._entries = {k: e for k, e in self._entries.items() if e.expires_ms > now}
        return len(self._entries)

    def get(self, key: str) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires_ms <= now_ms():
            self._entries.pop(key, None)
            return None
        return entry

    async def put(
        self,
        key: str,
        text: str,
        model: str,
        finish_reason: str | None,
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        created = now_ms()
        entry = CacheEntry(
            key, text, model, finish_reason, input_tokens, output_tokens, created, created + self._ttl_ms
        )
        self._entries[key] = entry
        if self._store is not None:
            await self._store.save(entry)


class CompactedTopic:
    """Records of one Avro schema on a compacted topic, keyed by a string (the newest record of
    a key is the one that counts; a null value deletes it)."""

    def __init__(self, cluster: Cluster, publisher: Publisher, codec: Codec, topic: str, schema: str) -> None:
        self.topic = topic
        self._cluster = cluster
        self._publisher = publisher
        self._codec = codec
        self._schema = schema

    async def save(self, key: str, record: dict[str, Any]) -> None:
        """Acknowledged by the broker when this returns."""
        value = self._codec.encode(self._schema, record)
        await self._publisher.send_raw(self.topic, key.encode(), value, [])

    async def load(self) -> list[dict[str, Any]]:
        """Every record written so far, oldest first (tombstones skipped)."""
        records = []
        async with TopicReader(self._cluster) as reader:
            async for record in reader.read(await reader.plan(Selection(self.topic))):
                if record.value is not None and (decoded := self._decoded(record.value)) is not None:
                    records.append(decoded)
        return records

    def _decoded(self, value: bytes) -> dict[str, Any] | None:
        """A record as the cache reads it, or None (logged) for one it cannot: compaction keeps a
        bad record for good, and one must not stop every start of the services that warm from it."""
        try:
            return self._codec.decode(self._schema, value)
        except PodiumError as exc:
            log.warning("passed over a record on %s that does not decode: %s", self.topic, exc)
            return None

    @contextlib.asynccontextmanager
    async def follow(self, apply: Callable[[dict[str, Any]], None]) -> AsyncIterator[int]:
        """Apply every record written so far (oldest first), then yield how many there were;
        while the block runs, a named task applies each new record (this worker's own and the
        others'), with no gap between the two. Leaving the block stops the task; if the task
        fails (the broker is gone), the failure is logged and the block goes on without it."""
        async with Follower(self._cluster, [self.topic], from_beginning=True) as follower:
            ends = await follower.ends()
            count = 0
            while not await follower.reached(ends):
                count += self._apply(await follower.poll(0.2), apply)
            task = asyncio.get_running_loop().create_task(
                self._follow(follower, apply), name=f"follow-{self.topic}"
            )
            task.add_done_callback(self._stopped)
            try:
                yield count
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _follow(self, follower: Follower, apply: Callable[[dict[str, Any]], None]) -> None:
        while True:
            self._apply(await follower.poll(1.0), apply)

    def _apply(self, batches: dict[str, list[Any]], apply: Callable[[dict[str, Any]], None]) -> int:
        count = 0
        for arrivals in batches.values():
            for arrival in arrivals:
                if arrival.value is not None and (decoded := self._decoded(arrival.value)) is not None:
                    try:
                        apply(decoded)
                    except (ValueError, PodiumError) as exc:  # an entry its reader refuses
                        log.warning("passed over a record on %s: %s", self.topic, exc)
                        continue
                    count += 1
        return count

    def _stopped(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("stopped following %s: %s", self.topic, task.exception())


class KafkaCacheStore:
    def __init__(
        self, cluster: Cluster, publisher: Publisher, codec: Codec, topic: str = CACHE_TOPIC
    ) -> None:
        self._topic = CompactedTopic(cluster, publisher, codec, topic, "podium.CachedAnswer")

    async def save(self, entry: CacheEntry) -> None:
        await self._topic.save(entry.key, entry.__dict__)

    async def load(self) -> list[CacheEntry]:
        return [CacheEntry(**record) for record in await self._topic.load()]
