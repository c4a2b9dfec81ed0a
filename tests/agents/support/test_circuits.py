"""A provider that keeps failing opens its circuit: the pipeline falls back and still answers,
the workers report the open circuit to podium.circuits, and `podium models status` shows it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.gateway.providers.simulator import SimConfig, SimulatorServer
from agents.support.services import SupportConfig
from agents.support.stages import support_stages
from streams.ingress.publish import Publisher
from streams.kafka.follow import Follower
from streams.runtime.project import Project
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import podium, running


async def test_a_failing_provider_opens_its_circuit_and_status_shows_it(
    shipped_kb: Path, project: Project, unique: str, tmp_path: Path
) -> None:
    cluster = project.cluster()
    # The simulator (a stand-in) answers every call with a 500.
    with SimulatorServer(SimConfig(fault_rate=1.0, faults=("server_error",))) as url:
        models = tmp_path / "models.yaml"
        models.write_text(
            json.dumps(
                {
                    "providers": {
                        "failing": {"kind": "openai", "base_url": url + "/v1"},
                        "local": {"kind": "local"},
                    },
                    "prices": {
                        "sim-large": {"input": 3, "output": 15},
                        "local-extractive": {"input": 0, "output": 0},
                        "local-reply": {"input": 0, "output": 0},
                    },
                    "stages": {
                        "generate": {
                            "chain": [
                                {"provider": "failing", "model": "sim-large"},
                                {"provider": "local", "model": "local-extractive"},
                            ],
                            "max_retries": 0,
                        },
                        "generate-direct": {"chain": [{"provider": "local", "model": "local-reply"}]},
                    },
                }
            )
        )
        config = SupportConfig(home=shipped_kb, models=models, cache_scope=unique)
        workers = [
            StageWorker(s, cluster=cluster, catalog=project.catalog, codec=project.codec)
            for s in support_stages(config)
        ]
        async with (
            running(*workers),
            Follower(cluster, ["support.responses"]) as follower,
            Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub,
        ):
            ids: list[str] = []
            got: dict[str, Any] = {}
            # Two rounds: the first fails often enough to open the circuit (its calls run side
            # by side, so none of them can see it open); the second finds it open.
            for batch in (range(6), range(6, 8)):
                sent = [
                    await pub.publish(
                        "support.requests", {"body": f"How do I set up SAML single sign-on? ({unique}-{i})"}
                    )
                    for i in batch
                ]
                ids += sent
                got |= await follower.collect(set(sent), timeout_s=60)
        assert set(got) == set(ids)  # every request answered, by the fallback
        decisions = []
        for rid in ids:
            response = project.codec.decode("podium.support.Response", got[rid][0].value or b"")
            generate = next(s for s in response["steps"] if s["stage"] == "generate")
            assert generate["model"] == "local/local-extractive"
            decisions.append(generate["decision"])
        assert any("circuit open" in d for d in decisions), decisions

    status = podium(
        "models",
        "status",
        env={"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap, "PODIUM_MODELS": str(models), "COLUMNS": "200"},
    )
    assert status.returncode == 0, status.stderr
    assert "failing/sim-large" in status.stdout and "open" in status.stdout, status.stdout
