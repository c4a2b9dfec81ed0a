"""The stage runtime's pass-through against raw aiokafka, quixstreams, faust and raw confluent-kafka,
each worker in a process of its own, in one run.

    .venv/bin/python bench/stage_throughput.py [--records 20000] [--slow-records 10000] [--rounds 3]
        [--latency-records 3000] [--cases raw-aiokafka,stage,...] [--json PATH]

Cases (``--cases``, all by default; the worker code is bench/passthrough_workers.py):
  raw-aiokafka   the baseline (1.00): getmany -> send the same bytes -> await the acks -> commit;
  stage          the podium stage runtime, pass-through handler (decode, encode, produce, commit),
                 default telemetry (no exporter), the stage's default max_in_flight;
  stage-uvloop   the same on uvloop's event loop (skipped, with a note, if uvloop is not installed:
                 ``pip install podium[fast]``);
  stage-slow     the stage, a handler that awaits 200 ms (a model call), 1000 in flight, on
                 ``--slow-records``;
  quixstreams    quixstreams 3.28 ``sdf.to_topic`` (librdkafka), in a venv of the bench's own
                 (bench/peer_venv.py);
  faust          a faust-streaming agent (podium's venv has faust for bench/faust_commit_probe.py);
  raw-confluent  confluent-kafka's Consumer + Producer loop, the same shape as raw-aiokafka, in the
                 quixstreams venv: what librdkafka itself gives;
  raw-aiokafka-16k  opt-in (only with --cases): raw-aiokafka with aiokafka's own 16 KB producer
                 batch instead of the 1 MB the stage's producer (and raw-aiokafka's) has:
                 what the batch size alone is worth.
Every case is at-least-once: an input offset is committed after its output was acknowledged
(how each library does it: bench/passthrough_workers.py). Podium's cases and raw-aiokafka call
``tune_worker_process(<loop>)`` before their event loop starts, as ``podium run`` does (its GC
settings; asyncio's loop, uvloop's for stage-uvloop); the peers run as their users run them.

Per case and round, on fresh topics (3 partitions) and a fresh consumer group: this process fills
the input with ``--records`` 1 KB Avro records, then starts the worker's process (the backlog is
there before it starts) and from then on only watches the output topic's end offsets (a
ListOffsets request every 10 ms near a mark, up to 100 ms apart while one is far off; no record is
read) until every record is out, then stops the worker. The cases take turns within a round (the
order rotates from round to round), so a busy minute on a shared machine falls on every case
rather than on one.
- msgs/s: records between the first and the last output record's LogAppendTime (the output topic
  is made with ``message.timestamp.type=LogAppendTime``: the broker's clock), so process start,
  imports and the group join do not count.
- worker CPU per record: the worker's own ``time.process_time()`` (the whole process, every
  thread: librdkafka's count), which the worker reads when this process tells it that 10% and
  then 90% of the outputs are on the broker, divided by the outputs between those two reads (the
  end offsets read just before and just after each). So the figure is the steady state: the
  start, the join, the pipeline filling at the first records and draining at the last are
  outside it, and no case has a per-record hook of the bench in it. This is measured in the
  worker rather than from /proc/<pid>/stat in this process because the worker answers within
  microseconds of a mark (stat's 10 ms ticks would be 1-5% of a window) and the same way for
  every library. One bias is left, librdkafka's: it fetches far ahead into its own queue (up to
  64 MB by default), so the quixstreams and raw-confluent figures may leave out part of their
  fetch work. The JSON has a second figure without it: CPU from the moment the worker may start
  its clients (``go``: its imports done; the group join included) to the last output, over all
  records.
- the ratio: each round's msgs/s over the same round's raw aiokafka; the table shows its median
  and its min-max over the rounds. Every figure is the median over the rounds.
Latency (``--latency-records`` at 1000 records/s, 0 skips it), raw aiokafka and the stage, each a
worker in its own process that one warm-up record went through first: output LogAppendTime minus
input LogAppendTime (both topics stamped by the broker), p50 and p99, medians over the rounds.
Run it from the repository root (``make bench-hotpath`` does). Uses the running local broker or
KAFKA_BOOTSTRAP_SERVERS (bench/local_kafka.py); the peer cases need a PLAINTEXT cluster. Not a
test: the figures depend on the machine's load (printed with them).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from local_kafka import bench_project
from passthrough_workers import PARTITIONS, pass_through_catalog_text
from peer_venv import peer_python
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from streams.contracts import parse_catalog
from streams.kafka import TopicAdmin
from streams.kafka.connection import PLAINTEXT, Cluster
from streams.runtime import Project

REPO = Path(__file__).resolve().parents[1]
WORKERS = Path(__file__).resolve().parent / "passthrough_workers.py"
QUIX = ("quixstreams", ["quixstreams==3.28.*"])
BASELINE = "raw-aiokafka"
POLL_S = 0.01  # the output watch's polls near a mark
MAX_POLL_S = 0.1  # and while the mark is far off
console = Console(width=130)


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    peer: bool = False  # runs under the quixstreams venv's interpreter
    slow: bool = False  # on --slow-records
    worker: str = ""  # the case in bench/passthrough_workers.py: unset, the same name
    options: dict[str, Any] = field(default_factory=dict)  # the worker's own arguments
    default: bool = True  # run without --cases


CASES = (
    # The stage's producer batches up to 1 MB (cut at each topic's max.message.bytes): the raw
    # loop is given the same, so the ratio compares the loops, not their producer settings.
    Case("raw-aiokafka", "raw aiokafka loop, 1 MB producer batch", options={"max_batch_size": 1_000_000}),
    Case("stage", "podium stage, pass-through, asyncio loop"),
    Case("stage-uvloop", "podium stage, pass-through, uvloop"),
    Case(
        "stage-slow",
        "podium stage, handler awaits 200 ms, 1000 in flight",
        slow=True,
        options={"in_flight": 1000, "handler_ms": 200},
    ),
    Case("quixstreams", "quixstreams sdf.to_topic", peer=True),
    Case("faust", "faust-streaming agent"),
    Case("raw-confluent", "raw confluent-kafka loop", peer=True),
    # Opt-in: what the producer's batch size alone does to the baseline. aiokafka's own default
    # is 16 KB, some 15 records of 1 KB per partition per produce request (issue 15's baseline).
    Case(
        "raw-aiokafka-16k",
        "raw aiokafka loop, aiokafka's default 16 KB producer batch",
        worker="raw-aiokafka",
        options={"max_batch_size": 16384},
        default=False,
    ),
)
LATENCY_CASES = ("raw-aiokafka", "stage")


# -- the summary (no I/O) ---------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One case's figures in one round."""

    msgs_s: float
    cpu_us: float  # worker CPU per record between the 10% and the 90% output marks
    cpu_us_whole: float  # from its clients' start (group join included) to the last output
    committed: int = 0  # input records its group had committed when it stopped
    window: float = 0  # outputs between the 10% and the 90% marks (the CPU figure's denominator)


