"""``podium demo --pipelines billing``: the billing agent end to end on a real broker.

1. start the agent stage and its five tool stages (one for the docs MCP server, a separate process);
2. publish the sample questions: a double charge whose refund a person approves, one whose
   refund is denied, a how-to question answered from the docs;
3. answer each approval request as ``podium approve`` does (the demo plays the person);
4. print every request's steps (model turns, tool calls with arguments and results, approvals)
   with the cost of each and the total, then the refunds the billing system made, and audit that
   every request ended once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agents.billing.agent import billing_agent
from agents.billing.planner import PLANNER_MODELS
from agents.loop import agent_stages
from streams.contracts import now_ms
from streams.ingress import Approvals, Publisher
from streams.kafka import Follower, Position
from streams.operations import run_audit
from streams.runtime import Project, Stack

__all__ = ["run_billing_demo"]


@dataclass(frozen=True)
class Question:
    body: str
    account: str
    verdict: tuple[bool, str] | None  # how the person answers an approval request


QUESTIONS = (
    Question("I was charged twice for my subscription this month, can you fix it?", "A-1001", (True, "")),
    Question(
        "Looks like you billed me twice in November?", "A-1006", (False, "already credited by phone on 11-20")
    ),
    Question("How do I export a dashboard to CSV?", "A-1002", None),
)


async def run_billing_demo(project: Project, console: Console) -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    # A billing system of its own per run: a refund made by an earlier run would change the answers.
    data_dir = project.settings.home / "billing" / f"demo-{os.urandom(3).hex()}"
    agent = billing_agent(data_dir)
    stages = agent_stages(agent, project.settings.models_file, project.shared, PLANNER_MODELS)
    started_ms = now_ms()
    responses: dict[str, dict[str, Any]] = {}
    async with Stack(project, stages, echo=console.print, service_name="podium-demo") as stack:
        async with (
            Follower(stack.cluster, [agent.responses, agent.approvals]) as follower,
            Publisher(
                cluster=stack.cluster,
                catalog=project.catalog,
                codec=project.codec,
                telemetry=stack.telemetry,
            ) as publisher,
            # What `podium approve` uses: the demo answers approval requests as a person would.
            Approvals(
                cluster=stack.cluster, catalog=project.catalog, codec=project.codec, publisher=publisher
            ) as approvals,
        ):
            sent: dict[str, Question] = {}
            for q in QUESTIONS:
                record = {"body": q.body, "context": {"account": q.account}}
                sent[await publisher.publish(agent.requests, record)] = q
            console.print(f"published {len(sent)} questions to {agent.requests}")
            deadline = time.monotonic() + 120
            while set(responses) != set(sent) and time.monotonic() < deadline:
                for rid, arrivals in (await follower.poll(0.3)).items():
                    for arrival in arrivals:
                        schema = project.catalog.get(arrival.topic).value_schema
                        value = project.codec.decode(schema, arrival.value or b"")
                        if arrival.topic == agent.responses:
                            responses[rid] = value
                        elif rid in sent:
                            await _play_the_person(console, approvals, sent[rid], value)
        await stack.stop_workers()
    for rid, question in sent.items():
        _print_request(console, rid, question, responses.get(rid))
    _print_refunds(console, data_dir)
    report = await run_audit(
        project.cluster(),
        agent.requests,
        [agent.responses],
        since=Position(timestamp_ms=started_ms),
        now_ms=now_ms(),
        grace_ms=0,
    )
    console.print(
        f"audit (read back from Kafka): {report.entered} entered {agent.requests}; "
        + ", ".join(f"{n} ended in {t}" for t, n in sorted(report.by_topic.items()))
        + f"; {len(report.missing)} missing, {len(report.duplicated)} duplicated"
    )
    missing = set(sent) - set(responses)
    if missing:
        console.print(f"[red]{len(missing)} question(s) got no answer: {sorted(missing)}[/]")
    return 1 if missing or report.missing or report.duplicated else 0


async def _play_the_person(
    console: Console, approvals: Approvals, question: Question, ask: dict[str, Any]
) -> None:
    rid = ask["request_id"]
    console.print(f"[bold]approval needed[/] for {rid}: {ask['summary']}", highlight=False)
    if question.verdict is None:
        console.print("  (left unanswered: it times out as a denial)")
        return
    approved, reason = question.verdict
    command = f"podium approve {rid}" + ("" if approved else f" --deny --reason {reason!r}")
    console.print(f"  the demo answers as a person would: {command}", highlight=False)
    await approvals.decide(rid, approved, reason=reason, by="demo", call_id=ask["call_id"])


def _print_request(console: Console, rid: str, question: Question, response: dict[str, Any] | None) -> None:
    console.rule(f"{question.body}  ({question.account})")
    if response is None:
        console.print(f"[red]no answer for {rid}[/]")
        return
    table = Table("turn", "step", "name", "detail", "ms", "USD", show_lines=False)
    for step in response["steps"]:
        style = "red" if step["is_error"] else ""
        detail = step["detail"].replace("\n", " ")[:90]
        cost = f"{step['cost_usd']:.6f}" if step["kind"] == "model_turn" else ""
        ms = f"{step['ms']:.0f}" if step["ms"] else ""
        table.add_row(str(step["turn"]), step["kind"], step["name"], detail, ms, cost, style=style)
    console.print(table)
    flag = "" if response["status"] == "answered" else f"[yellow](degraded: {response['reason']})[/] "
    console.print(f"answer: {flag}{response['answer']}", highlight=False)
    console.print(f"{response['turns']} model turns, total ${response['cost_usd']:.6f}  (request {rid})")


def _print_refunds(console: Console, data_dir: Path) -> None:
    from agents.billing.accounts import SampleBillingSystem

    refunds = SampleBillingSystem(data_dir).refunds()
    calls_log = data_dir / "refund_calls.jsonl"
    lines = calls_log.read_text().splitlines() if calls_log.exists() else []
    runs = Counter(json.loads(line)["key"] for line in lines)
    twice = [key for key, n in runs.items() if n > 1]
    console.print(
        f"refunds in the billing system: {len(refunds)} "
        + "; ".join(f"{r.id} {r.account} {r.invoice_id} ${r.amount_usd:.2f}" for r in refunds[-3:])
        + f"; refund tool runs per call id: {'none twice' if not twice else f'TWICE for {twice}'}"
    )
