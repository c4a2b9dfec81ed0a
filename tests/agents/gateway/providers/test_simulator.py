"""Injected connection drops: the client sees the connection break, the server log stays quiet.

The simulator runs under uvicorn in its own process, as ``podium sim`` and the demo run it, with
logging at INFO so every line it could print about a fault shows.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from agents.gateway.providers.simulator import SimConfig, SimulatorServer

CHILD = """
import logging, sys
import uvicorn
from agents.gateway.providers.simulator import SimConfig, make_app
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
uvicorn.run(make_app(SimConfig(latency_ms=0, jitter_ms=0)), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="info", access_log=False)
"""
BODY = {"model": "sim", "max_tokens": 40, "messages": [{"role": "user", "content": "hello there"}]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sim:
    def __init__(self, url: str, process: subprocess.Popen[str]) -> None:
        self.url = url
        self.process = process

    def stop(self) -> str:
        """Stops the server; its whole stderr."""
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=10)
        return err


@pytest.fixture
def sim() -> Iterator[Sim]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # importing agents loads scikit-learn
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the simulator did not start: {process.communicate()}") from None
            time.sleep(0.05)
    try:
        yield Sim(url, process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_resets_and_cut_streams_break_the_connection_with_one_quiet_line_each(sim: Sim) -> None:
    with httpx.Client(base_url=sim.url, timeout=5) as client:
        for path in ("/v1/chat/completions", "/v1/messages"):
            with pytest.raises(httpx.TransportError):
                client.post(path, json=BODY, headers={"x-sim-fault": "reset"})
            received: list[str] = []
            with pytest.raises(httpx.TransportError):  # noqa: SIM117 (the raise is in the reading)
                with client.stream(
                    "POST", path, json={**BODY, "stream": True}, headers={"x-sim-fault": "cut_stream"}
                ) as response:
                    assert response.status_code == 200
                    received.extend(response.iter_lines())
            assert any(line.startswith("data:") for line in received), "some events came before the cut"
        # The server is unharmed: a normal call after the drops is answered in full.
        assert client.post("/v1/chat/completions", json=BODY).json()["choices"][0]["message"]["content"]
    err = sim.stop()
    assert "Traceback" not in err and "ConnectionResetError" not in err, err
    assert not [line for line in err.splitlines() if line.startswith(("ERROR", "WARNING"))], err
    injected = [line for line in err.splitlines() if "injected" in line]
    assert len(injected) == 4, err
    assert all(
        line.startswith("INFO agents.gateway.providers.simulator provider simulator: injected")
        for line in injected
    )


def test_the_simulator_keeps_only_its_newest_requests() -> None:
    server = SimulatorServer(SimConfig(latency_ms=0, jitter_ms=0, requests_kept=3))
    with server as url, httpx.Client(base_url=url, timeout=5) as client:
        for n in range(5):
            body = {**BODY, "messages": [{"role": "user", "content": f"call {n}"}]}
            assert client.post("/v1/chat/completions", json=body).status_code == 200
        kept = server.requests
    assert isinstance(kept, list)
    assert [r.messages[0]["content"] for r in kept] == ["call 2", "call 3", "call 4"]
    assert server.calls == 5


def test_the_simulator_embeds_deterministically_and_injects_the_chat_faults() -> None:
    import numpy as np

    texts = ["How do I reset my password?", "resetting passwords", "Quarterly invoice totals", "!!!"]
    body = {"model": "text-embedding-3-small", "input": texts}
    with SimulatorServer(SimConfig(latency_ms=0, jitter_ms=0)) as url, httpx.Client(base_url=url) as client:
        first = client.post("/v1/embeddings", json=body).json()
        again = client.post("/v1/embeddings", json=body).json()
        assert first["data"] == again["data"] and first["usage"]["prompt_tokens"] > 0
        rows = np.array([d["embedding"] for d in first["data"]])
        assert rows.shape == (4, 256) and [d["index"] for d in first["data"]] == [0, 1, 2, 3]
        assert np.allclose(np.linalg.norm(rows[:3], axis=1), 1) and not rows[3].any()  # no word: zero
        assert rows[0] @ rows[1] > 0.3 > rows[0] @ rows[2]  # shared stems and trigrams
        wide = client.post("/v1/embeddings", json={**body, "dimensions": 1536}).json()
        assert len(wide["data"][0]["embedding"]) == 1536
        refused = client.post("/v1/embeddings", json={"model": "m", "input": [[1, 2]]})
        assert refused.status_code == 400
        limited = client.post("/v1/embeddings", json=body, headers={"x-sim-fault": "rate_limit"})
        assert limited.status_code == 429 and limited.headers["retry-after"]
    faults = ("rate_limit", "server_error")
    storm = SimConfig(seed=3, fault_rate=0.5, faults=faults, latency_ms=0, jitter_ms=0)
    with SimulatorServer(storm) as url, httpx.Client(base_url=url) as client:
        codes = [client.post("/v1/embeddings", json=body).status_code for _ in range(40)]
    assert {200, 429, 500} == set(codes) and 8 < codes.count(200) < 32
