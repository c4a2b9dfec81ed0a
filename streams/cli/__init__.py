"""The ``podium`` command line, one module per command group on the shared :mod:`~streams.cli.base`.

The runtime's commands know no pipeline: :func:`main` receives the registry from the entry point
(``agents.cli``), and a pipeline package may add command groups of its own to :data:`app`.
"""

from __future__ import annotations

import sys

from streams.cli import acls, approvals, broker, contracts, dlq, keys, observe, replaying, requests, running
from streams.cli.base import (
    app,
    console,
    err,
    guard,
    load_project,
    position_of,
    project_for,
    register,
    run_async,
    select,
    stages_of,
    telemetry_for,
    when,
)
from streams.runtime.pipeline import Pipelines

__all__ = [
    "app",
    "console",
    "err",
    "guard",
    "load_project",
    "main",
    "position_of",
    "project_for",
    "run_async",
    "select",
    "stages_of",
    "telemetry_for",
    "when",
]

# The modules register their commands on `app` when imported.
_GROUPS = (acls, approvals, broker, contracts, dlq, keys, observe, replaying, requests, running)


def main(pipelines: Pipelines | None = None) -> None:
    register(pipelines or Pipelines())
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
