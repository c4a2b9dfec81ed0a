"""`podium up` keeps the support stack running; `podium publish --wait` follows a request to the
topic it ends in. Both as a user runs them, against the session's real broker."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from streams.kafka.connection import Cluster
from tests.streams.running import REPO, podium


def test_up_then_publish_and_wait_then_ctrl_c(cluster: Cluster, tmp_path: Path) -> None:
    # A home of its own: `podium up` runs the kb pipeline too, whose index lives under it (not
    # in the repository's .podium).
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "PODIUM_METRICS_PORT": "0",
        "PODIUM_HOME": str(tmp_path / "home"),
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "up"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            lines.append(line)
            if line.startswith("up:") or not line:
                break
        assert lines[-1].startswith("up:"), "".join(lines)

        body = {"body": "Can I export a dashboard to PDF?", "tenant": "globex"}
        done = podium("publish", "support.requests", "--json", json.dumps(body), "--wait", env=env)
        assert done.returncode == 0, done.stderr
        ended = json.loads(done.stdout)
        assert ended["topic"] == "support.responses"
        assert ended["value"]["tenant"] == "globex" and ended["value"]["route"] == "rag"
        assert ended["request_id"] == ended["value"]["request_id"] == ended["key"]
        assert ended["deadline_ms"] is not None  # the topic's 8 s budget was applied at ingress

        # The request was traced from the CLI's publish through every stage, read back from
        # podium.telemetry (the workers export spans every half second).
        waterfall = ""
        for _ in range(20):
            shown = podium("trace", ended["request_id"], env={**env, "COLUMNS": "200"})
            waterfall = shown.stdout
            if all(f"process support.{t}" in waterfall for t in ("requests", "rag", "grounded", "drafts")):
                break
            time.sleep(0.5)
        assert "send support.requests" in waterfall, waterfall + shown.stderr
        assert "process support.drafts" in waterfall and "chat local-extractive" in waterfall, waterfall

        bad = podium("publish", "support.requests", "--json", '{"subject": "no body"}', "--wait", env=env)
        assert bad.returncode != 0 and "body" in bad.stderr
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out


def test_wait_says_what_to_do_when_no_pipeline_starts_at_the_topic(cluster: Cluster) -> None:
    done = podium(
        "publish",
        "support.responses",
        "--json",
        "{}",
        "--wait",
        env={"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap},
    )
    assert done.returncode == 2 and "no pipeline starts at support.responses" in done.stderr
