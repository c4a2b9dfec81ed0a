"""The processes of bench/gateway_overhead.py: the provider simulator, and one client case each.

    python bench/gateway_cases.py sim --latency-ms 1000 --port P
    python bench/gateway_cases.py CASE --url URL --sequential N [--also CASE,...] [--uvloop]
    python bench/gateway_cases.py CASE --url URL --calls N --in-flight M [--spread-s S] [--uvloop]

``sim`` serves the simulator (a stand-in, not a model; no jitter, tokens as fast as they go)
on a loopback port with uvicorn until it is stopped. A client case prints one JSON line: either per-call
seconds of sequential calls (``--sequential``) or the rate and client CPU of ``--calls`` calls
with ``--in-flight`` at once. Only the standard library is imported at module level: the LiteLLM
cases run with the interpreter of a venv of the bench's own (bench/peer_venv.py), which has
LiteLLM, httpx and httpx-aiohttp but not podium.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

MESSAGES = [{"role": "user", "content": "How do I reset my password?"}]
BODY = {"model": "small", "messages": MESSAGES, "max_tokens": 64}
TIMEOUT_S = 60.0  # generous: a case that cannot keep up shows in its rate, not in errors
CONNECTIONS = 600  # the bare clients' one pool (the gateway's providers bound their own)

Call = Callable[[], Awaitable[Any]]
Case = Callable[[str], Awaitable[tuple[dict[str, Call], Callable[[], Awaitable[None]]]]]


def simulator_app() -> Any:
    """The simulator's app for a uvicorn worker (its latency from the environment)."""
    from agents.gateway.providers.simulator import SimConfig, make_app

    latency_ms = float(os.environ["PODIUM_BENCH_SIM_LATENCY_MS"])
    return make_app(SimConfig(latency_ms=latency_ms, jitter_ms=0, tokens_per_s=1e9))


def serve_simulator(latency_ms: float, workers: int, port: int) -> None:
    """The simulator (``workers`` processes on one port) until this process is stopped."""
    import uvicorn

    os.environ["PODIUM_BENCH_SIM_LATENCY_MS"] = str(latency_ms)
    print(f"http://127.0.0.1:{port}", flush=True)
    uvicorn.run(
        "gateway_cases:simulator_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="warning",
        lifespan="off",
    )


def _bare_httpx(url: str, aiohttp: bool) -> Any:
    import httpx

    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    transport = None
    if aiohttp:
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits)
    return httpx.AsyncClient(base_url=url + "/v1", limits=limits, transport=transport, timeout=TIMEOUT_S)


async def bare(url: str, aiohttp: bool) -> tuple[dict[str, Call], Callable[[], Awaitable[None]]]:
    client = _bare_httpx(url, aiohttp)

    async def call() -> Any:
        response = await client.post("/chat/completions", json=BODY)
        response.raise_for_status()
        return response.json()

    return {"httpx-aiohttp" if aiohttp else "httpx": call}, client.aclose


async def gateway(url: str) -> tuple[dict[str, Call], Callable[[], Awaitable[None]]]:
    from agents.gateway.gateway import CallPolicy, ModelGateway, Route
    from agents.gateway.pricing import Price, PriceTable
    from agents.gateway.providers.http import OpenAIProvider
    from agents.gateway.providers.protocol import ChatRequest

    provider = OpenAIProvider("sim", url + "/v1", api_key="sk-bench")
    models = ModelGateway({"sim": provider}, PriceTable({"small": Price(0.15, 0.6)}))
    policy = CallPolicy(chain=(Route("sim", "small"),), timeout_s=TIMEOUT_S)
    request = ChatRequest(model="small", messages=MESSAGES, max_tokens=64)  # type: ignore[arg-type]

    async def complete() -> Any:
        return await models.complete(request, policy)

    async def stream() -> Any:
        async for event in models.stream(request, policy):
            last = event
        return last

    return {"gateway": complete, "gateway-stream": stream}, models.aclose


async def litellm(url: str) -> tuple[dict[str, Call], Callable[[], Awaitable[None]]]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of prices
    import litellm as lite

    lite.telemetry = False
    lite.suppress_debug_info = True
    params = {"model": "openai/small", "api_base": url + "/v1", "api_key": "sk-bench"}
    router = lite.Router(
        model_list=[{"model_name": "small", "litellm_params": {**params, "timeout": TIMEOUT_S}}],
        num_retries=0,
    )

    async def acompletion() -> Any:
        return await lite.acompletion(
            messages=MESSAGES, max_tokens=64, timeout=TIMEOUT_S, num_retries=0, **params
        )

    async def routed() -> Any:
        return await router.acompletion(model="small", messages=MESSAGES, max_tokens=64)

    async def close() -> None:
        await lite.close_litellm_async_clients()

    return {"litellm": acompletion, "litellm-router": routed}, close


