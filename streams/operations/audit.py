"""``podium audit``: did every request that entered a pipeline end exactly once?

Reads the pipeline's input topic and its terminal topics (the outputs no stage consumes, and
every stage's dead-letter topic) straight from Kafka and sorts each request id into: ended,
ended more than once (at-least-once duplicates), still in flight (younger than the grace
period) and missing (older, and nowhere). The classification is a pure function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord

from streams.contracts.catalog import Catalog, dlq_topic
from streams.contracts.headers import REQUEST_ID, header_value
from streams.kafka.connection import Cluster
from streams.kafka.reading import Position, Selection, TopicReader
from streams.runtime.stage import Stage

__all__ = ["AuditReport", "classify", "pipeline_topics", "run_audit"]


@dataclass
class AuditReport:
    entered: int = 0
    ended: dict[str, str] = field(default_factory=dict)  # request id -> terminal topic
    duplicated: dict[str, list[str]] = field(default_factory=dict)
    in_flight: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def by_topic(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for topic in self.ended.values():
            counts[topic] = counts.get(topic, 0) + 1
        return counts


def pipeline_topics(stages: Sequence[Stage[Any]], catalog: Catalog) -> tuple[str, list[str]]:
    """The input topic and the terminal topics of a chain of stages.

    A compacted topic a stage writes is its state (a join's table), not where a request ends;
    a dead-letter topic another stage reads (a join reading its branches' failures) is not
    either: the request goes on from there.
    """
    consumed = {s.consumes for s in stages} | {t for s in stages for t in getattr(s, "also_consumes", ())}
    outputs = [
        t
        for s in stages
        for t in s.produces
        if t not in consumed and catalog.get(t).consumer is None and catalog.get(t).cleanup != "compact"
    ]
    dead_letters = [dlq_topic(s.consumes) for s in stages if dlq_topic(s.consumes) not in consumed]
    return stages[0].consumes, sorted(set(outputs)) + dead_letters


def classify(
    entered: dict[str, int], arrivals: dict[str, list[str]], now_ms: int, grace_ms: int
) -> AuditReport:
    """``entered``: request id -> time it entered (ms); ``arrivals``: request id -> topics."""
    report = AuditReport(entered=len(entered))
    for rid, at in entered.items():
        topics = arrivals.get(rid, [])
        if not topics:
            (report.in_flight if now_ms - at < grace_ms else report.missing).append(rid)
            continue
        report.ended[rid] = topics[-1]
        if len(topics) > len(set(topics)):
            report.duplicated[rid] = topics
    return report


def _request_id(record: ConsumerRecord[bytes, bytes]) -> str:
    return (header_value(record.headers or [], REQUEST_ID) or record.key or b"").decode("utf-8", "replace")


async def run_audit(
    cluster: Cluster,
    input_topic: str,
    terminal: list[str],
    *,
    since: Position | None,
    now_ms: int,
    grace_ms: int,
) -> AuditReport:
    entered: dict[str, int] = {}
    async with TopicReader(cluster) as reader:
        async for record in reader.read(await reader.plan(Selection(input_topic, start=since))):
            entered.setdefault(_request_id(record), record.timestamp)
    timed: dict[str, list[tuple[int, str]]] = {}
    for topic in terminal:
        async with TopicReader(cluster) as reader:
            async for record in reader.read(await reader.plan(Selection(topic, start=since))):
                timed.setdefault(_request_id(record), []).append((record.timestamp, topic))
    # In time order, so a dead letter that was redriven and then answered ends in the answer.
    arrivals = {rid: [topic for _, topic in sorted(items)] for rid, items in timed.items()}
    return classify(entered, arrivals, now_ms, grace_ms)
