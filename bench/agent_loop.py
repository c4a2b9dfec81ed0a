"""What podium's agent loop costs per step, against a plain asyncio loop, in one run.

    .venv/bin/python bench/agent_loop.py [--requests 300] [--throughput-requests 1500] [--concurrency 500]

The agent: two cheap async tools (``add``, ``mul``) and the provider simulator (its own process;
a stand-in, not a model; no faults, no jitter) behind the model gateway. For "add and mul a=<i>
b=7" the simulator calls both tools in parallel, and answers the turn that ends with their
results with text: 2 model turns per request (a step is a model turn, as ``Limits.max_steps``
counts them). Its rules answer whenever the conversation ends with tool results, so a second
round of tool calls cannot be asked of it.

1. overhead per step: ``--requests`` requests one at a time, the simulator at 0 ms, alternating
   between (a) podium's loop on Kafka (the agent stage and both tool stages in one worker process,
   as `podium run` runs a pipeline) and (b) the in-process loop in this process: the same
   ``ModelGateway.complete`` calls to the same simulator, the same tools run with
   ``asyncio.gather``. Wall time per request from before the publish to the response read back
   (a) and around the loop (b); overhead per step = (a - b) / turns at p50 and at p99. Where (a)'s
   time goes comes from the response's steps (stamped by the worker).
2. throughput: the simulator at ``--latency-ms`` (1,000), ``--concurrency`` requests in flight
   (a new one published as each one ends), one agent worker process whose stages may hold
   ``--max-in-flight`` records; requests/s and model calls/s against the ideal (concurrency /
   (turns x latency)) and the in-process loop at the same concurrency; model turns in flight
   from the turns' own timestamps; the worker's CPU from /proc.

Each case runs on topics of its own (a fresh prefix) with fresh consumer groups. ``--profile DIR``
runs the worker under cProfile and prints where its time went (the figures of such a run are
slowed by the profiler: do not quote them). Uses the running local broker or
KAFKA_BOOTSTRAP_SERVERS; starts (and stops) one otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from local_kafka import bench_project
from rich.console import Console
from rich.table import Table

from agents.gateway.providers.protocol import ChatRequest
from agents.gateway.resource import GatewayResource
from agents.loop import Agent, Limits, Tool, agent_stages, tool
from streams import ConfigError
from streams.contracts import Catalog, new_request_id, parse_catalog
from streams.ingress import Publisher
from streams.kafka import Follower, TopicAdmin
from streams.kafka.connection import Cluster
from streams.kafka.reading import partitions_of
from streams.runtime import Project, StageEnv, StageWorker
from streams.telemetry import Telemetry

REPO = Path(__file__).resolve().parents[1]
console = Console(width=130)

POLICY = "bench-agent"
ASK_TIMEOUT_S = 600.0
SYSTEM = "You add and multiply with the tools."
TOPICS = """
topics:
  {p}.requests: {value: podium.agent.Request, consumer: {p}, budget: 300s}
  {p}.results: {value: podium.agent.ToolResult, consumer: {p}}
  {p}.decisions: {value: podium.ApprovalDecision, consumer: {p}}
  {p}.approvals: {value: podium.ApprovalRequest}
  {p}.state: {value: podium.agent.State, cleanup: compact}
  {p}.ledger: {value: podium.agent.LedgerEntry, cleanup: compact}
  {p}.responses: {value: podium.agent.Response}
  {p}.tool.add: {value: podium.agent.ToolCall, consumer: add}
  {p}.tool.mul: {value: podium.agent.ToolCall, consumer: mul}
