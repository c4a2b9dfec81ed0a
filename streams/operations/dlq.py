"""``podium dlq``: what is in the dead-letter topics, and sending it back once the cause is fixed.

A redrive re-publishes a dead letter's original key and bytes to the topic it came from (a
``<topic>.retry`` origin goes back to ``<topic>``), with the attempt counters reset and a
``podium-redrive-of`` header. Each redrive is written to the compacted ``podium.redrives``
ledger *after* the produce is acknowledged; a record already in the ledger is never sent again,
so running the same redrive twice sends nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord

from streams.contracts.catalog import RETRY_SUFFIX, Catalog
from streams.contracts.codec import Codec
from streams.contracts.headers import ATTEMPT, NOT_BEFORE, ROUND, now_ms
from streams.errors import PodiumError
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.reading import Position, Selection, TopicReader

__all__ = [
    "LEDGER_TOPIC",
    "REDRIVE_OF",
    "DeadLetterGroup",
    "read_dead_letters",
    "redrive",
    "summarize",
]

LEDGER_TOPIC = "podium.redrives"
REDRIVE_OF = "podium-redrive-of"
_RESET = {ATTEMPT, ROUND, NOT_BEFORE, REDRIVE_OF}


@dataclass(frozen=True)
class DeadLetterRecord:
    coordinates: tuple[str, int, int]  # dlq topic, partition, offset
    letter: dict[str, Any]

    @property
    def ledger_key(self) -> bytes:
        return "/".join(map(str, self.coordinates)).encode()


@dataclass
class DeadLetterGroup:
    stage: str
    error_type: str
    count: int
    first_ms: int
    last_ms: int


async def read_dead_letters(
    cluster: Cluster,
    catalog: Catalog,
    codec: Codec,
    *,
    stage: str | None = None,
    error_type: str | None = None,
    since: Position | None = None,
) -> list[DeadLetterRecord]:
    letters: list[DeadLetterRecord] = []
    for topic in (t for t in catalog if t.role == "dlq"):
        async with TopicReader(cluster) as reader:
            ranges = await reader.plan(Selection(topic.name, start=since))
            async for record in reader.read(ranges):
                letter = _decode(record, codec)
                if letter is None:
                    continue
                if stage is not None and letter["stage"] != stage:
                    continue
                if error_type is not None and letter["error_type"] != error_type:
                    continue
                letters.append(DeadLetterRecord((record.topic, record.partition, record.offset), letter))
    return letters


def _decode(record: ConsumerRecord[bytes, bytes], codec: Codec) -> dict[str, Any] | None:
    try:
        return codec.decode("podium.DeadLetter", record.value or b"")
    except PodiumError:
        return None  # not a dead letter written by podium: shown by `tail`, never redriven


def summarize(letters: list[DeadLetterRecord]) -> list[DeadLetterGroup]:
    groups: dict[tuple[str, str], DeadLetterGroup] = {}
    for item in letters:
        at = item.letter["dead_lettered_at_ms"]
        key = (item.letter["stage"], item.letter["error_type"])
        group = groups.setdefault(key, DeadLetterGroup(*key, 0, at, at))
        group.count += 1
        group.first_ms, group.last_ms = min(group.first_ms, at), max(group.last_ms, at)
    return sorted(groups.values(), key=lambda g: (g.stage, -g.count))


def origin_topic(letter: dict[str, Any]) -> str:
    topic: str = letter["original_topic"]
    return topic.removesuffix(RETRY_SUFFIX)


async def _ledger(cluster: Cluster, codec: Codec) -> set[bytes]:
    done: set[bytes] = set()
    async with TopicReader(cluster) as reader:
        async for record in reader.read(await reader.plan(Selection(LEDGER_TOPIC))):
            if record.key is not None and record.value is not None:
                done.add(record.key)
    return done


async def redrive(
    cluster: Cluster,
    catalog: Catalog,
    codec: Codec,
    letters: list[DeadLetterRecord],
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[int, int]:
    """Returns (sent, skipped because already redriven)."""
    done = await _ledger(cluster, codec)
    todo = [item for item in letters if item.ledger_key not in done]
    if dry_run:
        return len(todo), len(letters) - len(todo)
    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        for index, item in enumerate(todo, 1):
            letter = item.letter
            target = origin_topic(letter)
            headers = [
                (h["key"], h["value"])
                for h in letter["original_headers"]
                if h["key"] not in _RESET and h["value"] is not None
            ]
            headers += [(ATTEMPT, b"0"), (REDRIVE_OF, item.ledger_key)]
            await publisher.send_raw(target, letter["original_key"], letter["original_value"], headers)
            # Only now, with the original acknowledged, does the ledger say it was sent.
            entry = codec.encode(
                "podium.Redrive",
                {
                    "dlq_topic": item.coordinates[0],
                    "dlq_partition": item.coordinates[1],
                    "dlq_offset": item.coordinates[2],
                    "redriven_to": target,
                    "request_id": letter["request_id"],
                    "error_type": letter["error_type"],
                    "redriven_at_ms": now_ms(),
                },
            )
            await publisher.send_raw(LEDGER_TOPIC, item.ledger_key, entry, [])
            progress(index, len(todo))
    return len(todo), len(letters) - len(todo)
