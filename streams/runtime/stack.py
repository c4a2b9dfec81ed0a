"""A running stack: the broker (started if none is configured or running), the catalog's topics
applied, telemetry configured and stage workers running. ``podium demo`` and ``podium up`` use
it; it stops what it started, in reverse order, and nothing else.

::

    async with Stack(project, stages, echo=console.print) as stack:
        ...  # publish to stack.cluster, follow the terminal topics
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from streams.kafka.acls import AclAdmin, plan_acls
from streams.kafka.admin import TopicAdmin
from streams.kafka.connection import Cluster
from streams.runtime.access import merge_access, process_access
from streams.runtime.project import Project
from streams.runtime.stage import Stage
from streams.runtime.workers import Worker, worker_for
from streams.telemetry.otel import Telemetry

__all__ = ["Stack", "ensure_broker", "release_broker"]

log = logging.getLogger(__name__)


class Stack:
    def __init__(
        self,
        project: Project,
        stages: Sequence[Stage[Any]],
        *,
        echo: Callable[[str], None] = print,
        service_name: str = "podium",
        metrics_port: int | None = None,
        keep_broker: bool = False,
    ) -> None:
        self.project = project
        self.stages = list(stages)
        self._echo = echo
        self._service_name = service_name
        self._metrics_port = metrics_port
        self._started_broker = False
        self._keep_broker = keep_broker
        self._cluster: Cluster | None = None
        self.telemetry: Telemetry | None = None
        self._workers: list[Worker] = []
        self._runs: list[asyncio.Task[None]] = []

    @property
    def cluster(self) -> Cluster:
        """The cluster the stack runs on (once started)."""
        if self._cluster is None:
            raise RuntimeError("the stack has not started")
        return self._cluster

    async def __aenter__(self) -> Stack:
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._stop()

    async def _start(self) -> None:
        project, echo = self.project, self._echo
        self._started_broker = await ensure_broker(project, echo)
        self._cluster = project.cluster()
        async with TopicAdmin(self._cluster) as admin:
            changes = await admin.apply(project.catalog)
        echo(f"topics.yaml applied: {len(changes)} change(s)")
        if project.secured_locally():
            # Each worker below reaches Kafka as its stage's principal, which may do nothing
            # until its ACLs exist.
            accesses = [
                *merge_access(self.stages, project.catalog),
                process_access(self.stages, project.catalog),
            ]
            async with AclAdmin(self._cluster) as acls:
                made = await acls.apply(plan_acls(accesses))
            echo(f"ACLs of the stages' principals applied: {len(made.create)} created")
        # The workers' shared clients (spans, resources) as podium-worker, each stage's own as
        # its principal; the stack's cluster (topics, ACLs, what a demo publishes) as podium.
        shared = project.as_worker()
        self.telemetry = Telemetry.configure(
            project.settings.otel_exporter,
            self._service_name,
            cluster=shared,
            codec=project.codec,
            prometheus_port=self._metrics_port,
            otlp_metrics=project.settings.otel_metrics_exporter == "otlp",
        )
        self._workers = [
            worker_for(
                s,
                cluster=shared,
                as_stage=project.as_stage(s.name),
                catalog=project.catalog,
                codec=project.codec,
                telemetry=self.telemetry,
                tenant_weights=project.settings.tenant_weights,
            )
            for s in self.stages
        ]
        echo(f"starting {len(self._workers)} stage(s): {', '.join(s.name for s in self.stages)}")
        for worker in self._workers:
            await worker.start()
            self._runs.append(asyncio.create_task(worker.run(), name=f"stack-{worker.name}"))

    async def wait(self) -> None:
        """Until a worker stops (a failure, or :meth:`request_stop`)."""
        if self._runs:
            await asyncio.wait(self._runs, return_when=asyncio.FIRST_COMPLETED)

    @property
    def metrics_port(self) -> int | None:
        return self.telemetry.metrics_port if self.telemetry is not None else None

    def request_stop(self) -> None:
        for worker in self._workers:
            worker.request_stop()

    async def stop_workers(self) -> None:
        """Drain and stop the stages and flush telemetry; the broker stays up for reading."""
        self.request_stop()
        results = await asyncio.gather(*self._runs, return_exceptions=True)
        for worker, result in zip(self._workers, results, strict=False):
            if isinstance(result, BaseException):
                log.error("stage %s ended with %r", worker.name, result)
        self._runs, self._workers = [], []
        if self.telemetry is not None:
            await asyncio.to_thread(self.telemetry.shutdown)  # flushes the spans
            self.telemetry = None

    async def _stop(self) -> None:
        await self.stop_workers()
        release_broker(self.project, self._started_broker, self._echo, keep=self._keep_broker)
        self._started_broker = False


async def ensure_broker(project: Project, echo: Callable[[str], None]) -> bool:
    """The configured cluster or the running local broker; else a local broker started now.
    True when it was started here (the caller stops it with :func:`release_broker`)."""
    if project.settings.bootstrap_servers or project.broker.running() is not None:
        echo(f"using the running cluster at {project.cluster()}")
        return False
    echo(f"starting Apache Kafka {project.settings.kafka_version} (KRaft, local) ...")
    t0 = time.perf_counter()
    state = await project.start_broker(echo=echo)
    echo(f"  broker answers at {state.bootstrap} after {time.perf_counter() - t0:.1f}s")
    return True


def release_broker(project: Project, started: bool, echo: Callable[[str], None], keep: bool = False) -> None:
    """Stop the local broker if this command started it (and was not asked to keep it)."""
    if started and keep:
        echo("the broker keeps running: `podium broker stop` stops it")
    elif started:
        echo("stopping the broker this command started")
        with contextlib.suppress(Exception):
            project.broker.stop()