"""


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
async def mul(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOLS: dict[str, Tool] = {t.name: t for t in (add, mul)}


def bench_agent(prefix: str) -> Agent:
    # Long limits: at 500 in flight a request may wait its turn for many seconds.
    limits = Limits(tool_timeout_s=300.0)
    return Agent(prefix, POLICY, SYSTEM, tuple(TOOLS.values()), limits, turn_timeout_s=120.0)


def body(i: int) -> str:
    return f"add and mul a={i} b=7"


def agent_catalog(project: Project, prefix: str) -> Catalog:
    return parse_catalog(
        TOPICS.replace("{p}", prefix), Path("bench-agent-topics.yaml"), project.schemas.names()
    )


def models_file(url: str, directory: Path) -> Path:
    path = directory / "models.agent-bench.yaml"
    path.write_text(
        json.dumps(
            {
                "providers": {"sim": {"kind": "openai", "base_url": url + "/v1"}},
                "prices": {"sim-large": {"input": 3.0, "output": 15.0}},
                "stages": {
                    POLICY: {
                        "chain": [{"provider": "sim", "model": "sim-large"}],
                        "max_retries": 0,
                        "timeout_s": 110,
                    }
                },
            }
        )
    )
    return path


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -------------------------------------------------------------------------------- children


def serve_simulator(port: int, latency_ms: float) -> None:
    """The child process of the simulator: `podium sim`'s app without its jitter."""
    import uvicorn

    from agents.gateway.providers.simulator import SimConfig, make_app

    config = SimConfig(latency_ms=latency_ms, jitter_ms=0.0, tokens_per_s=1_000_000)
    # Idle connections outlive the client's (httpx lets them go after 5 s): with the same 5 s
    # on both sides a request could go out on a connection the server was closing (ReadError).
    uvicorn.run(make_app(config), host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=75)


async def serve_agent(prefix: str, models: Path, max_in_flight: int) -> None:
    """The child process of the agent's workers: its stage and both tool stages, until SIGTERM."""
    from streams.config import load_settings
    from streams.runtime import tune_worker_process

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    tune_worker_process()
    project = Project(load_settings())
    catalog = agent_catalog(project, prefix)
    cluster = project.cluster()
    stages = [replace(s, max_in_flight=max_in_flight) for s in agent_stages(bench_agent(prefix), models)]
    workers = [
        StageWorker(s, cluster=cluster, catalog=catalog, codec=project.codec, group_id=f"{prefix}.{s.name}")
        for s in stages
    ]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: [w.request_stop() for w in workers])
    for w in workers:
        await w.start()
    print("ready", flush=True)
    await asyncio.gather(*(w.run() for w in workers))


@contextlib.contextmanager
def child(args: list[str], ready: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        if ready:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != ready:
                raise RuntimeError(f"{args[0]} did not start: {line!r}")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def simulator(latency_ms: float) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    import httpx

    port = free_port()
    with child(["--serve-simulator", str(port), str(latency_ms)], ready="") as proc:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=0.5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", proc


# ------------------------------------------------------------------------------ the two loops


@dataclass
class Run:
    """One request: its wall time, its model turns ((start, end) on the wall clock, ms) and the
    worker's step stamps (on Kafka)."""

    ms: float
    turns: list[tuple[float, float]] = field(default_factory=list)
    tools_ms: list[float] = field(default_factory=list)
    published_ms: float = 0.0
    read_ms: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    answer: str = ""
    results_ms: list[int] = field(default_factory=list)  # when the tool stages wrote the results


class InProcess:
    """The baseline: the agent as a plain asyncio loop over the same gateway and tools."""

    def __init__(self, gateway: GatewayResource) -> None:
        self.gateway = gateway
        self.specs = tuple(t.spec() for t in TOOLS.values())

    async def ask(self, question: str, max_turns: int = 10) -> Run:
        started = time.perf_counter()
        gateway, policy = self.gateway.gateway, self.gateway.config.policy(POLICY)
        messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
        run = Run(0.0)
        rid = new_request_id()
        for turn in range(1, max_turns + 1):
            request = ChatRequest(
                model="", messages=messages, max_tokens=1024, system=SYSTEM, tools=self.specs
            )
            t0 = time.time() * 1000
            result = await gateway.complete(request, policy, time.monotonic() + 110)
            run.turns.append((t0, time.time() * 1000))
            completion = result.completion
            if not completion.tool_calls:
                run.answer = completion.text
                break
            calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in completion.tool_calls]
            messages.append({"role": "assistant", "content": completion.text, "tool_calls": calls})
            t1 = time.perf_counter()
            outcomes = await asyncio.gather(
                *(
                    TOOLS[c.name].run(c.arguments, idempotency_key=f"{rid}.{turn}.{i}")
                    for i, c in enumerate(completion.tool_calls)
                )
            )
            run.tools_ms.append((time.perf_counter() - t1) * 1000)
            messages += [
                {
                    "role": "tool",
                    "tool_call_id": c.id,
                    "name": c.name,
                    "content": o.content,
                    "is_error": o.is_error,
                }
                for c, o in zip(completion.tool_calls, outcomes, strict=True)
            ]
        run.ms = (time.perf_counter() - started) * 1000
        return run