# Each factory makes its calls (by case name) and what closes their clients.
FACTORIES: dict[str, Case] = {
    "httpx": lambda url: bare(url, aiohttp=False),
    "httpx-aiohttp": lambda url: bare(url, aiohttp=True),
    "gateway": gateway,
    "gateway-stream": gateway,
    "litellm": litellm,
    "litellm-router": litellm,
}


async def sequential(url: str, names: list[str], calls: int) -> dict[str, Any]:
    """Per-call seconds of each named call, interleaved call by call (same load for each);
    the bare httpx calls over AiohttpTransport come along as the baseline."""
    calls_of: dict[str, Call] = {}
    closers = []
    for name in ["httpx-aiohttp", *names]:
        if name in calls_of:
            continue
        made, close = await FACTORIES[name](url)
        calls_of.update(made)
        closers.append(close)
    chosen = {name: calls_of[name] for name in dict.fromkeys(["httpx-aiohttp", *names])}
    for _ in range(50):  # warm every path
        for call in chosen.values():
            await call()
    times: dict[str, list[float]] = {name: [] for name in chosen}
    for _ in range(calls):
        for name, call in chosen.items():
            started = time.perf_counter()
            await call()
            times[name].append(time.perf_counter() - started)
    for close in closers:
        await close()
    return {"sequential": times}


async def in_flight(url: str, name: str, calls: int, limit: int, spread_s: float) -> dict[str, Any]:
    """``calls`` calls, ``limit`` at once, after one warm-up call per slot (so the pool holds its
    connections before the clock starts; a warm-up call may fail, and a measured one is counted
    by its error's type). The slots start ``spread_s / limit`` apart (0: all
    together) and each starts its next call when one ends. Measured while every slot is busy
    (from the last slot's first start to the last call's start): calls started per second, and
    this process's CPU per call over that window (the rate calls end at, in a steady state)."""
    made, close = await FACTORIES[name](url)
    call = made[name]
    await asyncio.gather(*(call() for _ in range(limit)), return_exceptions=True)
    left = calls
    window: dict[str, float] = {}
    failed: dict[str, int] = {}

    async def worker(slot: int, started: float) -> None:
        nonlocal left
        await asyncio.sleep(max(0.0, started + slot * spread_s / limit - time.perf_counter()))
        if slot == limit - 1:
            window.update(start=time.perf_counter(), cpu=time.process_time(), left=left)
        while left > 0:
            left -= 1
            if left == 0:
                window.update(end=time.perf_counter(), cpu=time.process_time() - window["cpu"])
            try:
                await call()
            except Exception as exc:  # noqa: BLE001 - a failed call is counted and shown, not fatal
                failed[type(exc).__name__] = failed.get(type(exc).__name__, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(slot, started) for slot in range(limit)))
    elapsed = time.perf_counter() - started
    await close()
    counted = window["left"] - 1  # the starts after the window opened, up to the last one
    span = window["end"] - window["start"]
    return {
        "calls_per_s": (counted - sum(failed.values())) / span,  # the calls that failed do not count
        "cpu_ms_per_call": window["cpu"] * 1000 / counted,
        "window_s": span,
        "elapsed_s": elapsed,
        "all_calls_per_s": calls / elapsed,
        "failed": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("case", choices=["sim", *FACTORIES])
    parser.add_argument("--also", default="", help="sequential: more cases, comma-separated")
    parser.add_argument("--url", default="")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--sequential", type=int, default=0)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--spread-s", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.case == "sim":
        serve_simulator(args.latency_ms, args.workers, args.port)
        return
    if args.sequential:
        names = [args.case, *(n for n in args.also.split(",") if n)]
        work = sequential(args.url, names, args.sequential)
    else:
        work = in_flight(args.url, args.case, args.calls, args.in_flight, args.spread_s)
    if args.uvloop:
        import uvloop

        result = uvloop.run(work)
    else:
        result = asyncio.run(work)
    print(json.dumps({"loop": "uvloop" if args.uvloop else "asyncio", **result}), flush=True)


if __name__ == "__main__":
    main()
