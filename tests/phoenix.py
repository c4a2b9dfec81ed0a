"""Arize Phoenix as a real process for the tests that read podium's traces back from it.

`make phoenix` installs it into a venv of its own (.venv-phoenix). :func:`start_phoenix` runs
`phoenix serve` on free ports with its database in a temporary directory; the log stays there
(pytest keeps the last runs' temporary directories) and failures quote its tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
PHOENIX = REPO / ".venv-phoenix" / "bin" / "phoenix"


@dataclass(frozen=True)
class Phoenix:
    url: str  # http://127.0.0.1:<port>: the UI, the REST API and OTLP/HTTP at /v1/traces
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def traces_endpoint(self) -> str:
        return f"{self.url}/v1/traces"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    async def spans(self, project: str, **filters: str) -> list[dict[str, Any]]:
        """The project's spans, oldest first, filtered as GET /v1/projects/{project}/spans filters
        (trace_id, name, span_kind, parent_id, ...); none while the project does not exist yet
        (Phoenix creates it with its first span)."""
        params: dict[str, Any] = {"limit": 1000, "sort": "start_time", "order": "asc", **filters}
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            reply = await http.get(f"/v1/projects/{project}/spans", params=params)
        if reply.status_code == 404:
            return []
        reply.raise_for_status()
        data: list[dict[str, Any]] = reply.json()["data"]
        return data

    async def wait_for_spans(
        self, project: str, count: int, *, timeout_s: float = 30, **filters: str
    ) -> list[dict[str, Any]]:
        """The project's spans (filtered as :meth:`spans`) once at least ``count`` are stored:
        Phoenix inserts what it receives in batches."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = await self.spans(project, **filters)
            if len(spans) >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        if len(spans) < count:
            everything = [s["name"] for s in await self.spans(project)]
            raise AssertionError(
                f"Phoenix holds {len(spans)} of {count} spans {filters} of project {project} after "
                f"{timeout_s} s (all it holds: {everything}); its log ({self.log}) ends:\n{self.log_tail()}"
            )
        return spans


def start_phoenix(home: Path, port: int, grpc_port: int, timeout_s: float = 180) -> Phoenix:
    """`phoenix serve` on 127.0.0.1:port, answering /healthz; it fails naming `make phoenix` when
    the venv is missing, and quoting the log when the server exits or does not answer in time."""
    if not PHOENIX.exists():
        raise RuntimeError(f"Arize Phoenix is not installed ({PHOENIX} is missing): run make phoenix")
    # Nothing of the caller's Phoenix, OTel or Python setup leaks in (a PHOENIX_SQL_DATABASE_URL
    # would point it at someone's database); nothing leaves the machine.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PHOENIX_", "OTEL_")) and key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_WORKING_DIR=str(home / "data"),
        PHOENIX_TELEMETRY_ENABLED="false",
        PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
    )
    log = home / "phoenix.log"
    with log.open("wb") as out:
        # Its own session: stop_phoenix signals the whole group, children included.
        process = subprocess.Popen(
            [str(PHOENIX), "serve"],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    phoenix = Phoenix(f"http://127.0.0.1:{port}", log, process)
    deadline = time.monotonic() + timeout_s
    try:
        with httpx.Client(base_url=phoenix.url, timeout=2) as http:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"phoenix serve exited with {process.returncode}; its log ({log}) ends:\n"
                        f"{phoenix.log_tail()}"
                    )
                try:
                    if http.get("/healthz").status_code == 200:
                        return phoenix
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"phoenix serve did not answer on {phoenix.url} in {timeout_s} s; its log "
                        f"({log}) ends:\n{phoenix.log_tail()}"
                    )
                time.sleep(0.5)
    except BaseException:
        stop_phoenix(phoenix)
        raise


def stop_phoenix(phoenix: Phoenix, grace_s: float = 15) -> None:
    """SIGTERM to its process group, then SIGKILL if it has not exited within ``grace_s``."""
    process = phoenix.process
    if process.poll() is not None:
        return
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile, with its whole group
        os.killpg(pid, signum)