class OnKafka:
    """Requests published to the agent's topic, responses read back from its responses topic
    (and the tool results' write times from its results topic)."""

    def __init__(self, publisher: Publisher, follower: Follower, agent: Agent, project: Project) -> None:
        self.publisher, self.follower, self.agent, self.codec = publisher, follower, agent, project.codec
        self.waiting: dict[str, tuple[float, asyncio.Future[Run]]] = {}
        self.results: dict[str, list[int]] = {}  # request id -> its tool results' CreateTimes
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OnKafka:
        self._reader = asyncio.create_task(self._read(), name="bench-responses")
        self._reader.add_done_callback(self._fail_all)
        return self

    def _fail_all(self, reader: asyncio.Task[None]) -> None:
        """Nobody waits for a response the dead reader would never hand over."""
        error = reader.exception() if not reader.cancelled() else None
        for _, done in self.waiting.values():
            if not done.done():
                done.set_exception(error or RuntimeError("the response reader stopped"))

    async def __aexit__(self, *_: object) -> None:
        assert self._reader is not None
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def ask(self, question: str) -> Run:
        rid = new_request_id()
        done: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        self.waiting[rid] = (started, done)
        published = time.time() * 1000
        await self.publisher.publish(self.agent.requests, {"body": question, "context": {}}, request_id=rid)
        run = await asyncio.wait_for(done, ASK_TIMEOUT_S)
        run.published_ms = published
        return run

    async def _read(self) -> None:
        while True:
            for rid, arrivals in (await self.follower.poll(0.2)).items():
                if rid not in self.waiting:
                    continue
                self.results.setdefault(rid, []).extend(
                    a.timestamp_ms for a in arrivals if a.topic == self.agent.results
                )
                answers = [a for a in arrivals if a.topic == self.agent.responses]
                if not answers:
                    continue
                now, read = time.perf_counter(), time.time() * 1000
                started, done = self.waiting.pop(rid)
                response = self.codec.decode("podium.agent.Response", answers[0].value or b"")
                if response["status"] != "answered" or response["turns"] < 2:
                    done.set_exception(RuntimeError(f"request {rid} ended {response['status']}: {response}"))
                    continue
                steps = response["steps"]
                turns = [
                    (s["at_ms"] - s["ms"], float(s["at_ms"])) for s in steps if s["kind"] == "model_turn"
                ]
                run = Run((now - started) * 1000, turns, read_ms=read, steps=steps, answer=response["answer"])
                run.results_ms = self.results.pop(rid, [])
                done.set_result(run)


async def closed_loop(ask: Any, total: int, concurrency: int) -> tuple[float, list[Run]]:
    """``total`` requests, ``concurrency`` at a time (a new one as each ends): (seconds, runs)."""
    room = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Run:
        async with room:
            run: Run = await ask(body(i))
            return run

    started = time.perf_counter()
    runs = await asyncio.gather(*(one(i) for i in range(total)))
    return time.perf_counter() - started, list(runs)


def in_flight(turns: list[tuple[float, float]]) -> tuple[float, int]:
    """Model turns in flight over the span of all of them: (mean, max)."""
    if not turns:
        return 0.0, 0
    span = max(e for _, e in turns) - min(s for s, _ in turns)
    events = sorted([(s, 1) for s, _ in turns] + [(e, -1) for _, e in turns], key=lambda x: (x[0], x[1]))
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return sum(e - s for s, e in turns) / span if span else 0.0, peak


# ---------------------------------------------------------------------------------- the cases


