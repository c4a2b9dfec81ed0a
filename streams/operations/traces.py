"""``podium trace``: one request's spans, read back from ``podium.telemetry``, as a waterfall.

Building rows is pure (:func:`waterfall`); reading spans is :func:`read_spans`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table

from streams.contracts.codec import Codec
from streams.errors import PodiumError
from streams.kafka.connection import Cluster
from streams.kafka.reading import Position, Selection, TopicReader
from streams.telemetry.spanlog import TELEMETRY_TOPIC

__all__ = ["Row", "read_spans", "read_window", "waterfall", "waterfall_table"]


@dataclass(frozen=True)
class Row:
    name: str
    depth: int
    stage: str
    start_ms: float  # from the first span of the trace
    duration_ms: float
    status: str
    retries: int
    model: str
    tokens: str
    cost: str
    span_id: str
    trace_id: str


def waterfall(spans: list[dict[str, Any]]) -> list[Row]:
    """Rows in start order, indented under their parents; several traces are shown one after another."""
    by_id = {s["span_id"]: s for s in spans}

    def depth(span: dict[str, Any]) -> int:
        level, parent = 0, span.get("parent_span_id")
        while parent in by_id and level < 64:
            level, parent = level + 1, by_id[parent].get("parent_span_id")
        return level

    starts: dict[str, int] = {}
    for s in spans:
        starts[s["trace_id"]] = min(starts.get(s["trace_id"], s["start_ns"]), s["start_ns"])
    rows = []
    for s in sorted(spans, key=lambda s: (starts[s["trace_id"]], s["start_ns"])):
        attrs = s.get("attributes", {})
        tokens = [attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens")]
        rows.append(
            Row(
                name=s["name"],
                depth=depth(s),
                stage=attrs.get("podium.stage", ""),
                start_ms=(s["start_ns"] - starts[s["trace_id"]]) / 1e6,
                duration_ms=(s["end_ns"] - s["start_ns"]) / 1e6,
                status=s["status"] if s["status"] != "UNSET" else attrs.get("podium.outcome", ""),
                retries=sum(1 for e in s.get("events", []) if e["name"] == "podium.attempt.failed"),
                # A model call names its model; an agent's tool call its tool and call id.
                model=attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model") or _tool(attrs),
                tokens="/".join(t for t in tokens if t) if any(tokens) else "",
                cost=attrs.get("podium.cost.usd", ""),
                span_id=s["span_id"],
                trace_id=s["trace_id"],
            )
        )
    return rows


def _tool(attrs: dict[str, Any]) -> str:
    name = attrs.get("gen_ai.tool.name", "")
    return f"{name} ({attrs['gen_ai.tool.call.id']})" if name and attrs.get("gen_ai.tool.call.id") else name


def waterfall_table(rows: list[Row], width: int = 40) -> Table:
    """The rows as a terminal picture: one bar per span on a shared time axis."""
    total = max((r.start_ms + r.duration_ms for r in rows), default=0.0) or 1.0
    table = Table()
    table.add_column("span", no_wrap=True)
    for name in ("stage", "start ms", "ms"):
        table.add_column(name)
    # The bars are the picture: their column never wraps or shrinks.
    table.add_column(f"0 .. {total:.0f} ms", no_wrap=True, min_width=width)
    for name in ("status", "retries", "model / tool", "tokens", "cost"):
        table.add_column(name)
    for r in rows:
        left = int(r.start_ms / total * width)
        bar = " " * left + "█" * max(1, round(r.duration_ms / total * width))
        table.add_row(
            "  " * r.depth + r.name,
            r.stage,
            f"{r.start_ms:.1f}",
            f"{r.duration_ms:.1f}",
            f"[cyan]{bar[:width]:<{width}}[/]",
            r.status,
            str(r.retries or ""),
            r.model,
            r.tokens,
            r.cost,
        )
    return table


async def read_window(
    cluster: Cluster, codec: Codec, since: Position | None = None, until: Position | None = None
) -> list[dict[str, Any]]:
    """Every span written between two positions of the telemetry topic."""
    spans: list[dict[str, Any]] = []
    async with TopicReader(cluster) as reader:
        async for record in reader.read(
            await reader.plan(Selection(TELEMETRY_TOPIC, start=since, end=until))
        ):
            try:
                spans.append(codec.decode("podium.Span", record.value or b""))
            except PodiumError:
                continue  # not a span podium wrote: `podium tail podium.telemetry` shows it
    return spans


async def read_spans(
    cluster: Cluster,
    codec: Codec,
    *,
    trace_id: str | None = None,
    request_id: str | None = None,
    since: Position | None = None,
) -> list[dict[str, Any]]:
    """Spans of a trace, and of every trace that touched a request id (either may be given)."""
    spans = await read_window(cluster, codec, since)
    traces = {trace_id} if trace_id else set()
    if request_id is not None:
        traces |= {s["trace_id"] for s in spans if s["attributes"].get("podium.request_id") == request_id}
    return [s for s in spans if s["trace_id"] in traces]