@dataclass(frozen=True)
class Summary:
    msgs_s: float  # medians over the rounds
    cpu_us: float
    ratio: float | None  # msgs/s over the same round's baseline: median, min, max
    ratio_min: float | None
    ratio_max: float | None


def summarize(rounds: dict[str, list[Run]], baseline: str = BASELINE) -> dict[str, Summary]:
    """Each case's medians over its rounds and its ratio to the baseline, round by round."""
    base = rounds.get(baseline)
    out = {}
    for name, runs in rounds.items():
        ratios = [r.msgs_s / b.msgs_s for r, b in zip(runs, base, strict=True)] if base else []
        out[name] = Summary(
            msgs_s=statistics.median(r.msgs_s for r in runs),
            cpu_us=statistics.median(r.cpu_us for r in runs),
            ratio=statistics.median(ratios) if ratios else None,
            ratio_min=min(ratios) if ratios else None,
            ratio_max=max(ratios) if ratios else None,
        )
    return out


@dataclass(frozen=True)
class Target:
    text: str
    met: bool | None  # None: not measured in this run
    seen: str


def targets(rounds: dict[str, list[Run]], summary: dict[str, Summary]) -> list[Target]:
    """Issue 15's targets for the pass-through and whether this run met them: the stage's on
    asyncio's loop, and again on uvloop's when that case ran (``podium run`` takes uvloop where
    the ``podium[fast]`` extra installed it)."""
    found: list[Target] = []
    faust = rounds.get("faust")
    for name, who in (("stage", "stage"), ("stage-uvloop", "stage on uvloop")):
        stage = summary.get(name)
        if stage is None and name != "stage":
            continue
        if stage is not None and stage.ratio is not None:
            ratio = f"{stage.ratio:.2f} ({stage.ratio_min:.2f}-{stage.ratio_max:.2f})"
            found.append(Target(f"{who} >= 0.6 of raw aiokafka (median)", stage.ratio >= 0.6, ratio))
        else:
            found.append(
                Target(f"{who} >= 0.6 of raw aiokafka (median)", None, f"needs {name} and {BASELINE}")
            )
        if stage is not None:
            cpu = f"{stage.cpu_us:.0f} us"
            found.append(Target(f"{who} <= 80 us worker CPU per record", stage.cpu_us <= 80, cpu))
        else:
            found.append(Target(f"{who} <= 80 us worker CPU per record", None, f"needs {name}"))
        if stage is not None and faust is not None:
            above = [s.msgs_s > f.msgs_s for s, f in zip(rounds[name], faust, strict=True)]
            seen = f"{sum(above)} of {len(above)} rounds"
            found.append(Target(f"{who} above faust in every round", all(above), seen))
        else:
            found.append(Target(f"{who} above faust in every round", None, f"needs {name} and faust"))
    slow = summary.get("stage-slow")
    if slow is not None:
        lowest = min(r.msgs_s for r in rounds["stage-slow"])
        seen = f"{slow.msgs_s:,.0f} (lowest round {lowest:,.0f})"
        found.append(Target("200 ms handler >= 500 msgs/s (median)", slow.msgs_s >= 500, seen))
    else:
        found.append(Target("200 ms handler >= 500 msgs/s (median)", None, "needs stage-slow"))
    return found


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * q))])


