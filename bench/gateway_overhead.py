"""The model gateway against bare httpx and LiteLLM on the provider simulator, in one run.

    .venv/bin/python bench/gateway_overhead.py [--calls 1500] [--in-flight 500] [--sequential 2000]
        [--latency-ms 1000] [--modes together,spread] [--no-litellm] [--uvloop]

The simulator (a stand-in, not a model: no jitter, tokens as fast as they go) runs in a process
of its own, and so does every client case (bench/gateway_cases.py); LiteLLM's cases run with the
interpreter of a venv of the bench's own (bench/peer_venv.py: LiteLLM is not podium's
dependency), against the same simulator with its OpenAI-compatible provider and ``api_base``.

1. Sequential calls, simulator at 0 ms: per-call p50 and p99 of a bare httpx POST over httpx's
   own transport, the same over ``httpx-aiohttp``'s AiohttpTransport, ``ModelGateway.complete``
   (one route: error mapping, breaker, rate limiter, cost, metrics; no span sampled) and
   LiteLLM's ``acompletion`` and ``Router.acompletion``, interleaved call by call within each
   process. Overhead: the case's p50 (p99) minus that of a bare httpx POST over AiohttpTransport
   in the same process (the transport the gateway's providers use). Target: p99 < 1 ms.
2. ``--in-flight`` calls at once at ``--latency-ms`` (so the limit is in-flight / latency calls/s),
   ``--calls`` calls after one warm-up call per slot: calls/s while every slot is busy, and the
   client process's CPU per call (``time.process_time``). Two ways to start the slots:
   ``together`` (all at once, as issue 15 measured: every slot then answers in the same burst,
   one latency apart, so a call waits for the whole burst's client work) and ``spread`` (starts
   one latency / in-flight apart, as calls arriving at that rate would). Target: the gateway at
   >= 0.9 of the limit. The simulator's CPU per call (warm-up included) says whether it was
   the limit instead.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peer_venv import peer_python
from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
CASES = BENCH / "gateway_cases.py"
LITELLM = ["litellm==1.110.2", "httpx-aiohttp==0.2.0"]
ROWS = {
    "httpx": "bare httpx, httpcore pool",
    "httpx-aiohttp": "bare httpx, AiohttpTransport",
    "gateway": "ModelGateway.complete",
    "gateway-stream": "ModelGateway.stream (SSE)",
    "litellm": "LiteLLM acompletion",
    "litellm-router": "LiteLLM Router",
}


@dataclass
class Row:
    p50_ms: float | None = None
    p99_ms: float | None = None
    overhead: tuple[float, float] | None = None
    rates: dict[str, dict[str, float]] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _cpu_s(pid: int) -> float:
    """A process's CPU seconds so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def simulator(latency_ms: float) -> Iterator[tuple[str, int]]:
    """The simulator in a process of its own: its URL and pid."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(CASES), "sim", "--latency-ms", str(latency_ms), "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the provider simulator did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_case(python: Path, case: str, *args: str) -> dict[str, Any]:
    """One client case in a process of its own: the JSON line it printed."""
    done = subprocess.run(
        [str(python), str(CASES), case, *args], capture_output=True, text=True, check=False, cwd=BENCH
    )
    if done.returncode != 0:
        raise RuntimeError(f"{case} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def sequential(rows: dict[str, Row], url: str, groups: list[tuple[Path, list[str]]], args: Any) -> None:
    for python, names in groups:
        extra = ["--uvloop"] if args.uvloop and python == Path(sys.executable) else []
        also = ",".join(names[1:])
        times = run_case(
            python, names[0], "--url", url, "--sequential", str(args.sequential), "--also", also, *extra
        )["sequential"]
        base = times["httpx-aiohttp"]
        for name, values in times.items():
            row = rows.setdefault(name, Row())
            if row.p50_ms is not None:
                continue  # the baseline comes along in every process: keep podium's own
            row.p50_ms, row.p99_ms = pct(values, 0.5), pct(values, 0.99)
            if name not in ("httpx", "httpx-aiohttp"):
                row.overhead = (pct(values, 0.5) - pct(base, 0.5), pct(values, 0.99) - pct(base, 0.99))


def concurrent(
    rows: dict[str, Row], url: str, sim_pid: int, cases: list[tuple[Path, str]], args: Any
) -> None:
    spreads = {"together": 0.0, "spread": args.latency_ms / 1000}
    for mode in args.modes.split(","):
        for python, name in cases:
            extra = ["--uvloop"] if args.uvloop and python == Path(sys.executable) else []
            sim_before = _cpu_s(sim_pid)
            result = run_case(
                python,
                name,
                "--url",
                url,
                "--calls",
                str(args.calls),
                "--in-flight",
                str(args.in_flight),
                "--spread-s",
                str(spreads[mode]),
                *extra,
            )
            result["sim_cpu_ms_per_call"] = (
                (_cpu_s(sim_pid) - sim_before) * 1000 / (args.calls + args.in_flight)
            )
            rows.setdefault(name, Row()).rates[mode] = result
            print(
                f"  {mode:8s} {name:15s} {result['calls_per_s']:6.0f} calls/s, "
                f"{result['cpu_ms_per_call']:.2f} ms CPU/call, load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
            )


def table(rows: dict[str, Row], args: Any, load: tuple[float, float]) -> Table:
    limit = args.in_flight / (args.latency_ms / 1000)
    modes = args.modes.split(",")
    title = (
        f"Model gateway, simulator in its own process (stand-in, loopback), {args.sequential} "
        f"sequential calls at 0 ms; {args.calls} calls, {args.in_flight} in flight at "
        f"{args.latency_ms:.0f} ms (limit {limit:.0f} calls/s); load average {load[0]:.1f} -> {load[1]:.1f}"
    )
    result = Table(title=title, title_justify="left")
    result.add_column("case")
    for column in ("p50 ms", "p99 ms", "overhead p50/p99"):
        result.add_column(column, justify="right")
    for mode in modes:
        result.add_column(f"calls/s {mode}", justify="right")
        result.add_column("/limit, /bare", justify="right")
        result.add_column("CPU ms", justify="right")
    result.add_column("sim CPU ms", justify="right")
    result.add_column("failed calls", justify="left")
    bare = rows.get("httpx", Row()).rates
    for name, label in ROWS.items():
        row = rows.get(name)
        if row is None:
            continue
        cells = [
            label,
            f"{row.p50_ms:.2f}" if row.p50_ms is not None else "",
            f"{row.p99_ms:.2f}" if row.p99_ms is not None else "",
            f"{row.overhead[0]:.2f} / {row.overhead[1]:.2f}" if row.overhead else "",
        ]
        for mode in modes:
            rate = row.rates.get(mode)
            if rate is None:
                cells += ["", "", ""]
                continue
            versus = bare.get(mode)
            ratio = f", {rate['calls_per_s'] / versus['calls_per_s']:.2f}x" if versus else ""
            cells += [
                f"{rate['calls_per_s']:,.0f}",
                f"{rate['calls_per_s'] / limit:.2f}{ratio}",
                f"{rate['cpu_ms_per_call']:.2f}",
            ]
        sims = [r["sim_cpu_ms_per_call"] for r in row.rates.values()]
        cells.append(f"{statistics.mean(sims):.2f}" if sims else "")
        failed = {
            f"{mode} {kind}": count for mode, r in row.rates.items() for kind, count in r["failed"].items()
        }
        cells.append(", ".join(f"{count} {what}" for what, count in failed.items()) or "none")
        result.add_row(*cells)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=1000)
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--modes", default="together,spread", help="together, spread or both")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--uvloop", action="store_true", help="podium's client cases on uvloop")
    args = parser.parse_args()
    if args.uvloop:
        import importlib.util

        if importlib.util.find_spec("uvloop") is None:
            parser.error("--uvloop: uvloop is not installed in this venv (pip install uvloop)")
    podium = Path(sys.executable)
    groups = [(podium, ["httpx", "httpx-aiohttp", "gateway"])]
    cases = [(podium, name) for name in ("httpx", "httpx-aiohttp", "gateway", "gateway-stream")]
    if not args.no_litellm:
        peer = peer_python("litellm", LITELLM)
        groups.append((peer, ["litellm", "litellm-router"]))
        cases += [(peer, "litellm"), (peer, "litellm-router")]
    load_before = os.getloadavg()[0]
    rows: dict[str, Row] = {}
    print("sequential calls at 0 ms ...", file=sys.stderr)
    with simulator(0) as (url, _):
        sequential(rows, url, groups, args)
    print(f"{args.in_flight} in flight at {args.latency_ms:.0f} ms ...", file=sys.stderr)
    with simulator(args.latency_ms) as (url, pid):
        concurrent(rows, url, pid, cases, args)
    console = Console(width=200)
    console.print(table(rows, args, (load_before, os.getloadavg()[0])))
    loop = "uvloop" if args.uvloop else "asyncio"
    console.print(
        f"Client event loop: {loop} for podium's cases, asyncio for LiteLLM's (LiteLLM "
        f"{LITELLM[0].split('==')[1]}). Bare httpx: one pool of 600 connections. Overhead (ms): "
        "p50 (p99) minus a bare httpx POST's over AiohttpTransport in the same process. CPU ms: "
        "the client process's CPU per call; sim CPU ms: the simulator's (warm-up included)."
    )


if __name__ == "__main__":
    main()