@contextlib.contextmanager
def agent_worker(
    prefix: str, models: Path, cluster: Cluster, max_in_flight: int, profile: Path | None
) -> Iterator[subprocess.Popen[str]]:
    args = ["--serve-agent", prefix, str(models), str(max_in_flight)]
    if profile is not None:
        args += ["--profile-to", str(profile)]
    with child(args, ready="ready", env={"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap}) as proc:
        yield proc


async def on_topics(project: Project, prefix: str) -> Catalog:
    catalog = agent_catalog(project, prefix)
    async with TopicAdmin(project.cluster()) as admin:
        await admin.apply(catalog)
    # New topics reach the metadata a client sees a moment after they are created: wait for it
    # here, or the worker's tables may not find them.
    consumer = project.cluster().consumer()
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                for name in catalog.names():
                    await partitions_of(consumer, name)
                return catalog
            except ConfigError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def both_loops(project: Project, catalog: Catalog, agent: Agent, models: Path) -> Any:
    cluster = project.cluster()
    gateway = GatewayResource(models)
    await gateway.open(StageEnv(cluster, catalog, project.codec, Telemetry.configure("none")))
    try:
        async with (
            Follower(cluster, [agent.responses, agent.results]) as follower,
            Publisher(cluster=cluster, catalog=catalog, codec=project.codec) as publisher,
            OnKafka(publisher, follower, agent, project) as kafka,
        ):
            yield InProcess(gateway), kafka
    finally:
        await gateway.close()


@dataclass
class LatencyResult:
    alone: list[Run]
    kafka: list[Run]


async def latency_case(project: Project, args: argparse.Namespace, tmp: Path) -> LatencyResult:
    prefix = f"agentlat{os.urandom(3).hex()}"
    catalog = await on_topics(project, prefix)
    agent = bench_agent(prefix)
    profile = args.profile / "latency.prof" if args.profile else None
    with simulator(0) as (url, _):
        models = models_file(url, tmp)
        with agent_worker(prefix, models, project.cluster(), args.max_in_flight, profile):
            async with both_loops(project, catalog, agent, models) as (alone, kafka):
                for i in range(args.warmup):  # groups joined, connections open, code paths warm
                    await alone.ask(body(i))
                    await kafka.ask(body(i))
                result = LatencyResult([], [])
                with console.status(f"one at a time, {args.requests} requests each way"):
                    for i in range(args.requests):
                        result.alone.append(await alone.ask(body(i)))
                        result.kafka.append(await kafka.ask(body(i)))
                        if result.alone[-1].answer != result.kafka[-1].answer:  # the same calls, or no bench
                            raise RuntimeError(f"answers differ: {result.alone[-1]} != {result.kafka[-1]}")
    return result


@dataclass
class ThroughputResult:
    alone_s: float
    alone: list[Run]
    kafka_s: float
    kafka: list[Run]
    # CPU seconds during each run: this process and the simulator (in process); the worker and
    # the simulator (on Kafka).
    alone_cpu_s: tuple[float, float]
    kafka_cpu_s: tuple[float, float]


async def throughput_case(project: Project, args: argparse.Namespace, tmp: Path) -> ThroughputResult:
    prefix = f"agenttp{os.urandom(3).hex()}"
    catalog = await on_topics(project, prefix)
    agent = bench_agent(prefix)
    profile = args.profile / "throughput.prof" if args.profile else None
    n, c = args.throughput_requests, args.concurrency
    with simulator(args.latency_ms) as (url, sim):
        models = models_file(url, tmp)
        with agent_worker(prefix, models, project.cluster(), args.max_in_flight, profile) as worker:
            async with both_loops(project, catalog, agent, models) as (alone, kafka):
                for i in range(args.warmup):
                    await kafka.ask(body(i))
                with console.status(f"in process: {n} requests, {c} in flight"):
                    before = time.process_time(), cpu_s(sim.pid)
                    alone_s, alone_runs = await closed_loop(alone.ask, n, c)
                    alone_cpu = time.process_time() - before[0], cpu_s(sim.pid) - before[1]
                with console.status(f"on Kafka: {n} requests, {c} in flight"):
                    before = cpu_s(worker.pid), cpu_s(sim.pid)
                    kafka_s, kafka_runs = await closed_loop(kafka.ask, n, c)
                    kafka_cpu = cpu_s(worker.pid) - before[0], cpu_s(sim.pid) - before[1]
    return ThroughputResult(alone_s, alone_runs, kafka_s, kafka_runs, alone_cpu, kafka_cpu)


# ------------------------------------------------------------------------------------ tables


def latency_tables(r: LatencyResult) -> list[Table]:
    alone, kafka = [x.ms for x in r.alone], [x.ms for x in r.kafka]
    turns = statistics.mean(len(x.turns) for x in r.kafka)
    assert all(len(x.turns) == turns for x in (*r.kafka, *r.alone)), "the loops took different turns"
    table = Table(
        title=f"one request at a time, simulator at 0 ms: {len(kafka)} requests each way, "
        f"{turns:.0f} model turns per request (2 parallel tool calls, then the answer)"
    )
    for column in ("path", "p50 ms", "p99 ms", "mean ms", "vs in-process p50", "vs in-process p99"):
        table.add_column(column, justify="right" if column != "path" else "left")
    table.add_row(
        "in-process asyncio loop (baseline)", f"{pct(alone, 50):.2f}", f"{pct(alone, 99):.2f}",
        f"{statistics.mean(alone):.2f}", "1.00", "1.00",
    )  # fmt: skip
    table.add_row(
        "podium loop on Kafka (worker process)", f"{pct(kafka, 50):.2f}", f"{pct(kafka, 99):.2f}",
        f"{statistics.mean(kafka):.2f}", f"{pct(kafka, 50) / pct(alone, 50):.2f}",
        f"{pct(kafka, 99) / pct(alone, 99):.2f}",
    )  # fmt: skip
    table.add_row(
        "[bold]overhead per step[/] (podium - in-process) / turns",
        f"[bold]{(pct(kafka, 50) - pct(alone, 50)) / turns:.2f}[/]",
        f"[bold]{(pct(kafka, 99) - pct(alone, 99)) / turns:.2f}[/]",
        f"{(statistics.mean(kafka) - statistics.mean(alone)) / turns:.2f}", "", "",
    )  # fmt: skip

    # Where a request's time goes on Kafka: from the worker's stamps in the response's steps.
    parts: dict[str, list[float]] = {}

    def part(name: str, value: float) -> None:
        parts.setdefault(name, []).append(value)

    for run in r.kafka:
        (s1, e1), (s2, e2) = run.turns[0], run.turns[-1]
        absorbed = max(s["at_ms"] for s in run.steps if s["kind"] == "tool_result" and s["turn"] == 1)
        part("publish -> turn 1 starts (request written and read, state looked up)", s1 - run.published_ms)
        part("model turn 1 (gateway call in the worker)", e1 - s1)
        written = max(run.results_ms)
        part("turn 1 ends -> both tool results written (state + calls written, read; ledger looked up, "
             "tools run)", written - e1)  # fmt: skip
        part("-> 2nd result taken in (results read; the 1st one's state written first)", absorbed - written)
        part("2nd result taken in -> turn 2 starts", s2 - absorbed)
        part("model turn 2 (gateway call in the worker)", e2 - s2)
        part("turn 2 ends -> response read by the caller (state + response written, read)", run.read_ms - e2)
    for run in r.alone:
        for s, e in run.turns:
            part("in process: one model turn (gateway call)", e - s)
        for ms in run.tools_ms:
            part("in process: both tools (asyncio.gather)", ms)
    where = Table(title="where a request's time goes, ms (worker stamps, 1 ms resolution)")
    for column in ("segment", "p50", "p99"):
        where.add_column(column, justify="right" if column != "segment" else "left")
    for name, values in parts.items():
        where.add_row(name, f"{pct(values, 50):.2f}", f"{pct(values, 99):.2f}")
    return [table, where]


def throughput_table(r: ThroughputResult, args: argparse.Namespace) -> Table:
    turns = statistics.mean(len(x.turns) for x in r.kafka)
    latency_s = args.latency_ms / 1000
    ideal = args.concurrency / (turns * latency_s)
    table = Table(
        title=f"model latency {args.latency_ms:,.0f} ms, {args.concurrency} requests in flight, "
        f"{len(r.kafka)} requests, {turns:.0f} turns each: ideal {ideal:,.0f} requests/s, "
        f"{ideal * turns:,.0f} model calls/s"
    )
    for column in (
        "path", "req/s", "model calls/s", "vs ideal", "vs in-process",
        "turns in flight mean / max", "turn p50 s", "request p50 / p99 s", "CPU, cores",
    ):  # fmt: skip
        table.add_column(column, justify="right" if column != "path" else "left")
    alone_rps = len(r.alone) / r.alone_s
    (bench, sim_alone), (worker, sim_kafka) = r.alone_cpu_s, r.kafka_cpu_s
    for name, runs, seconds, cpu in (
        ("in-process loop (baseline)", r.alone, r.alone_s,
         f"this process {bench / r.alone_s:.2f}, sim {sim_alone / r.alone_s:.2f}"),
        ("podium loop on Kafka", r.kafka, r.kafka_s,
         f"worker {worker / r.kafka_s:.2f} ({worker / len(r.kafka) * 1000:.1f} ms/req), "
         f"sim {sim_kafka / r.kafka_s:.2f}"),
    ):  # fmt: skip
        rps = len(runs) / seconds
        turns_ = [t for x in runs for t in x.turns]
        mean, peak = in_flight(turns_)
        ms = [x.ms for x in runs]
        table.add_row(
            name, f"{rps:,.1f}", f"{len(turns_) / seconds:,.1f}",
            f"{rps / ideal:.2f}", f"{rps / alone_rps:.2f}",
            f"{mean:,.0f} / {peak}", f"{pct([e - s for s, e in turns_], 50) / 1000:.2f}",
            f"{pct(ms, 50) / 1000:.2f} / {pct(ms, 99) / 1000:.2f}", cpu,
        )  # fmt: skip
    return table


def print_profile(path: Path, title: str) -> None:
    if not path.exists():
        console.print(f"[red]no profile written at {path}[/]")
        return
    console.print(f"[bold]{title}[/] (cProfile of the worker, top by own time; {path})")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="one-at-a-time requests of each loop")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--throughput-requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument(
        "--latency-ms", type=float, default=1000.0, help="simulated model latency, throughput"
    )
    parser.add_argument("--max-in-flight", type=int, default=2000, help="each stage's in-flight limit")
    parser.add_argument("--cases", default="latency,throughput")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the worker into this directory")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    async with bench_project(console) as project:
        with tempfile.TemporaryDirectory() as tmp:
            latency = await latency_case(project, args, Path(tmp)) if "latency" in cases else None
            throughput = await throughput_case(project, args, Path(tmp)) if "throughput" in cases else None
    console.print(
        "The model is the provider simulator (a stand-in, not a model: rule-based tool calls and "
        "placeholder text) in its own process; the broker, the simulator, the worker and this "
        "process share the machine's cores."
    )
    if latency is not None:
        console.print(*latency_tables(latency))
    if throughput is not None:
        console.print(
            throughput_table(throughput, args),
            "turns in flight: model calls open at once, from each turn's own start and end (on Kafka "
            "stamped by the worker); turn p50: one model call's time as its caller saw it.",
        )
    if args.profile:
        console.print(
            "[yellow]profiled run: the worker was slowed by cProfile; do not quote these figures[/]"
        )
        for name in ("latency", "throughput"):
            if name in cases:
                print_profile(args.profile / f"{name}.prof", f"worker, {name} case")


def entry() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-simulator":
        serve_simulator(int(sys.argv[2]), float(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-agent":
        prefix, models, max_in_flight = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
        profile = Path(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[5] == "--profile-to" else None
        profiler = cProfile.Profile() if profile is not None else None
        if profiler is not None:
            profiler.enable()
        try:
            asyncio.run(serve_agent(prefix, models, max_in_flight))
        finally:
            if profiler is not None and profile is not None:
                profiler.disable()
                profiler.dump_stats(str(profile))
        return
    asyncio.run(main())


if __name__ == "__main__":
    entry()