# -- topics and records -------------------------------------------------------------------
async def make_topics(
    cluster: Cluster, project: Project, source: str, sink: str, *, stamp_source: bool
) -> None:
    """The case's topics (the podium cases' retry and dead-letter topics too); the output, and for
    the latency runs the input, stamped by the broker (LogAppendTime)."""
    catalog = parse_catalog(pass_through_catalog_text(source, sink), Path("bench"), project.schemas.names())
    async with TopicAdmin(cluster) as admin:
        await admin.apply(catalog)
    stamped = [sink, source] if stamp_source else [sink]
    specs = {spec.name: spec for spec in catalog.topics}
    client = cluster.admin()
    await client.start()
    try:
        responses = await client.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    name,
                    configs={**specs[name].kafka_configs(1), "message.timestamp.type": "LogAppendTime"},
                )
                for name in stamped
            ]
        )
        for response in responses:  # the broker answers an error per resource, it raises nothing
            for code, message, _, name in response.resources:
                if code:
                    raise RuntimeError(f"could not stamp {name} with LogAppendTime: {message} ({code})")
    finally:
        await client.close()


async def publish(
    cluster: Cluster, topic: str, value: bytes, keys: Sequence[str], rate: float | None = None
) -> None:
    """One record per key, as fast as one producer sends them or at ``rate`` records/s."""
    producer = cluster.producer(acks="all", linger_ms=5 if rate is None else 0)
    await producer.start()
    try:
        futures = []
        started = time.perf_counter()
        for i, key in enumerate(keys):
            k = key.encode()
            futures.append(await producer.send(topic, value, key=k, headers=[("podium-request-id", k)]))
            if rate is not None:
                ahead = (i + 1) / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def timestamps(cluster: Cluster, topic: str, count: int, timeout_s: float = 120) -> dict[bytes, int]:
    """Each key's first timestamp on ``topic``, read from its beginning until ``count`` keys are there."""
    consumer = cluster.consumer(enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen: dict[bytes, int] = {}
        deadline = time.monotonic() + timeout_s
        while len(seen) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                for r in records:
                    seen.setdefault(r.key or b"", r.timestamp)
        if len(seen) < count:
            raise RuntimeError(f"{topic}: {len(seen)} of {count} records arrived")
        return seen
    finally:
        await consumer.stop()


async def committed(cluster: Cluster, group: str, topic: str) -> int:
    """How many of ``topic``'s records ``group`` has committed (offsets start at 0 here)."""
    client = cluster.admin()
    await client.start()
    try:
        offsets = await client.list_consumer_group_offsets(group)
    finally:
        await client.close()
    return sum(max(meta.offset, 0) for tp, meta in offsets.items() if tp.topic == topic)


# -- one worker process -------------------------------------------------------------------
@dataclass
class WorkerProcess:
    """A case's worker, started on its topics; ``mark`` reads its CPU, ``mark('stop')`` ends it."""

    case: str
    python: Path
    args: dict[str, Any]
    log: Path
    process: asyncio.subprocess.Process | None = None
    versions: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(self.python),
                str(WORKERS),
                self.case,
                json.dumps(self.args),
                cwd=REPO,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )

    def check(self) -> None:
        assert self.process is not None
        if self.process.returncode is not None:
            raise RuntimeError(f"{self.case} worker exited {self.process.returncode}: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def answer(self, timeout_s: float = 120) -> float:
        """The worker's CPU (seconds) in its next answer: to a mark, or its ``ready``."""
        assert self.process is not None and self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout=timeout_s)
        except TimeoutError:
            raise RuntimeError(
                f"{self.case} worker gave no answer in {timeout_s:.0f} s: {self.tail()}"
            ) from None
        if not line:
            raise RuntimeError(f"{self.case} worker exited: {self.tail()}")
        answer = json.loads(line)
        self.versions = answer["versions"]
        return float(answer["cpu_s"])

    async def mark(self, name: str) -> float:
        assert self.process is not None and self.process.stdin is not None
        self.check()
        self.process.stdin.write(name.encode() + b"\n")
        await self.process.stdin.drain()
        return await self.answer()

    async def stop(self) -> float:
        cpu_s = await self.mark("stop")
        await self.wait()
        return cpu_s

    async def wait(self) -> None:
        assert self.process is not None
        try:
            await asyncio.wait_for(self.process.wait(), timeout=60)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise RuntimeError(f"{self.case} worker did not stop within 60 s: {self.tail()}") from None

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


