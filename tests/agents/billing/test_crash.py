"""100 billing-agent requests against the provider simulator at 20% faults while the agent worker
and the tool worker are killed with SIGKILL at random moments and started again: every request
ends once, no refund call runs twice, and no model turn that was written is paid for again."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from agents.gateway.providers.simulator import SimConfig, SimulatorServer
from streams.contracts.headers import now_ms
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.kafka.reading import Position, Selection, TopicReader
from streams.operations.audit import run_audit
from streams.runtime.project import Project
from tests.streams.running import start_worker, wait_for

QUESTIONS = (
    ("I was charged twice for my subscription this month", ("A-1001", "A-1006")),
    ("How do I export a dashboard to CSV?", ("A-1002", "A-1003")),
    ("Can you check my last invoice?", ("A-1004", "A-1005")),
)
TOOLS = ("lookup-invoices", "get-subscription", "search-docs", "issue-refund", "docs-mcp")


def _models(url: str) -> str:
    return f"""
providers:
  sim-openai: {{kind: openai, base_url: "{url}/v1"}}
  sim-anthropic: {{kind: anthropic, base_url: "{url}"}}
  local: {{kind: local}}
prices:
  sim-large: {{input: 3.00, output: 15.00}}
  local-planner: {{input: 0, output: 0}}
stages:
  billing:
    chain:
      - {{provider: sim-openai, model: sim-large}}
      - {{provider: sim-anthropic, model: sim-large}}
      - {{provider: local, model: local-planner}}
    timeout_s: 3
    max_retries: 2
