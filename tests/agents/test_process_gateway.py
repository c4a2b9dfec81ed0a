"""The pipelines of one process (``podium up``) share one model gateway: a provider's rate limit
and each route's circuit belong to the process, not to each pipeline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

import agents
from agents.gateway.gateway import BudgetSpent, CallPolicy, GatewayError, ModelGateway
from agents.gateway.providers.protocol import ChatRequest
from streams.runtime.project import Project
from streams.runtime.stage import Resource, Stage, StageEnv, close_resources, open_resources
from streams.telemetry.otel import Telemetry

REPO = Path(__file__).resolve().parents[2]
LIMIT = 3  # requests per minute the provider allows


def _services(stages: list[Stage[Any]], stage: str) -> Any:
    [found] = [s.resources[0] for s in stages if s.name == stage]
    return found


async def _calls_that_went_through(calls: list[tuple[ModelGateway, CallPolicy]]) -> int:
    request = ChatRequest(model="", messages=[{"role": "user", "content": "How do I export a report?"}])
    through = 0
    for gateway, policy in calls:
        try:
            # A call that would have to wait for the rate limit longer than this gives up.
            await gateway.complete(request, policy, time.monotonic() + 2.0)
            through += 1
        except (GatewayError, BudgetSpent):
            pass
    return through


async def test_the_pipelines_of_one_process_are_held_to_the_providers_rate_limit_together(
    project: Project, tmp_path: Path
) -> None:
    models = yaml.safe_load((REPO / "models.yaml").read_text())
    models["providers"]["local"]["requests_per_minute"] = LIMIT
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(models))
    settings = project.settings.model_copy(
        update={"models_file": path, "pipelines_file": REPO / "pipelines.yaml"}
    )
    # As `podium up` builds them: every pipeline's stages, from the project of the process.
    stages = Project(settings, agents.PIPELINES).stages(["support", "content", "market"])
    env = StageEnv(project.cluster(), project.catalog, project.codec, Telemetry.configure("none"))
    opened: list[list[Resource]] = []
    try:
        for stage in stages:  # each worker opens its stage's resources
            opened.append(await open_resources(stage.resources, env))
        support, content = _services(stages, "generate"), _services(stages, "draft")
        market = _services(stages, "signals")
        _, direct = support.routed_policy("generate-direct", 1.0)
        # As many calls from each pipeline as the provider allows a minute, and one more.
        calls = [(support.gateway, direct), (content.gateway, content.draft_policy)] * (LIMIT + 1)
        # The support services' semantic cache made the provider's first call of the minute
        # when it opened: the probe that names its embedding model's dimensions.
        assert await _calls_that_went_through(calls) == LIMIT - 1
        assert support.gateway is content.gateway is market.gateway
        route = direct.chain[0]
        assert support.gateway.breaker(route) is market.gateway.breaker(route)
    finally:
        for resources in reversed(opened):
            await close_resources(resources)