class OutputWatch:
    """How many records the output topic holds, from its end offsets (no record is read)."""

    def __init__(self, cluster: Cluster, topic: str) -> None:
        self._consumer: AIOKafkaConsumer = cluster.consumer(enable_auto_commit=False, group_id=None)
        self._tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        self._pause = POLL_S

    async def __aenter__(self) -> OutputWatch:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def count(self) -> int:
        return sum((await self._consumer.end_offsets(self._tps)).values())

    async def wait_for(self, count: int, worker: WorkerProcess, timeout_s: float = 600) -> int:
        """Polls every 10 ms near ``count``, less often while it is far off at the rate seen
        (each poll costs this process CPU the worker could have had: about 6% of a core at 10 ms)."""
        deadline = time.monotonic() + timeout_s
        last = (time.monotonic(), await self.count())
        while last[1] < count:
            worker.check()
            if last[0] > deadline:
                raise RuntimeError(f"{worker.case}: {last[1]} of {count} outputs after {timeout_s:.0f} s")
            await asyncio.sleep(self._pause)
            now = (time.monotonic(), await self.count())
            rate = (now[1] - last[1]) / max(now[0] - last[0], 1e-6)
            self._pause = min(MAX_POLL_S, max(POLL_S, (count - now[1]) / rate / 2)) if rate else POLL_S
            last = now
        return last[1]


