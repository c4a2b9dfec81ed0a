"""``podium demo``: the support pipeline end to end on a real broker, then everything stopped.

1. start the local broker (unless one is configured or running) and apply ``topics.yaml``;
2. start the five support stages (and, with ``--provider sim``, the provider simulator with
   injected faults, a stand-in for hosted models);
3. publish the bundled sample tickets (wave 1), two malformed records, then the repeats
   (wave 2, answered from the cache);
4. follow every request to its terminal topic and print a table and a summary;
5. audit the input topic from Kafka, and show one request's trace waterfall.
"""

from __future__ import annotations

import logging
import os
import time

from rich.console import Console
from rich.table import Table

from agents.support.outcomes import Outcome, SampleTicket, Summary, load_tickets, outcome_of, summarize
from agents.support.services import SupportConfig
from agents.support.stages import support_stages
from streams.contracts import now_ms
from streams.ingress import Publisher
from streams.kafka import Cluster, Follower, Position
from streams.operations import pipeline_topics, read_spans, run_audit, waterfall, waterfall_table
from streams.runtime import Project, Stack

__all__ = ["run_support_demo"]


async def run_support_demo(project: Project, console: Console) -> int:
    """The support part of ``podium demo`` (the caller starts the simulator for ``--provider sim``)."""
    # The group coordinator is elected a moment after the broker starts; aiokafka logs the
    # wait as errors, which would only alarm a newcomer.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    run = os.urandom(3).hex()
    # A cache scope of its own: wave 1 is answered by the models, its repeats in wave 2 by the
    # cache, whatever earlier runs left in the (persistent) podium.cache topic.
    config = SupportConfig.from_settings(project.settings, cache_scope=f"demo-{run}")
    stages = support_stages(config, gateway=project.shared)
    tickets = load_tickets()
    started_ms = now_ms()
    async with Stack(project, stages, echo=console.print, service_name="podium-demo") as stack:
        input_topic, terminal = pipeline_topics(stages, project.catalog)
        t0 = time.perf_counter()
        sent, outcomes = await _publish_and_follow(project, stack, tickets, input_topic, terminal, console)
        elapsed = time.perf_counter() - t0
        await stack.stop_workers()
        _print_outcomes(console, sent, outcomes)
        _print_summary(console, summarize(list(outcomes.values()), elapsed))
        matched = sum(
            1
            for rid, (t, _) in sent.items()
            if t is not None and rid in outcomes and outcomes[rid].route == t.expect_route
        )
        labelled = sum(1 for t, _ in sent.values() if t is not None)
        console.print(f"routes as labelled in agents/data/support_tickets.jsonl: {matched}/{labelled}")
        audit_failed = await _audit(stack.cluster, project, input_topic, terminal, started_ms, console)
        traced = next((rid for rid, o in outcomes.items() if o.route == "rag"), None)
        if traced and project.settings.otel_exporter == "kafka":
            spans = await read_spans(
                stack.cluster, project.codec, request_id=traced, since=Position(timestamp_ms=started_ms)
            )
            console.print(f"one request's trace, read back from podium.telemetry (`podium trace {traced}`):")
            console.print(waterfall_table(waterfall(spans)))
    missing = [rid for rid in sent if rid not in outcomes]
    if missing:
        console.print(f"[red]{len(missing)} request(s) reached no terminal topic: {missing}[/]")
    return 1 if missing or audit_failed else 0


Sent = dict[str, tuple[SampleTicket | None, int]]


async def _publish_and_follow(
    project: Project,
    stack: Stack,
    tickets: list[SampleTicket],
    input_topic: str,
    terminal: list[str],
    console: Console,
) -> tuple[Sent, dict[str, Outcome]]:
    sent: Sent = {}
    outcomes: dict[str, Outcome] = {}
    async with (
        Follower(stack.cluster, terminal) as follower,
        Publisher(
            cluster=stack.cluster, catalog=project.catalog, codec=project.codec, telemetry=stack.telemetry
        ) as publisher,
    ):
        for wave in (1, 2):
            batch = [t for t in tickets if t.wave == wave]
            note = "" if wave == 1 else " (repeats of earlier questions: the answer cache replies)"
            console.print(f"publishing wave {wave}: {len(batch)} tickets to {input_topic}{note}")
            ids = set()
            for ticket in batch:
                record = {"body": ticket.body, "subject": ticket.subject, "tenant": ticket.tenant}
                rid = await publisher.publish(input_topic, record)
                sent[rid] = (ticket, now_ms())
                ids.add(rid)
            if wave == 1:
                ids |= await _publish_malformed(publisher, input_topic, sent)
            arrivals = await follower.collect(ids, timeout_s=90)
            for rid, got in arrivals.items():
                if rid not in sent:
                    continue
                first = got[0]
                schema = project.catalog.get(first.topic).value_schema
                record = project.codec.decode(schema, first.value or b"")
                outcomes[rid] = outcome_of(rid, first.topic, record, sent[rid][1], first.timestamp_ms)
    return sent, outcomes


