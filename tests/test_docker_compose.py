"""docker-compose.yml stays valid and in step with the local broker (no Docker engine needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config import DEFAULT_KAFKA_VERSION
from streams.kafka.broker import CLUSTER_SETTINGS

REPO = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def test_kafka_service_mirrors_the_local_broker_settings() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{DEFAULT_KAFKA_VERSION}"
    env = {
        k.removeprefix("KAFKA_").lower().replace("_", "."): str(v) for k, v in kafka["environment"].items()
    }
    for key, value in CLUSTER_SETTINGS.items():
        assert env.get(key) == value, (
            f"docker-compose.yml: KAFKA_{key.upper().replace('.', '_')} should be {value}"
        )


def test_workers_apply_topics_first_and_point_at_the_broker() -> None:
    services = compose()["services"]
    assert services["topics"]["command"] == ["topics", "apply"]
    assert services["workers"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    for name in ("topics", "workers"):
        assert services[name]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert (REPO / "Dockerfile").exists()


def test_compose_config_when_a_compose_tool_is_installed() -> None:
    # Optional: `docker compose config` needs only the client plugin, not an engine.
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("no docker-compose here (apt-get install docker-compose); the structure is checked above")
    result = subprocess.run(
        [tool, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
