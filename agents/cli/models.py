"""``podium models``: the gateway's providers, prices and policies; the offline classifier's accuracy."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Annotated, Any

import typer
from rich.table import Table

from streams.cli import (
    app,
    console,
    guard,
    load_project,
    run_async,
)
from streams.errors import PodiumError
from streams.runtime import Project

models_app = typer.Typer(help="The model gateway's providers, prices and policies.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("status")
def models_status(
    probe: Annotated[bool, typer.Option("--probe", help="Call each route once.")] = False,
) -> None:
    """Providers (and where their keys come from), prices, each stage's chain; --probe calls them."""
    from agents import local_models
    from agents.gateway.config import build_gateway, load_gateway_config
    from agents.gateway.providers.protocol import ChatRequest, EmbeddingRequest

    project = load_project()
    config = guard(lambda: load_gateway_config(project.settings.models_file))
    providers = Table("provider", "kind", "base url", "key from", "req/min", "tok/min")
    for name, p in config.providers.items():
        source = f"${p.api_key_env}" if p.api_key_env else (str(p.api_key_file) if p.api_key_file else "-")
        providers.add_row(
            name,
            p.kind,
            p.base_url,
            source,
            str(p.requests_per_minute or "-"),
            str(p.tokens_per_minute or "-"),
        )
    console.print(providers)
    prices = Table("model", "input $/Mtok", "output $/Mtok", "cached input $/Mtok")
    for model, price in config.prices.items():
        prices.add_row(
            model,
            f"{price.input:g}",
            f"{price.output:g}",
            "-" if price.cached_input is None else f"{price.cached_input:g}",
        )
    console.print(prices)
    routes = Table("stage", "chain (fallback order)", "timeout s", "retries")
    for stage, policy in config.stages.items():
        chain = " -> ".join(f"{r.provider}/{r.model}" for r in policy.chain)
        if policy.operation != "chat":
            chain = f"({policy.operation}) {chain}"
        routes.add_row(stage, chain, f"{policy.timeout_s:g}", str(policy.max_retries))
    console.print(routes)
    _print_circuits(project)
    if not probe:
        return

    async def go() -> list[tuple[str, str, str]]:
        gateway = build_gateway(config, project.settings.provider_keys, local_models=local_models())
        rows = []
        ping = ChatRequest(model="", messages=[{"role": "user", "content": "ping"}], max_tokens=8)
        try:
            for stage in config.stages:
                policy = config.policy(stage)
                for route in policy.chain:
                    started = time.perf_counter()
                    provider = gateway.provider(route.provider)
                    try:
                        if policy.operation == "embeddings":
                            await provider.embed(EmbeddingRequest(route.model, ("ping",)), 10.0)
                        else:
                            await provider.complete(replace(ping, model=route.model), 10.0)
                        rows.append(
                            (
                                f"{route.provider}/{route.model}",
                                "ok",
                                f"{(time.perf_counter() - started) * 1000:.0f} ms",
                            )
                        )
                    except PodiumError as exc:
                        rows.append((f"{route.provider}/{route.model}", "[red]failed[/]", str(exc)[:80]))
        finally:
            await gateway.aclose()
        return rows

    probes = Table("route", "probe", "detail")
    for row in run_async(go):
        probes.add_row(*row)
    console.print(probes)


def _print_circuits(project: Project) -> None:
    """The circuits the workers reported to podium.circuits, newest state per worker and route."""
    from streams.kafka import Selection, TopicReader

    async def read() -> dict[bytes, dict[str, Any]]:
        latest: dict[bytes, dict[str, Any]] = {}
        async with TopicReader(project.cluster()) as reader:
            async for record in reader.read(await reader.plan(Selection("podium.circuits"))):
                if record.key is not None and record.value is not None:
                    latest[record.key] = project.codec.decode("podium.CircuitState", record.value)
        return latest

    try:
        latest = asyncio.run(read())
    except PodiumError as exc:
        console.print(f"circuits: not read ({exc})")
        return
    if not latest:
        console.print("circuits: no worker has reported a change (every circuit closed since start)")
        return
    table = Table("route", "worker", "state", "since", title="circuits reported by the workers")
    now = time.time()
    for state in sorted(latest.values(), key=lambda c: (c["provider"], c["model"], c["worker"])):
        colour = {"open": "red", "half_open": "yellow"}.get(state["state"], "green")
        table.add_row(
            f"{state['provider']}/{state['model']}",
            state["worker"],
            f"[{colour}]{state['state']}[/]",
            f"{now - state['changed_ms'] / 1000:.0f}s ago",
        )
    console.print(table)


@models_app.command("eval-classifier")
def eval_classifier(seed: Annotated[int, typer.Option("--seed")] = 7) -> None:
    """Accuracy of the offline intent classifier (a local TF-IDF model) on a held-out split."""
    from agents.offline.classifier import EXAMPLES, evaluate

    result = evaluate(seed=seed)
    console.print(
        f"offline intent classifier (TF-IDF + logistic regression, a local model) on {EXAMPLES.name}: "
        f"accuracy {result.accuracy:.1%} on {result.test_size} held-out examples "
        f"(trained on {result.train_size})"
    )
