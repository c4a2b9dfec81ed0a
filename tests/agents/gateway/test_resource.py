"""The process's one gateway: opened by its first user, closed by its last, heard by watchers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest
from pydantic import SecretStr

from agents.gateway.gateway import GatewayError
from agents.gateway.providers.protocol import ChatRequest
from agents.gateway.providers.simulator import SimConfig, SimulatorServer
from agents.gateway.resource import GatewayResource, shared_or_own
from streams.contracts.catalog import Catalog
from streams.contracts.codec import Codec
from streams.errors import ConfigError
from streams.runtime.stage import StageEnv
from streams.telemetry.otel import Telemetry

PLANTED = "sk-planted-77ab"


def _env() -> StageEnv:
    # The gateway only reads the telemetry of the worker that opens it.
    return StageEnv("unused:9092", cast(Catalog, None), cast(Codec, None), Telemetry.configure("none"))


def _models(tmp_path: Path, providers: str, chain: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(
        f"providers:\n{providers}prices: {{m: {{input: 0, output: 0}}}}\nstages:\n  g: {{chain: [{chain}]}}\n"
    )
    return path


async def test_the_first_user_opens_the_gateway_and_the_last_closes_it(tmp_path: Path) -> None:
    resource = GatewayResource(_models(tmp_path, "  p: {kind: local}\n", "{provider: p, model: m}"))
    await resource.open(_env())
    gateway = resource.gateway
    await resource.open(_env())  # a second pipeline's services
    assert resource.gateway is gateway  # not built again
    await resource.close()
    assert resource.gateway is gateway and resource.config.policy("g").chain[0].model == "m"
    await resource.close()
    with pytest.raises(AssertionError, match="not open"):
        _ = resource.gateway
    await resource.close()  # one close too many changes nothing


async def test_a_missing_key_fails_at_open_and_the_key_is_never_shown(tmp_path: Path) -> None:
    models = _models(
        tmp_path,
        "  oa: {kind: openai, base_url: 'http://127.0.0.1:9/v1', api_key_env: PLANTED_KEY}\n",
        "{provider: oa, model: m}",
    )
    with pytest.raises(ConfigError, match="PLANTED_KEY is not set"):
        await GatewayResource(models).open(_env())
    resource = GatewayResource(models, {"PLANTED_KEY": SecretStr(PLANTED)})
    await resource.open(_env())
    try:
        assert PLANTED not in repr(resource) + str(resource)
    finally:
        await resource.close()


def test_pipelines_share_the_process_gateway_only_over_the_same_models(tmp_path: Path) -> None:
    shared = GatewayResource(tmp_path / "models.yaml")
    assert shared_or_own(shared, tmp_path / "models.yaml") is shared
    own = shared_or_own(None, tmp_path / "models.yaml")
    assert own is not shared and own.models == shared.models
    with pytest.raises(ConfigError, match=r"other\.yaml"):
        shared_or_own(shared, tmp_path / "other.yaml")
    with pytest.raises(ConfigError, match=r"no local model local-x: register .* agents.local_models"):
        shared_or_own(shared, tmp_path / "models.yaml", {"local-x": str.upper})


async def test_watchers_hear_circuit_changes_until_they_stop_watching(tmp_path: Path) -> None:
    with SimulatorServer(SimConfig(fault_rate=1.0, faults=("server_error",), latency_ms=0)) as url:
        models = _models(
            tmp_path, f"  failing: {{kind: openai, base_url: '{url}/v1'}}\n", "{provider: failing, model: m}"
        )
        resource = GatewayResource(models)
        await resource.open(_env())
        heard: list[tuple[str, str, str]] = []
        ignored: list[tuple[str, str, str]] = []
        unwatch = resource.watch_circuits(lambda *change: heard.append(change))
        resource.watch_circuits(lambda *change: ignored.append(change))()  # stops at once
        try:
            policy = resource.config.policy("g")
            request = ChatRequest(model="", messages=[{"role": "user", "content": "hi"}])
            for _ in range(6):  # enough failures to open the circuit
                with pytest.raises(GatewayError):
                    await resource.gateway.complete(request, policy)
            unwatch()
            unwatch()  # twice is harmless
        finally:
            await resource.close()
            await asyncio.sleep(0.05)  # let the loop finish closing the sockets
    assert heard == [("failing", "m", "open")] and ignored == []
