"""``podium sim``: the provider simulator (a stand-in, not a model)."""

from __future__ import annotations

from typing import Annotated

import typer

from streams.cli import (
    app,
    console,
    err,
)


@app.command("sim")
def sim(
    port: Annotated[int, typer.Option("--port")] = 8900,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    fault_rate: Annotated[float, typer.Option("--fault-rate", help="Share of calls that fail, 0..1.")] = 0.0,
    faults: Annotated[str, typer.Option("--faults", help="Comma-separated kinds to draw from.")] = "",
    latency_ms: Annotated[float, typer.Option("--latency-ms")] = 20.0,
    tokens_per_s: Annotated[float, typer.Option("--tokens-per-s")] = 2000.0,
) -> None:
    """Run the provider simulator (a stand-in, not a model): OpenAI and Anthropic protocols, faults."""
    import uvicorn

    from agents.gateway.providers.simulator import FAULTS, SimConfig, make_app

    chosen = tuple(f for f in faults.split(",") if f) or FAULTS
    unknown = set(chosen) - set(FAULTS)
    if unknown:
        err.print(f"unknown fault kind(s) {sorted(unknown)}; choose from {', '.join(FAULTS)}")
        raise typer.Exit(2)
    config = SimConfig(
        seed=seed, fault_rate=fault_rate, faults=chosen, latency_ms=latency_ms, tokens_per_s=tokens_per_s
    )
    console.print(
        f"provider simulator (stand-in, not a model) on http://127.0.0.1:{port}: "
        "OpenAI at /v1/chat/completions and /v1/embeddings, Anthropic at /v1/messages; "
        f"faults {fault_rate:.0%} of "
        f"{', '.join(chosen)}; force one with the header x-sim-fault"
    )
    uvicorn.run(make_app(config), host="127.0.0.1", port=port, log_level="warning")
