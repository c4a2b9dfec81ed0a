"""What every pipeline bench starts with: the project, and Kafka to run it on.

The configured cluster (KAFKA_BOOTSTRAP_SERVERS) or the running local broker is used as it is;
otherwise a local broker is started here and stopped at the end. Logging is quietened and the
worker tuning `podium run` applies is applied, so a bench measures what a worker does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from rich.console import Console

from streams.config import load_settings
from streams.runtime import Project, ensure_broker, release_broker, tune_worker_process


@contextlib.asynccontextmanager
async def bench_project(console: Console) -> AsyncIterator[Project]:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per model call otherwise
    tune_worker_process()
    project = Project(load_settings())
    started = await ensure_broker(project, console.print)
    try:
        yield project
    finally:
        release_broker(project, started, console.print)
