"""The ``podium`` entry point: the runtime's commands with podium's pipelines registered, plus
the command groups of the model gateway (``models``, ``sim``), the feeds and documents
(``ingest``), the knowledge base (``kb``) and measurements (``eval``)."""

from __future__ import annotations

from agents import PIPELINES
from agents.cli import eval, ingest, kb, models, sim
from streams.cli import app
from streams.cli import main as run_podium

__all__ = ["app", "main"]

_GROUPS = (eval, ingest, kb, models, sim)


def main() -> None:
    run_podium(PIPELINES)
