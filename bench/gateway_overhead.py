"""Gateway overhead per call against a bare httpx call to the provider simulator, same run.

    .venv/bin/python bench/gateway_overhead.py [--calls 2000] [--in-flight 500]

1. Sequential calls with the simulator at 0 ms latency: p50/p99 of a bare httpx POST to
   /v1/chat/completions and of ModelGateway.complete (one route: error mapping, breaker, rate
   limiter, cost, spans off), and the ratio. The difference is the gateway's own cost.
2. 1 s simulated latency, ``--in-flight`` calls at once through one gateway: calls/s sustained.
The simulator is a stand-in, not a model; it runs in this process's machine, on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
from rich.console import Console
from rich.table import Table

from agents.gateway.gateway import CallPolicy, ModelGateway, Route
from agents.gateway.pricing import Price, PriceTable
from agents.gateway.providers.http import OpenAIProvider
from agents.gateway.providers.protocol import ChatRequest
from agents.gateway.providers.simulator import SimConfig, SimulatorServer

BODY = {
    "model": "small",
    "messages": [{"role": "user", "content": "How do I reset my password?"}],
    "max_tokens": 64,
}
REQUEST = ChatRequest(model="small", messages=BODY["messages"], max_tokens=64)  # type: ignore[arg-type]
PRICES = PriceTable({"small": Price(0.15, 0.6)})


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def sequential(url: str, calls: int) -> tuple[list[float], list[float]]:
    bare, gated = [], []
    async with httpx.AsyncClient(base_url=url + "/v1") as client:
        provider = OpenAIProvider("sim", url + "/v1")
        gateway = ModelGateway({"sim": provider}, PRICES)
        policy = CallPolicy(chain=(Route("sim", "small"),), timeout_s=10)
        for _ in range(50):  # warm both paths
            await client.post("/chat/completions", json=BODY)
            await gateway.complete(REQUEST, policy)
        for _ in range(calls):
            t = time.perf_counter()
            (await client.post("/chat/completions", json=BODY)).json()
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            await gateway.complete(REQUEST, policy)
            gated.append(time.perf_counter() - t)
        await provider.aclose()
    return bare, gated


async def concurrent_bare(url: str, in_flight: int, rounds: int) -> float:
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url + "/v1", limits=limits, timeout=30) as client:
        started = time.perf_counter()
        for _ in range(rounds):
            await asyncio.gather(*(client.post("/chat/completions", json=BODY) for _ in range(in_flight)))
        return in_flight * rounds / (time.perf_counter() - started)


async def concurrent(url: str, in_flight: int, rounds: int) -> float:
    provider = OpenAIProvider("sim", url + "/v1")
    gateway = ModelGateway({"sim": provider}, PRICES)
    policy = CallPolicy(chain=(Route("sim", "small"),), timeout_s=30)
    started = time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(gateway.complete(REQUEST, policy) for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    await provider.aclose()
    return in_flight * rounds / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=120)
    with SimulatorServer(SimConfig(latency_ms=0, jitter_ms=0, tokens_per_s=1e9)) as url:
        bare, gated = asyncio.run(sequential(url, args.calls))
    with SimulatorServer(SimConfig(latency_ms=1000, jitter_ms=0, tokens_per_s=1e9)) as url:
        bare_rate = asyncio.run(concurrent_bare(url, args.in_flight, args.rounds))
        rate = asyncio.run(concurrent(url, args.in_flight, args.rounds))
    table = Table(title=f"{args.calls} sequential calls, simulator at 0 ms (stand-in, loopback)")
    for column in ("path", "p50 ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for name, values in (("bare httpx POST", bare), ("ModelGateway.complete", gated)):
        table.add_row(
            name,
            f"{pct(values, 0.5):.2f}",
            f"{pct(values, 0.99):.2f}",
            f"{statistics.mean(values) * 1000:.2f}",
        )
    overhead = [g - b for g, b in zip(sorted(gated), sorted(bare), strict=True)]
    table.add_row(
        "gateway overhead",
        f"{pct(overhead, 0.5):.2f}",
        f"{pct(overhead, 0.99):.2f}",
        f"{(statistics.mean(gated) - statistics.mean(bare)) * 1000:.2f}",
    )
    table.add_row(
        "ratio gateway / bare",
        f"{pct(gated, 0.5) / pct(bare, 0.5):.2f}",
        f"{pct(gated, 0.99) / pct(bare, 0.99):.2f}",
        "",
    )
    console.print(table)
    console.print(
        f"1 s simulated latency, {args.in_flight} in flight: bare httpx {bare_rate:,.0f} calls/s, gateway "
        f"{rate:,.0f} calls/s (ratio {rate / bare_rate:.2f}; ceiling {args.in_flight} calls/s)"
    )


if __name__ == "__main__":
    main()
