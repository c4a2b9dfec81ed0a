"""``podium demo``: the main job, end to end on a real broker, with nothing left running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from rich.console import Console
from rich.table import Table

from streams.admin import TopicAdmin
from streams.audit import pipeline_topics, run_audit
from streams.catalog import dlq_topic
from streams.follow import Follower
from streams.headers import new_request_id, now_ms
from streams.project import Project, resolve_stages
from streams.publish import Publisher
from streams.reading import Position
from streams.runtime import StageWorker
from streams.telemetry import Telemetry
from streams.waterfall import read_spans, waterfall, waterfall_table

__all__ = ["SAMPLE_NOTES", "run_demo"]

SAMPLE_NOTES = [
    "How do I reset my password?",
    "The invoice for October shows the wrong VAT number.",
    "Can I export my dashboards as PDF?",
    "Our SSO login loops back to the start page since this morning.",
    "Please cancel my subscription at the end of the month.",
    "Is there an API limit for the search endpoint?",
]


async def run_demo(project: Project, console: Console) -> int:
    # The group coordinator is elected a moment after the broker starts; aiokafka logs the
    # wait as errors, which would only alarm a newcomer.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    started_broker = False
    if not project.settings.bootstrap_servers and project.broker.running() is None:
        console.print(
            f"[bold]1/5[/] starting Apache Kafka {project.settings.kafka_version} (KRaft, local) ..."
        )
        t0 = time.perf_counter()
        state = await project.broker.start(echo=console.print)
        started_broker = True
        console.print(f"    broker answers at {state.bootstrap} after {time.perf_counter() - t0:.1f}s")
    else:
        console.print(f"[bold]1/5[/] using the running cluster at {project.bootstrap()}")
    bootstrap = project.bootstrap()
    started_ms = now_ms()
    try:
        console.print("[bold]2/5[/] applying topics.yaml")
        async with TopicAdmin(bootstrap) as admin:
            changes = await admin.apply(project.catalog)
        for change in changes:
            console.print(f"    {change.action:9} {change.topic}  ({change.detail})")
        if not changes:
            console.print("    nothing to change")

        stages = resolve_stages("demo")
        telemetry = Telemetry.configure(
            project.settings.otel_exporter, "podium-demo", bootstrap=bootstrap, codec=project.codec
        )
        workers = [
            StageWorker(
                s, bootstrap=bootstrap, catalog=project.catalog, codec=project.codec, telemetry=telemetry
            )
            for s in stages
        ]
        console.print(f"[bold]3/5[/] starting stages: {' -> '.join(s.name for s in stages)}")
        for worker in workers:
            await worker.start()
        runs = [asyncio.create_task(w.run(), name=f"demo-{w.stage.name}") for w in workers]
        try:
            terminal = ["demo.done", *(dlq_topic(s.consumes) for s in stages)]
            async with (
                Follower(bootstrap, terminal) as follower,
                Publisher(
                    bootstrap=bootstrap, catalog=project.catalog, codec=project.codec, telemetry=telemetry
                ) as publisher,
            ):
                console.print(f"[bold]4/5[/] publishing {len(SAMPLE_NOTES)} notes and one malformed record")
                sent: dict[str, tuple[str, int]] = {}
                for text in SAMPLE_NOTES:
                    rid = new_request_id()
                    sent[rid] = (text, now_ms())
                    await publisher.publish(
                        "demo.notes",
                        {"request_id": rid, "text": text},
                        request_id=rid,
                        budget_s=10.0,
                    )
                bad_id = "malformed-" + os.urandom(4).hex()
                sent[bad_id] = ("(garbage bytes)", now_ms())
                await publisher.send_raw(
                    "demo.notes",
                    bad_id.encode(),
                    b"\x00not avro at all",
                    [("podium-request-id", bad_id.encode())],
                )
                arrivals = await follower.collect(set(sent), timeout_s=60)
        finally:
            for worker in workers:
                worker.request_stop()
            await asyncio.gather(*runs, return_exceptions=True)
            await asyncio.to_thread(telemetry.shutdown)  # flushes the spans

        console.print("[bold]5/5[/] where every request ended")
        table = Table("request", "text", "ended in", "hops / reason", "ms")
        for rid, (text, sent_ms) in sent.items():
            got = arrivals.get(rid, [])
            if not got:
                table.add_row(rid[:12], text, "[red]MISSING[/]", "", "")
                continue
            first = got[0]
            if first.topic.endswith(".dlq"):
                letter = project.codec.decode("podium.DeadLetter", first.value or b"")
                detail = f"{letter['error_type']}: {letter['error_message'][:60]}"
            else:
                detail = " -> ".join(project.codec.decode("podium.demo.Note", first.value or b"")["hops"])
            table.add_row(rid[:12], text[:40], first.topic, detail, str(first.timestamp_ms - sent_ms))
        console.print(table)
        missing = [rid for rid in sent if rid not in arrivals]
        console.print(
            f"{len(sent) - len(missing)}/{len(sent)} requests reached a terminal topic"
            + (f"; [red]missing: {missing}[/]" if missing else "")
        )
        input_topic, terminal = pipeline_topics(stages, project.catalog)
        report = await run_audit(
            bootstrap,
            input_topic,
            terminal,
            since=Position(timestamp_ms=started_ms),
            now_ms=now_ms(),
            grace_ms=0,
        )
        console.print(
            f"audit (read back from Kafka, as `podium audit demo --since 5m` does): {report.entered} entered "
            f"{input_topic}; "
            + ", ".join(f"{n} ended in {t}" for t, n in sorted(report.by_topic.items()))
            + f"; {len(report.missing)} missing"
        )
        if project.settings.otel_exporter == "kafka":
            traced = next(iter(sent))
            spans = await read_spans(
                bootstrap, project.codec, request_id=traced, since=Position(timestamp_ms=started_ms)
            )
            console.print(f"one request's trace, read back from podium.telemetry (`podium trace {traced}`):")
            console.print(waterfall_table(waterfall(spans)))
        return 1 if missing or report.missing else 0
    finally:
        if started_broker:
            console.print("stopping the broker this demo started")
            with contextlib.suppress(Exception):
                project.broker.stop()