# -- the measurements -----------------------------------------------------------------------
@dataclass(frozen=True)
class Bench:
    project: Project
    cluster: Cluster
    value: bytes
    workdir: Path
    pythons: dict[str, Path]  # case -> interpreter

    def worker(self, case: str, prefix: str, **extra: Any) -> tuple[WorkerProcess, str, str]:
        source, sink = f"{prefix}.in", f"{prefix}.out"
        state = self.workdir / prefix  # faust's datadir, quixstreams' state_dir
        args = {
            "bootstrap": self.cluster.bootstrap,
            "source": source,
            "sink": sink,
            "group": prefix,
            "state_dir": str(state),
            **extra,
        }
        log = self.workdir / f"{prefix}.log"
        return WorkerProcess(case, self.pythons[case], args, log), source, sink


async def throughput(bench: Bench, case: Case, prefix: str, records: int) -> tuple[Run, dict[str, str]]:
    worker, source, sink = bench.worker(case.worker or case.name, prefix, **case.options)
    await make_topics(bench.cluster, bench.project, source, sink, stamp_source=False)
    await publish(bench.cluster, source, bench.value, [f"r{i}" for i in range(records)])
    try:
        async with OutputWatch(bench.cluster, sink) as watch:
            await worker.start()
            await worker.answer()  # ready: imports done, its clients not started
            cpu_go = await worker.mark("go")
            window = []  # (outputs, CPU) at the 10% and the 90% marks
            for share in (0.1, 0.9):
                await watch.wait_for(max(1, int(records * share)), worker)
                before = await watch.count()
                cpu_s = await worker.mark(f"{share:.0%}")
                window.append(((before + await watch.count()) / 2, cpu_s))
            await watch.wait_for(records, worker)
            cpu_stop = await worker.stop()
    finally:
        await worker.kill()
    times = sorted((await timestamps(bench.cluster, sink, records)).values())
    msgs_s = (len(times) - 1) / max((times[-1] - times[0]) / 1000, 1e-3)
    (out_a, cpu_a), (out_b, cpu_b) = window
    cpu_us = (cpu_b - cpu_a) / max(out_b - out_a, 1) * 1e6
    done = await committed(bench.cluster, prefix, source)
    return Run(msgs_s, cpu_us, (cpu_stop - cpu_go) / records * 1e6, done, out_b - out_a), worker.versions


async def latency(bench: Bench, case: str, prefix: str, records: int) -> tuple[float, float]:
    worker, source, sink = bench.worker(case, prefix)
    await make_topics(bench.cluster, bench.project, source, sink, stamp_source=True)
    keys = [f"r{i}" for i in range(records)]
    try:
        async with OutputWatch(bench.cluster, sink) as watch:
            await worker.start()
            await worker.answer()
            await worker.mark("go")
            await publish(bench.cluster, source, bench.value, ["warmup"])
            await watch.wait_for(1, worker)
            await publish(bench.cluster, source, bench.value, keys, rate=1000)
            await watch.wait_for(records + 1, worker)
            await worker.stop()
    finally:
        await worker.kill()
    out = await timestamps(bench.cluster, sink, records + 1)
    sent = await timestamps(bench.cluster, source, records + 1)
    latencies = [out[k.encode()] - sent[k.encode()] for k in keys]
    return quantile(latencies, 0.5), quantile(latencies, 0.99)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def chosen_cases(names: str | None) -> list[Case]:
    if not names:
        return [c for c in CASES if c.default]
    by_name = {c.name: c for c in CASES}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(unknown)}: choose from {', '.join(by_name)}")
    return [c for c in CASES if c.name in wanted]


def label(case: Case, versions: dict[str, str]) -> str:
    if case.name == "quixstreams":
        return f"quixstreams {versions.get('quixstreams', '')} sdf.to_topic"
    if case.name == "faust":
        return f"faust-streaming {versions.get('faust-streaming', '')} agent"
    if case.name == "raw-confluent":
        return f"raw confluent-kafka {versions.get('confluent-kafka', '')} loop"
    return case.label


