"""``podium replay``: copy a selected range of a topic to a file or into a topic.

Into a topic, each record keeps its original key and bytes and gets a fresh start: a new trace
whose span links to the original one, the attempt counters reset, and two headers that say
where it came from (``podium-replay-of: topic/partition/offset``) and that it is a replay.
Progress is checkpointed per partition, so an interrupted replay resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO

from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from streams.contracts.catalog import Catalog
from streams.contracts.codec import Codec
from streams.contracts.headers import ATTEMPT, NOT_BEFORE, ROUND, TRACEPARENT, TRACESTATE, parse_headers
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.readable import describe
from streams.kafka.reading import Selection, TopicReader
from streams.telemetry.otel import Telemetry, current_trace_headers, extract_context

__all__ = ["REPLAY_MARK", "REPLAY_OF", "Checkpoint", "replay_range"]

REPLAY_OF = "podium-replay-of"
REPLAY_MARK = "podium-replay"
_RESET = {TRACEPARENT, TRACESTATE, ATTEMPT, ROUND, NOT_BEFORE, REPLAY_OF, REPLAY_MARK}


class Checkpoint:
    """Next offset per partition for one replay job, kept in a small JSON file."""

    def __init__(self, directory: Path, selection: Selection, destination: str) -> None:
        job = json.dumps({"selection": asdict(selection), "to": destination}, sort_keys=True)
        self.path = directory / f"{hashlib.sha256(job.encode()).hexdigest()[:16]}.json"
        self.done: dict[int, int] = {}

    def load(self) -> dict[int, int]:
        if self.path.exists():
            self.done = {int(p): o for p, o in json.loads(self.path.read_text()).items()}
        return dict(self.done)

    def mark(self, partition: int, offset: int) -> None:
        self.done[partition] = offset + 1

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.done))

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def replay_headers(record: ConsumerRecord[bytes, bytes]) -> list[tuple[str, bytes]]:
    """Original headers minus trace and attempt state, plus where the record came from."""
    kept = [(k, v) for k, v in (record.headers or ()) if k not in _RESET]
    traceparent, tracestate = current_trace_headers()
    fresh = [(TRACEPARENT, traceparent.encode())] if traceparent else []
    if tracestate:
        fresh.append((TRACESTATE, tracestate.encode()))
    origin = f"{record.topic}/{record.partition}/{record.offset}".encode()
    return [*fresh, *kept, (ATTEMPT, b"0"), (REPLAY_OF, origin), (REPLAY_MARK, b"1")]


async def replay_range(
    *,
    cluster: Cluster,
    catalog: Catalog,
    codec: Codec,
    selection: Selection,
    checkpoints: Path,
    into: str | None = None,
    dump: IO[str] | None = None,
    dry_run: bool = False,
    restart: bool = False,
    telemetry: Telemetry | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """Returns how many records were selected (and sent or written, unless ``dry_run``)."""
    tracer = (telemetry or Telemetry.configure("none")).tracer("podium.replay")
    checkpoint = Checkpoint(checkpoints, selection, into or "dump")
    resume = {} if (restart or dry_run) else checkpoint.load()
    if into is not None:
        catalog.get(into)  # a clear error before anything is read
    selected = 0
    async with TopicReader(cluster) as reader:
        ranges = await reader.plan(selection, resume)
        publisher = Publisher(cluster=cluster, catalog=catalog, codec=codec) if into and not dry_run else None
        if publisher is not None:
            await publisher.__aenter__()
        try:
            seen = 0
            async for record in reader.read(ranges):
                seen += 1
                if selection.matches(record):
                    selected += 1
                    if dump is not None:
                        dump.write(json.dumps(describe(record, catalog, codec)) + "\n")
                    if publisher is not None and into is not None:
                        original = trace.get_current_span(
                            extract_context(parse_headers(record.headers).traceparent, None)
                        ).get_span_context()
                        links = [Link(original)] if original.is_valid else []
                        with tracer.start_as_current_span(
                            f"send {into}",
                            kind=SpanKind.PRODUCER,
                            links=links,
                            attributes={
                                "messaging.system": "kafka",
                                "messaging.destination.name": into,
                                "podium.replay_of": f"{record.topic}/{record.partition}/{record.offset}",
                            },
                        ):
                            await publisher.send_raw(into, record.key, record.value, replay_headers(record))
                if not dry_run:
                    checkpoint.mark(record.partition, record.offset)
                    if seen % 500 == 0:
                        checkpoint.save()
                progress(seen, reader.total)
        except BaseException:
            if not dry_run:
                checkpoint.save()
            raise
        finally:
            if publisher is not None:
                await publisher.__aexit__(None, None, None)
    if not dry_run:
        checkpoint.finish()
    return selected