"""


class Workers:
    """The agent worker and the tool worker as processes of their own, killed and started again."""

    def __init__(self, cluster: Cluster, folder: Path, env: dict[str, str]) -> None:
        self.cluster, self.folder, self.env = cluster, folder, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: Counter[str] = Counter()

    def start(self, which: str) -> None:
        self.starts[which] += 1
        log = self.folder / f"{which}-{self.starts[which]}.log"
        targets = ("billing-agent",) if which == "agent" else TOOLS
        self.procs[which] = start_worker(self.cluster, log, *targets, env=self.env)
        wait_for(log, "podium: running", timeout_s=120)

    def kill(self, which: str) -> None:
        proc = self.procs[which]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_kills_at_random_moments_lose_nothing_run_no_refund_twice_and_pay_no_written_turn_twice(
    project: Project, tmp_path: Path
) -> None:
    rng = random.Random(12)
    cluster = project.cluster()
    config = SimConfig(seed=3, fault_rate=0.2, latency_ms=30, jitter_ms=20, retry_after_s=0.1, timeout_s=5.0)
    simulator = SimulatorServer(config)
    with simulator as url:
        models = tmp_path / "models.yaml"
        models.write_text(_models(url))
        home = tmp_path / "home"
        env = {"PODIUM_MODELS": str(models), "PODIUM_HOME": str(home), "PODIUM_OTEL_EXPORTER": "none"}
        workers = Workers(cluster, tmp_path, env)
        started_ms = now_ms()
        try:
            workers.start("agent")
            workers.start("tools")
            ids = await _run(project, workers, rng)
        finally:
            workers.stop()
    answered_calls = [r for r in simulator.requests if r.fault is None]
    report = await run_audit(
        cluster,
        "billing.requests",
        ["billing.responses", "billing.requests.dlq"],
        since=Position(timestamp_ms=started_ms),
        now_ms=now_ms(),
        grace_ms=0,
    )
    assert not report.missing, f"{len(report.missing)} requests never ended: {report.missing[:5]}"
    assert set(ids) <= set(report.ended)
    assert all(len(set(topics)) == 1 for topics in report.duplicated.values()), report.duplicated
    assert workers.starts["agent"] >= 3 and workers.starts["tools"] >= 3  # it really was killed

    # The refund tool's own count of its runs (a line per run, across processes).
    lines = (home / "billing" / "refund_calls.jsonl").read_text().splitlines()
    runs = Counter(json.loads(line)["key"] for line in lines)
    assert runs and max(runs.values()) == 1, [k for k, n in runs.items() if n > 1]

    # A model call the simulator answered after the turn it made was written is a turn paid twice.
    written = _written_turns([s for s in await _states(project, cluster) if s[1]["request_id"] in ids])
    by_ticket = {ticket: rid for rid, ticket in ids.items()}
    paid_again = []
    for call in answered_calls:
        rid, turn = by_ticket.get(_ticket(call.messages), ""), _turn(call.messages)
        at = written.get(rid, {}).get(turn)
        if at is not None and call.at_ms > at:
            paid_again.append((rid, turn, call.at_ms - at))
    print(
        f"crash test: {len(ids)} requests, {dict(workers.starts)} starts, {len(answered_calls)} model calls "
        f"answered, {len(report.duplicated)} with a repeated answer, {len(runs)} refund calls run"
    )
    assert len(answered_calls) >= 100 and not paid_again, paid_again


async def _run(project: Project, workers: Workers, rng: random.Random) -> dict[str, str]:
    """Publish the requests, approve every refund, kill and restart the workers meanwhile, and
    wait for every answer. Returns request id -> ticket."""
    ids: dict[str, str] = {}
    answered: set[str] = set()
    async with (
        Follower(workers.cluster, ["billing.responses", "billing.approvals"]) as follower,
        Publisher(cluster=workers.cluster, catalog=project.catalog, codec=project.codec) as publisher,
    ):
        for i in range(100):
            body, accounts = QUESTIONS[i % len(QUESTIONS)]
            record = {"body": body, "context": {"account": accounts[i % 2], "ticket": f"T{i}"}}
            ids[await publisher.publish("billing.requests", record)] = f"T{i}"

        async def kill_now_and_then() -> None:
            for _ in range(4):
                await asyncio.sleep(rng.uniform(1.5, 4.0))
                which = rng.choice(("agent", "tools"))
                await asyncio.to_thread(workers.kill, which)
                await asyncio.to_thread(workers.start, which)
            for which in ("agent", "tools"):  # each at least twice
                if workers.starts[which] < 3:
                    await asyncio.to_thread(workers.kill, which)
                    await asyncio.to_thread(workers.start, which)

        killer = asyncio.create_task(kill_now_and_then())
        deadline = now_ms() + 300_000
        while (not killer.done() or answered < set(ids)) and now_ms() < deadline:
            for rid, arrivals in (await follower.poll(0.5)).items():
                for a in arrivals:
                    if a.topic == "billing.responses":
                        answered.add(rid)
                        continue
                    ask = project.codec.decode("podium.ApprovalRequest", a.value or b"")
                    decision = {
                        "request_id": rid,
                        "call_id": ask["call_id"],
                        "approved": True,
                        "reason": "",
                        "by": "test",
                        "at_ms": now_ms(),
                    }
                    await publisher.publish("billing.decisions", decision, request_id=rid)
        await killer
    return ids


def _ticket(messages: list[Any]) -> str:
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            if (found := re.search(r"ticket=(T\d+)", text)) is not None:
                return found.group(1)
    return ""


def _turn(messages: list[Any]) -> int:
    """The turn a call was asked to make: one more than the model's turns it was shown."""
    return 1 + sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")


def _written_turns(states: list[tuple[int, dict[str, Any]]]) -> dict[str, dict[int, int]]:
    """request id -> turn -> when the state with that turn was first written (ms)."""
    written: dict[str, dict[int, int]] = defaultdict(dict)
    for at_ms, state in sorted(states, key=lambda s: s[0]):
        for turn in range(1, state["turn"] + 1):
            written[state["request_id"]].setdefault(turn, at_ms)
    return written


async def _states(project: Project, cluster: Cluster) -> list[tuple[int, dict[str, Any]]]:
    async with TopicReader(cluster) as reader:
        return [
            (r.timestamp, project.codec.decode("podium.agent.State", r.value))
            async for r in reader.read(await reader.plan(Selection("billing.state")))
            if r.value is not None
        ]