async def measure(
    bench: Bench, cases: list[Case], args: argparse.Namespace, notes: list[str]
) -> tuple[dict[str, list[Run]], dict[str, list[tuple[float, float]]], dict[str, dict[str, str]]]:
    """Every case ``args.rounds`` times, in turns; then the latency runs of the round."""
    run = "ptb" + os.urandom(3).hex()
    rounds: dict[str, list[Run]] = {c.name: [] for c in cases}
    lat: dict[str, list[tuple[float, float]]] = {c: [] for c in LATENCY_CASES if c in rounds}
    versions: dict[str, dict[str, str]] = {}
    for r in range(args.rounds):
        turn = cases[r % len(cases) :] + cases[: r % len(cases)]
        for i, case in enumerate(turn):
            records = args.slow_records if case.slow else args.records
            with console.status(f"round {r + 1} of {args.rounds}: {case.name}, {records:,} records"):
                result, versions[case.name] = await throughput(bench, case, f"{run}.{r}.{i}", records)
            rounds[case.name].append(result)
            if result.window < records / 2:
                notes.append(
                    f"round {r + 1}: {case.name}'s CPU window held {result.window:,.0f} outputs of "
                    f"{records:,} (it ran faster than the 10 ms polls): read its whole-run figure "
                    f"({result.cpu_us_whole:.1f} us) in the JSON, or give it more --records"
                )
            if result.committed < records:
                notes.append(
                    f"round {r + 1}: {case.name} had committed {result.committed:,} of {records:,} "
                    "inputs when it stopped"
                )
            console.print(
                f"round {r + 1}: {case.name:17} {result.msgs_s:10,.0f} msgs/s "
                f"{result.cpu_us:7.1f} us/record ({result.cpu_us_whole:.1f} from its start)"
            )
        if args.latency_records:
            for name in lat:
                with console.status(f"round {r + 1} of {args.rounds}: {name} at 1000/s"):
                    lat[name].append(await latency(bench, name, f"{run}.{r}.lat{name}", args.latency_records))
    return rounds, lat, versions


async def main(args: argparse.Namespace) -> None:
    cases = chosen_cases(args.cases)
    load_at_start = load_average()
    notes: list[str] = []
    if any(c.name == "stage-uvloop" for c in cases) and importlib.util.find_spec("uvloop") is None:
        cases = [c for c in cases if c.name != "stage-uvloop"]
        notes.append(
            "stage-uvloop skipped: uvloop is not installed in this venv (pip install 'podium[fast]')"
        )
    async with bench_project(console) as project:
        cluster = project.cluster()
        if cluster.security != PLAINTEXT and any(c.peer or c.name == "faust" for c in cases):
            cases = [c for c in cases if not (c.peer or c.name == "faust")]
            notes.append(
                "quixstreams, faust and raw-confluent skipped: they connect to a PLAINTEXT cluster only"
            )
        pythons = {c.name: Path(sys.executable) for c in CASES}
        if any(c.peer for c in cases):
            peer = peer_python(*QUIX)
            pythons.update({c.name: peer for c in CASES if c.peer})
        value = project.codec.encode("podium.demo.Note", {"request_id": "r", "text": "x" * 1000})
        workdir = Path(tempfile.mkdtemp(prefix="bench-passthrough-"))
        bench = Bench(project, cluster, value, workdir, pythons)
        try:
            rounds, lat, versions = await measure(bench, cases, args, notes)
        except BaseException:
            console.print(f"the workers' logs are kept in {workdir}")
            raise
        shutil.rmtree(workdir, ignore_errors=True)
        kafka = project.settings.kafka_version
    load = f"{load_at_start} at the start, {load_average()} at the end"
    summary = summarize(rounds)
    results = Results(cases, summary, rounds, lat, versions, args, kafka, load, notes)
    show(results)
    if args.json:
        write_json(Path(args.json), results)


@dataclass(frozen=True)
class Results:
    """One run, as the table and the JSON show it."""

    cases: list[Case]
    summary: dict[str, Summary]
    rounds: dict[str, list[Run]]
    lat: dict[str, list[tuple[float, float]]]
    versions: dict[str, dict[str, str]]
    args: argparse.Namespace
    kafka: str
    load: str
    notes: list[str]