async def _publish_malformed(
    publisher: Publisher, topic: str, sent: dict[str, tuple[SampleTicket | None, int]]
) -> set[str]:
    """Garbage bytes and a record of another schema: both must end in the DLQ with a reason."""
    ids = set()
    for label, value in (("garbage", b"\x00not avro at all"), ("json", b'{"body": "JSON, not Avro"}')):
        rid = f"malformed-{label}-{os.urandom(3).hex()}"
        await publisher.send_raw(topic, rid.encode(), value, [("podium-request-id", rid.encode())])
        sent[rid] = (None, now_ms())
        ids.add(rid)
    return ids


def _print_outcomes(
    console: Console, sent: dict[str, tuple[SampleTicket | None, int]], outcomes: dict[str, Outcome]
) -> None:
    table = Table(title="where every request ended")
    for name, width in (("ticket", 26), ("route", 8), ("ended in", 18), ("answer / reason", 44)):
        table.add_column(name, no_wrap=True, min_width=min(width, 8), max_width=width, overflow="ellipsis")
    table.add_column("ms", justify="right", min_width=5, no_wrap=True)
    table.add_column("USD", justify="right", min_width=7, no_wrap=True)
    table.add_column("generated by", no_wrap=True, max_width=20, overflow="ellipsis")
    for rid, (ticket, _) in sent.items():
        body = ticket.body if ticket else rid
        o = outcomes.get(rid)
        if o is None:
            table.add_row(body, "", "[red]MISSING[/]", "", "", "", "")
            continue
        route = o.route if ticket is None or o.route == ticket.expect_route else f"[yellow]{o.route}[/]"
        generated = [s["model"] for s in o.steps if s["stage"].startswith("generate") and s["model"]]
        source = "answer cache" if o.route == "cache" else ", ".join(generated)
        # Answers open by quoting the question; the table shows what follows.
        text = o.text.split('": ', 1)[-1]
        flag = "[yellow](degraded)[/] " if o.degraded else ""
        table.add_row(body, route, o.topic, flag + text, f"{o.latency_ms:.0f}", f"{o.cost_usd:.5f}", source)
    console.print(table)
    notable = [
        (rid, step)
        for rid, o in outcomes.items()
        for step in o.steps
        if step["retries"] or step["fallbacks"] or step["decision"].startswith(("degraded", "skipped"))
    ]
    if notable:
        console.print("what the orchestration decided (retries, fallbacks, degraded answers):")
    for rid, step in notable:
        ticket = sent[rid][0]
        console.print(
            f"  {(ticket.body if ticket else rid)[:36]:36}  {step['stage']}: {step['retries']} retries, "
            f"{step['fallbacks']} fallbacks; {step['decision'][:160]}",
            highlight=False,
            soft_wrap=True,
        )


def _print_summary(console: Console, summary: Summary) -> None:
    console.print(
        f"{summary.requests} requests in {summary.elapsed_s:.1f}s ({summary.throughput:.1f}/s incl. the "
        f"wait between waves); end to end p50 {summary.end_to_end_ms[0]:.0f} ms, "
        f"p95 {summary.end_to_end_ms[1]:.0f} ms; {summary.degraded} degraded; "
        f"total cost ${summary.total_cost_usd:.5f}"
    )
    stages = Table("stage", "p50 ms", "p95 ms", "records")
    for stage, (p50, p95, n) in summary.stage_ms.items():
        stages.add_row(stage, f"{p50:.2f}", f"{p95:.2f}", str(n))
    by = Table("route", "count")
    for route, n in sorted(summary.by_route.items()):
        by.add_row(route, str(n))
    topics = Table("terminal topic", "count")
    for topic, n in sorted(summary.by_topic.items()):
        topics.add_row(topic, str(n))
    cost = Table("model", "USD")
    for model, usd in sorted(summary.cost_by_model.items()):
        cost.add_row(model, f"{usd:.5f}")
    console.print(stages, by, topics, cost)
    if summary.tiers:
        total = sum(summary.tiers.values())
        shares = ", ".join(f"{name} {n / total:.0%}" for name, n in sorted(summary.tiers.items()))
        console.print(
            f"routing by complexity: {shares} of {total} drafts; they cost ${summary.tier_cost_usd:.5f} "
            f"against ${summary.cost_if_largest_usd:.5f} on the largest model (saved "
            f"${summary.saving_usd:.5f})"
        )


async def _audit(
    cluster: Cluster,
    project: Project,
    input_topic: str,
    terminal: list[str],
    started_ms: int,
    console: Console,
) -> bool:
    """True when the audit, read back from Kafka, finds a request without exactly one outcome."""
    report = await run_audit(
        cluster, input_topic, terminal, since=Position(timestamp_ms=started_ms), now_ms=now_ms(), grace_ms=0
    )
    console.print(
        f"audit (read back from Kafka, as `podium audit support --since 10m` does): {report.entered} "
        f"entered {input_topic}; "
        + ", ".join(f"{n} ended in {t}" for t, n in sorted(report.by_topic.items()))
        + f"; {len(report.missing)} missing, {len(report.duplicated)} duplicated"
    )
    return bool(report.missing or report.duplicated)
