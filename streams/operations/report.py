"""``podium report``: one self-contained HTML file with pictures, built from what flowed through Kafka.

Sources: the spans on ``podium.telemetry`` and an audit of the pipeline's topics. Charts are
inline SVG drawn here (no script, no network), so the file opens anywhere, offline. The summary
(:func:`summarize_spans`) is pure; :func:`render` turns it into HTML.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.operations.audit import AuditReport
from streams.operations.traces import Row, waterfall
from streams.runtime.stage import Stage

__all__ = ["StageSummary", "Summary", "render", "summarize_spans"]


@dataclass
class StageSummary:
    stage: str
    topic: str
    count: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    retries: int = 0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def error_rate(self) -> float:
        return self.outcomes.get("dlq", 0) / self.count if self.count else 0.0


@dataclass
class Summary:
    window_s: float
    stages: dict[str, StageSummary]
    timeline: list[tuple[int, int, int, int, int]]  # bucket start ms, ok, retries, dead letters, fallbacks
    slowest: list[tuple[str, float, list[Row]]]  # trace id, total ms, waterfall rows
    cost_by_model: dict[str, float]
    cost_by_route: dict[str, float] = field(default_factory=dict)  # podium.route of the trace
    costliest: list[tuple[str, float, list[Row]]] = field(default_factory=list)  # trace id, USD, rows


def summarize_spans(spans: Sequence[dict[str, Any]], buckets: int = 24) -> Summary:
    process = [s for s in spans if s["attributes"].get("podium.stage") and s["name"].startswith("process ")]
    stages: dict[str, StageSummary] = {}
    for s in process:
        name = s["attributes"]["podium.stage"]
        summary = stages.setdefault(name, StageSummary(name, s["name"].removeprefix("process ")))
        summary.count += 1
        outcome = s["attributes"].get("podium.outcome", "unknown")
        summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + 1
        summary.latencies_ms.append((s["end_ns"] - s["start_ns"]) / 1e6)
        summary.retries += sum(1 for e in s["events"] if e["name"] == "podium.attempt.failed")
    times = [s["start_ns"] // 1_000_000 for s in spans] or [0]
    start, end = min(times), max(times) + 1
    width = max(1, (end - start) // buckets + 1)
    timeline = [[start + i * width, 0, 0, 0, 0] for i in range(buckets)]
    for s in process:
        slot = timeline[min(buckets - 1, (s["start_ns"] // 1_000_000 - start) // width)]
        outcome = s["attributes"].get("podium.outcome")
        slot[1] += outcome == "ok"
        slot[3] += outcome == "dlq"
        slot[2] += sum(1 for e in s["events"] if e["name"] == "podium.attempt.failed")
        slot[4] += sum(1 for e in s["events"] if e["name"] == "podium.fallback")
    traces: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        traces.setdefault(s["trace_id"], []).append(s)
    totals = sorted(
        (
            (tid, (max(x["end_ns"] for x in ss) - min(x["start_ns"] for x in ss)) / 1e6)
            for tid, ss in traces.items()
        ),
        key=lambda item: -item[1],
    )
    cost: dict[str, float] = {}
    for s in spans:
        if "podium.cost.usd" in s["attributes"]:
            model = s["attributes"].get("gen_ai.request.model", "unknown")
            cost[model] = cost.get(model, 0.0) + float(s["attributes"]["podium.cost.usd"])
    # A pipeline's router stamps its decision on its span (podium.route); every model call in
    # the same trace is charged to that route.
    by_route: dict[str, float] = {}
    by_trace: dict[str, float] = {}
    for tid, ss in traces.items():
        route = next((x["attributes"]["podium.route"] for x in ss if "podium.route" in x["attributes"]), None)
        spent = sum(float(x["attributes"].get("podium.cost.usd", 0.0)) for x in ss)
        if spent > 0:
            by_trace[tid] = spent
        if route is not None:
            by_route[route] = by_route.get(route, 0.0) + spent
    return Summary(
        window_s=max((end - start) / 1000, 0.001),
        stages=stages,
        timeline=[(a, b, c, d, f) for a, b, c, d, f in timeline],
        slowest=[(tid, total, waterfall(traces[tid])) for tid, total in totals[:8]],
        cost_by_model=cost,
        cost_by_route=by_route,
        costliest=[
            (tid, usd, waterfall(traces[tid]))
            for tid, usd in sorted(by_trace.items(), key=lambda item: -item[1])[:8]
        ],
    )


# -- drawing -------------------------------------------------------------------------------
def _e(text: object) -> str:
    return html.escape(str(text))


def _bars(title: str, labels: list[str], series: dict[str, list[float]], unit: str) -> str:
    if not labels:
        return f"<p class='empty'>{_e(title)}: nothing recorded in this window.</p>"
    colors = ["#4c78a8", "#f58518", "#e45756", "#72b7b2"]
    top = max((v for values in series.values() for v in values), default=1.0) or 1.0
    bar = 16 if len(labels) <= 10 else 7  # many buckets: thinner bars, the chart stays on screen
    group, height = 12 + (bar + 2) * len(series), 220
    width = 60 + group * len(labels)
    parts = [f"<svg role='img' aria-label='{_e(title)}' width='{width}' height='{height + 60}'>"]
    for i, label in enumerate(labels):
        x0 = 50 + i * group
        for j, (name, values) in enumerate(series.items()):
            h = values[i] / top * height
            parts.append(
                f"<rect x='{x0 + j * (bar + 2)}' y='{height - h + 10:.1f}' width='{bar}' height='{h:.1f}' "
                f"fill='{colors[j % 4]}'><title>{_e(name)} {values[i]:.1f} {unit}</title></rect>"
            )
        if len(labels) <= 10 or i % 4 == 0:
            parts.append(f"<text x='{x0}' y='{height + 28}' class='label'>{_e(label)}</text>")
    parts.append(f"<text x='4' y='16' class='label'>{top:.0f} {_e(unit)}</text>")
    legend = " ".join(f"<span style='color:{colors[j % 4]}'>■ {_e(n)}</span>" for j, n in enumerate(series))
    return f"<figure><figcaption>{_e(title)} {legend}</figcaption>{''.join(parts)}</svg></figure>"


def _pipeline(stages: Sequence[Stage[Any]], summary: Summary) -> str:
    """Topics and stages in columns, each edge labelled with throughput and error rate."""
    columns: list[list[tuple[str, str]]] = []
    placed: dict[str, tuple[int, int]] = {}

    def place(name: str, kind: str, column: int) -> None:
        while len(columns) <= column:
            columns.append([])
        if name not in placed:
            placed[name] = (column, len(columns[column]))
            columns[column].append((name, kind))

    for stage in stages:
        column = placed[stage.consumes][0] + 1 if stage.consumes in placed else 1
        place(stage.consumes, "topic", column - 1)
        place(stage.name, "stage", column)
        for topic in stage.produces:
            place(topic, "topic", column + 1)
    box_w, box_h, gap_x, gap_y = 170, 36, 150, 30
    width = len(columns) * (box_w + gap_x)
    height = max(len(c) for c in columns) * (box_h + gap_y) + 40

    def center(name: str) -> tuple[float, float]:
        col, row = placed[name]
        return col * (box_w + gap_x) + 10, row * (box_h + gap_y) + 20 + box_h / 2

    parts = [f"<svg role='img' aria-label='pipeline graph' width='{width}' height='{height}'>"]
    for stage in stages:
        stats = summary.stages.get(stage.name)
        rate = f"{stats.count / summary.window_s:.2f}/s" if stats else "0/s"
        errors = f"{stats.error_rate:.0%} err" if stats else "-"
        for a, b in [(stage.consumes, stage.name), *((stage.name, t) for t in stage.produces)]:
            (x1, y1), (x2, y2) = center(a), center(b)
            parts.append(f"<line x1='{x1 + box_w}' y1='{y1}' x2='{x2}' y2='{y2}' class='edge'/>")
            if a == stage.consumes:
                parts.append(
                    f"<text x='{(x1 + box_w + x2) / 2 - 35}' y='{(y1 + y2) / 2 - 6}' class='label'>"
                    f"{_e(rate)} · {_e(errors)}</text>"
                )
    for name, (col, row) in placed.items():
        kind = columns[col][row][1]
        x, y = col * (box_w + gap_x) + 10, row * (box_h + gap_y) + 20
        parts.append(
            f"<rect x='{x}' y='{y}' width='{box_w}' height='{box_h}' rx='6' class='{kind}'/>"
            f"<text x='{x + 8}' y='{y + 23}'>{_e(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _waterfall_svg(rows: list[Row]) -> str:
    total = max((r.start_ms + r.duration_ms for r in rows), default=1.0) or 1.0
    parts = [f"<svg width='760' height='{len(rows) * 22 + 10}'>"]
    for i, r in enumerate(rows):
        x, w = 260 + r.start_ms / total * 480, max(2.0, r.duration_ms / total * 480)
        color = "#e45756" if r.status in ("ERROR", "dlq") else "#4c78a8"
        parts.append(
            f"<text x='{4 + 12 * r.depth}' y='{i * 22 + 18}' class='label'>{_e(r.name)}</text>"
            f"<rect x='{x:.1f}' y='{i * 22 + 6}' width='{w:.1f}' height='14' fill='{color}'>"
            f"<title>{r.duration_ms:.1f} ms</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}h2{margin-top:2em}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}.label{font-size:11px;fill:#444}
.edge{stroke:#999;stroke-width:2}.topic{fill:#eef3fb;stroke:#4c78a8}.stage{fill:#fdf0e1;stroke:#f58518}
.empty{color:#777;font-style:italic}figure{margin:0}figcaption{font-weight:600;margin:.5em 0}"""


