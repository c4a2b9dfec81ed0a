"""What-if: one stage's handler over recorded inputs with another configuration, side by side
with what production made of them. Nothing is published: the stage is built ``dry_run`` (no
token chunks, no cache or circuit records) and its outputs are only shown.

For each recorded input (a range of the stage's consumed topic, as ``podium replay`` selects):

1. the *old* side is the first record with the same request id on one of the stage's output
   topics, written after the input;
2. the *new* side is the handler's result now, with the request's original latency budget
   (its deadline minus the input's timestamp) counted from the start of the run.

Latency and cost come from the record's last ``steps`` entry when it has one (the stage's own
time and model spend), else from the Kafka timestamps and the ``podium-cost-usd`` headers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import ConsumerRecord

from streams.contracts.catalog import Catalog
from streams.contracts.codec import Codec
from streams.contracts.headers import now_ms, parse_headers
from streams.kafka.connection import Cluster
from streams.kafka.reading import Position, Selection, TopicReader
from streams.runtime.stage import Emit, Stage, StageContext, StageEnv, close_resources, open_resources
from streams.telemetry.otel import Telemetry

__all__ = ["Comparison", "Side", "describe_output", "what_if"]


@dataclass(frozen=True)
class Side:
    topic: str
    text: str
    model: str
    latency_ms: float
    cost_usd: float


@dataclass(frozen=True)
class Comparison:
    request_id: str
    old: Side | None  # None: production's output was not found (not yet made, or out of range)
    new: Side


def describe_output(topic: str, value: dict[str, Any], latency_ms: float, cost_usd: float) -> Side:
    """What a person compares: the answer (or reasons), and the stage's model, time and cost."""
    if value.get("answer"):
        text = str(value["answer"])
    elif value.get("reasons"):
        text = "; ".join(map(str, value["reasons"]))
    else:
        text = json.dumps(value, default=str)
    steps = value.get("steps") or []
    if steps:
        last = steps[-1]
        return Side(
            topic, text, str(last.get("model", "")), float(last["latency_ms"]), float(last["cost_usd"])
        )
    return Side(topic, text, "", latency_ms, cost_usd)


async def _read(
    cluster: Cluster, selection: Selection, limit: int | None
) -> list[ConsumerRecord[bytes, bytes]]:
    records: list[ConsumerRecord[bytes, bytes]] = []
    async with TopicReader(cluster) as reader:
        async for record in reader.read(await reader.plan(selection)):
            if not selection.matches(record):  # --request-id / --trace-id
                continue
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    return records


def _request_id(record: ConsumerRecord[bytes, bytes]) -> str:
    headers = parse_headers(record.headers or [])
    return headers.request_id or (record.key or b"").decode("utf-8", "replace")


async def what_if(
    *,
    cluster: Cluster,
    catalog: Catalog,
    codec: Codec,
    stage: Stage[Any],
    selection: Selection,
    limit: int | None = 20,
) -> list[Comparison]:
    if selection.topic != stage.consumes:
        raise ValueError(f"stage {stage.name} consumes {stage.consumes}, not {selection.topic}")
    # A tombstone (a deletion on a compacted topic) has no value to run the handler on.
    inputs = [r for r in await _read(cluster, selection, limit) if r.value is not None]
    if not inputs:
        return []
    wanted = {_request_id(r) for r in inputs}
    since = min(r.timestamp for r in inputs)
    old: dict[str, tuple[str, dict[str, Any], int, float]] = {}
    for topic in stage.produces:
        for record in await _read(cluster, Selection(topic, start=Position(timestamp_ms=since)), None):
            rid = _request_id(record)
            if rid in wanted and rid not in old and record.value is not None:
                value = codec.decode(catalog.get(topic).value_schema, record.value)
                old[rid] = (topic, value, record.timestamp, parse_headers(record.headers or []).cost_usd)

    env = StageEnv(cluster, catalog, codec, Telemetry.configure("none"))
    opened = await open_resources(stage.resources, env)
    comparisons = []
    try:
        for record in inputs:
            rid = _request_id(record)
            headers = parse_headers(record.headers or [])
            if headers.deadline_ms is not None:  # the original budget, from now
                headers = replace(headers, deadline_ms=now_ms() + headers.deadline_ms - record.timestamp)
            value = codec.decode(catalog.get(stage.consumes).value_schema, record.value or b"")
            ctx = StageContext(
                stage.name, record.topic, record.partition, record.offset, headers, 1, timestamp_ms=now_ms()
            )
            started = time.perf_counter()
            result = await stage.handler(value, ctx)
            elapsed_ms = (time.perf_counter() - started) * 1000
            emit = result if isinstance(result, Emit) else result[0]
            new = describe_output(emit.topic, emit.value, elapsed_ms, ctx.spent_usd)
            before = None
            if rid in old:
                topic, out, stamp, cost = old[rid]
                before = describe_output(topic, out, float(stamp - record.timestamp), cost - headers.cost_usd)
            comparisons.append(Comparison(rid, before, new))
    finally:
        await close_resources(opened)
    return comparisons
