"""podium report: the numbers it shows, and that it renders in a real headless Chromium."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from streams.contracts.codec import SingleObjectCodec
from streams.contracts.headers import REQUEST_ID, now_ms
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.operations.audit import pipeline_topics, run_audit
from streams.operations.report import summarize_spans
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.stage_worker import StageWorker
from streams.telemetry.otel import Telemetry
from tests.streams.running import REPO, running

TOPICS = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: ra, partitions: 1}
  {p}.mid: {value: podium.demo.Note, consumer: rb, partitions: 1}
  {p}.done: {value: podium.demo.Note, partitions: 1}
  podium.telemetry: {value: podium.Span, partitions: 3}
"""


def stages() -> list[Stage[Any]]:
    """The pipeline under test, for `podium report tests.streams.operations.test_report:stages`."""
    prefix = os.environ["PODIUM_TEST_PREFIX"]

    async def forward(note: dict[str, Any], ctx: StageContext) -> Emit:
        return Emit(f"{prefix}.mid" if ctx.stage == "ra" else f"{prefix}.done", note)

    return [
        Stage(name="ra", consumes=f"{prefix}.in", produces=(f"{prefix}.mid",), handler=forward),
        Stage(name="rb", consumes=f"{prefix}.mid", produces=(f"{prefix}.done",), handler=forward),
    ]


def span(stage: str, ms: float, outcome: str, retries: int = 0) -> dict[str, Any]:
    return {
        "trace_id": os.urandom(16).hex(),
        "span_id": os.urandom(8).hex(),
        "parent_span_id": None,
        "name": f"process {stage}.in",
        "start_ns": 1_000_000_000,
        "end_ns": 1_000_000_000 + int(ms * 1e6),
        "status": "UNSET",
        "attributes": {"podium.stage": stage, "podium.outcome": outcome},
        "events": [{"name": "podium.attempt.failed", "time_ns": 0, "attributes": {}}] * retries,
    }


def test_summary_counts_outcomes_retries_and_percentiles() -> None:
    summary = summarize_spans(
        [span("s", ms, "ok") for ms in range(1, 101)] + [span("s", 500, "dlq", retries=3)]
    )
    stage = summary.stages["s"]
    assert (stage.count, stage.outcomes, stage.retries) == (101, {"ok": 100, "dlq": 1}, 3)
    assert stage.percentile(0.5) == 51 and stage.percentile(0.99) == 100
    assert round(stage.error_rate, 4) == round(1 / 101, 4)
    assert summary.slowest[0][1] == 500


def test_model_costs_are_charged_to_the_route_their_trace_took() -> None:
    classify, generate = span("classify", 1, "ok"), span("generate", 5, "ok")
    generate["trace_id"] = classify["trace_id"]
    classify["attributes"]["podium.route"] = "rag"
    call = {**span("generate", 4, "ok"), "trace_id": classify["trace_id"], "name": "chat large"}
    call["attributes"] = {"gen_ai.request.model": "large", "podium.cost.usd": "0.25"}
    direct = span("classify", 1, "ok")
    direct["attributes"]["podium.route"] = "direct"
    generate["events"] = [{"name": "podium.fallback", "time_ns": 0, "attributes": {}}]
    summary = summarize_spans([classify, generate, call, direct])
    assert summary.cost_by_route == {"rag": 0.25, "direct": 0.0}
    assert summary.cost_by_model == {"large": 0.25}
    assert [(tid, usd) for tid, usd, _ in summary.costliest] == [(classify["trace_id"], 0.25)]
    assert sum(row[4] for row in summary.timeline) == 1  # the fallback, over time


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is needed for this test: `make browser` (apt-get install chromium)"
    return path


async def test_the_report_renders_in_chromium_and_agrees_with_audit_and_telemetry(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PODIUM_TEST_PREFIX", unique)
    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    started = now_ms()
    telemetry = Telemetry.configure("kafka", "report-test", cluster=cluster, codec=codec)
    pipeline = stages()
    workers = [
        StageWorker(
            s,
            cluster=cluster,
            catalog=catalog,
            codec=codec,
            telemetry=telemetry,
            group_id=f"{unique}-{s.name}",
        )
        for s in pipeline
    ]
    async with Follower(cluster, [f"{unique}.done", f"{unique}.in.dlq"]) as follower, running(*workers):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec, telemetry=telemetry) as publisher:
            ids = {
                await publisher.publish(f"{unique}.in", {"request_id": "", "text": str(i)}) for i in range(10)
            }
            for n in range(2):
                await publisher.send_raw(
                    f"{unique}.in", f"bad{n}".encode(), b"garbage", [(REQUEST_ID, f"bad{n}".encode())]
                )
        await follower.collect({*ids, "bad0", "bad1"}, timeout_s=30)
    await asyncio.to_thread(telemetry.shutdown)

    topics_file = tmp_path / "topics.yaml"
    topics_file.write_text(TOPICS.replace("{p}", unique))
    out = tmp_path / "report.html"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "PODIUM_TOPICS": str(topics_file),
        "PYTHONPATH": str(REPO),
    }
    made = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "agents.cli",
            "report",
            "tests.streams.operations.test_report:stages",
            "--out",
            str(out),
            "--since",
            str(started),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr

    with tempfile.TemporaryDirectory() as profile:
        shown = await asyncio.to_thread(
            subprocess.run,
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                "--dump-dom",
                out.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "Uncaught" not in shown.stderr and ":CONSOLE(" not in shown.stderr, shown.stderr[-2000:]
    dom = shown.stdout
    assert "<svg" in dom and "podium report" in dom

    input_topic, terminal = pipeline_topics(pipeline, catalog)
    audit = await run_audit(cluster, input_topic, terminal, since=None, now_ms=now_ms(), grace_ms=60_000)
    assert audit.entered == 12 and audit.by_topic == {f"{unique}.done": 10, f"{unique}.in.dlq": 2}
    for topic, count in audit.by_topic.items():
        assert re.search(rf"ended in {re.escape(topic)}</td><td>{count}</td>", dom), topic
    assert re.search(r"id=\"audit-missing\">0<", dom)
    # The stages table shows what the telemetry holds: 12 records through ra (2 dead letters), 10 through rb.
    assert re.search(r"<td>ra</td><td>12</td>(<td>[^<]*</td>){4}<td>2</td>", dom), dom[dom.find("stages") :][
        :800
    ]
    assert re.search(r"<td>rb</td><td>10</td>", dom)