def render(
    *,
    pipeline: str,
    stages: Sequence[Stage[Any]],
    summary: Summary,
    audit: AuditReport,
    baseline: Summary | None = None,
    window: str = "",
) -> str:
    ordered = [summary.stages[s.name] for s in stages if s.name in summary.stages]
    rows = "".join(
        f"<tr><td>{_e(s.stage)}</td><td>{s.count}</td><td>{s.percentile(0.5):.1f}</td><td>{s.percentile(0.95):.1f}"
        f"</td><td>{s.percentile(0.99):.1f}</td><td>{s.retries}</td><td>{s.outcomes.get('dlq', 0)}</td>"
        f"<td>{s.error_rate:.1%}</td></tr>"
        for s in ordered
    )
    audit_rows = "".join(
        f"<tr><td>ended in {_e(t)}</td><td>{n}</td></tr>" for t, n in sorted(audit.by_topic.items())
    )
    audit_rows += (
        f"<tr><td>ended more than once</td><td>{len(audit.duplicated)}</td></tr>"
        f"<tr><td>still in flight</td><td>{len(audit.in_flight)}</td></tr>"
        f"<tr><td>missing</td><td id='audit-missing'>{len(audit.missing)}</td></tr>"
    )
    latency = _bars(
        "latency per stage (ms)",
        [s.stage for s in ordered],
        {
            "p50": [s.percentile(0.5) for s in ordered],
            "p95": [s.percentile(0.95) for s in ordered],
            "p99": [s.percentile(0.99) for s in ordered],
        },
        "ms",
    )
    over_time = _bars(
        "settled, retried, dead-lettered and model fallbacks over time",
        [f"+{(t - summary.timeline[0][0]) / 1000:.0f}s" for t, *_ in summary.timeline],
        {
            "ok": [float(row[1]) for row in summary.timeline],
            "retries": [float(row[2]) for row in summary.timeline],
            "dead letters": [float(row[3]) for row in summary.timeline],
            "model fallbacks": [float(row[4]) for row in summary.timeline],
        },
        "records",
    )
    cost = (
        _bars(
            "cost by model (USD)",
            list(summary.cost_by_model),
            {"cost": list(summary.cost_by_model.values())},
            "USD",
        )
        if summary.cost_by_model
        else "<p class='empty'>No model calls with a cost were recorded in this window.</p>"
    )
    if summary.cost_by_route:
        cost += _bars(
            "cost by route (USD)",
            list(summary.cost_by_route),
            {"cost": list(summary.cost_by_route.values())},
            "USD",
        )
    slow = "".join(
        f"<li><a href='#trace-{tid}'>{tid}</a> {total:.1f} ms</li>" for tid, total, _ in summary.slowest
    )
    dear = "".join(
        f"<li><a href='#trace-{tid}'>{tid}</a> ${usd:.6f}</li>" for tid, usd, _ in summary.costliest
    )
    shown = {tid for tid, _, _ in summary.slowest}
    waterfalls = "".join(
        f"<section id='trace-{tid}'><h3>trace {tid} · {total:.1f} ms</h3>{_waterfall_svg(r)}</section>"
        for tid, total, r in summary.slowest
    ) + "".join(
        f"<section id='trace-{tid}'><h3>trace {tid} · ${usd:.6f}</h3>{_waterfall_svg(r)}</section>"
        for tid, usd, r in summary.costliest
        if tid not in shown
    )
    compare = ""
    if baseline is not None:
        empty = StageSummary("", "")
        before = {s.stage: baseline.stages.get(s.stage, empty) for s in ordered}
        lines = "".join(
            f"<tr><td>{_e(s.stage)}</td><td>{before[s.stage].percentile(0.5):.1f}</td>"
            f"<td>{s.percentile(0.5):.1f}</td><td>{before[s.stage].count}</td><td>{s.count}</td></tr>"
            for s in ordered
        )
        cost_now, cost_before = sum(summary.cost_by_model.values()), sum(baseline.cost_by_model.values())
        compare = (
            "<h2>Compared with the baseline window</h2><table><tr><th>stage</th><th>p50 ms before</th>"
            f"<th>p50 ms now</th><th>records before</th><th>records now</th></tr>{lines}</table>"
            f"<p>Model cost: ${cost_before:.6f} before, ${cost_now:.6f} now.</p>"
        )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>podium report: {_e(pipeline)}</title><style>{_STYLE}</style></head><body>
<h1>podium report: {_e(pipeline)}</h1>
<p>{_e(window)} · {summary.window_s:.0f} s of spans from podium.telemetry</p>
<h2>Pipeline</h2>{_pipeline(stages, summary)}
<h2>Audit</h2><p>{audit.entered} request(s) entered.</p><table id="audit">{audit_rows}</table>
<h2>Stages</h2><table id="stages"><tr><th>stage</th><th>records</th><th>p50 ms</th><th>p95 ms</th>
<th>p99 ms</th><th>retries</th><th>dead letters</th><th>error rate</th></tr>{rows}</table>
{latency}{over_time}<h2>Cost</h2>{cost}{compare}
<h2>Slowest requests</h2><ol>{slow}</ol>
<h2>Most expensive requests</h2><ol>{dear or "<li>no model cost recorded</li>"}</ol>{waterfalls}
</body></html>"""