def show(results: Results) -> None:
    slow = (
        f" ({results.args.slow_records:,} for the 200 ms handler)" if "stage-slow" in results.summary else ""
    )
    table = Table(
        title=f"Pass-through, {results.args.records:,} x 1 KB records{slow}, {PARTITIONS} partitions, "
        f"each worker its own process, Kafka {results.kafka}; medians of {results.args.rounds} rounds"
    )
    for column in ("case", "msgs/s (median)", "vs raw aiokafka (median, min-max)", "worker CPU us/record"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for case in results.cases:
        s = results.summary[case.name]
        ratio = "-" if s.ratio is None else f"{s.ratio:.2f} ({s.ratio_min:.2f}-{s.ratio_max:.2f})"
        table.add_row(
            label(case, results.versions.get(case.name, {})), f"{s.msgs_s:,.0f}", ratio, f"{s.cpu_us:.0f}"
        )
    console.print(table)
    if results.lat and all(results.lat.values()):
        latency_table = Table(
            title=f"Latency at 1000 records/s ({results.args.latency_records:,} records), medians of rounds",
            caption="output LogAppendTime - input LogAppendTime; raw awaits each batch's acks "
            "and commit before it fetches again",
        )
        for column in ("case", "p50 ms", "p99 ms"):
            latency_table.add_column(column, justify="left" if column == "case" else "right")
        for name, runs in results.lat.items():
            latency_table.add_row(
                label(next(c for c in CASES if c.name == name), {}),
                f"{statistics.median(p50 for p50, _ in runs):.0f}",
                f"{statistics.median(p99 for _, p99 in runs):.0f}",
            )
        console.print(latency_table)
    console.print("Targets (issue 15), in this run:")
    for t in targets(results.rounds, results.summary):
        verdict = "[dim]not measured[/]" if t.met is None else "[green]met[/]" if t.met else "[red]not met[/]"
        console.print(f"  {t.text}: {verdict} - {t.seen}")
    for note in results.notes:
        console.print(f"note: {escape(note)}")
    console.print(f"load average (1, 5, 15 min): {results.load}")


def write_json(path: Path, results: Results) -> None:
    document = {
        "records": results.args.records,
        "slow_records": results.args.slow_records,
        "rounds": results.args.rounds,
        "partitions": PARTITIONS,
        "kafka": results.kafka,
        "load_average": results.load,
        "notes": results.notes,
        "cases": {
            c.name: {
                "label": label(c, results.versions.get(c.name, {})),
                "versions": results.versions.get(c.name, {}),
                "rounds": [
                    {
                        "msgs_s": r.msgs_s,
                        "cpu_us": r.cpu_us,
                        "cpu_us_whole_run": r.cpu_us_whole,
                        "committed": r.committed,
                        "cpu_window_outputs": r.window,
                    }
                    for r in results.rounds[c.name]
                ],
                "median": {
                    "msgs_s": results.summary[c.name].msgs_s,
                    "cpu_us": results.summary[c.name].cpu_us,
                    "vs_raw": results.summary[c.name].ratio,
                    "vs_raw_min": results.summary[c.name].ratio_min,
                    "vs_raw_max": results.summary[c.name].ratio_max,
                },
            }
            for c in results.cases
        },
        "latency_at_1000_per_s": {
            name: {"rounds": [{"p50_ms": p50, "p99_ms": p99} for p50, p99 in runs]}
            for name, runs in results.lat.items()
        },
        "targets": [
            {"target": t.text, "met": t.met, "seen": t.seen} for t in targets(results.rounds, results.summary)
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"wrote {path}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20000, help="records per pass-through case and round")
    parser.add_argument("--slow-records", type=int, default=10000, help="records for the 200 ms handler")
    parser.add_argument("--rounds", type=int, default=3, help="each case this many times, in turns")
    parser.add_argument("--latency-records", type=int, default=3000, help="records at 1000/s; 0 skips")
    parser.add_argument(
        "--cases",
        help=f"comma-separated, from: {', '.join(c.name for c in CASES)} (default: all but the "
        f"opt-in {', '.join(c.name for c in CASES if not c.default)})",
    )
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
