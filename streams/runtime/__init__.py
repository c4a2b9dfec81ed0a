"""The stage runtime: how a stage is declared, the workers that run stages with nothing lost
(the commit order is written in :mod:`streams.runtime.stage_worker`, how tenants share a stage's
slots in :mod:`streams.runtime.fairness`), windowed joins, tables on compacted topics, retry
decisions, and the project and stack a command runs them in."""

from streams.runtime.deadletter import dead_letter, letter_for
from streams.runtime.fairness import Fairness
from streams.runtime.pipeline import Build, ModelSetup, Pipeline, Pipelines, Section, load_sections
from streams.runtime.project import Project
from streams.runtime.retry import RetryPolicy
from streams.runtime.stack import Stack, ensure_broker, release_broker
from streams.runtime.stage import (
    Emit,
    Handler,
    Record,
    Resource,
    SharedResource,
    Stage,
    StageContext,
    StageEnv,
    TombstoneHandler,
    close_resources,
    open_resources,
)
from streams.runtime.stage_worker import StageWorker
from streams.runtime.table import Table
from streams.runtime.tuning import tune_worker_process
from streams.runtime.window_join import WindowStage, WindowState, WindowWorker
from streams.runtime.workers import Worker, worker_for

__all__ = [
    "Build",
    "Emit",
    "Fairness",
    "Handler",
    "ModelSetup",
    "Pipeline",
    "Pipelines",
    "Project",
    "Record",
    "Resource",
    "RetryPolicy",
    "Section",
    "SharedResource",
    "Stack",
    "Stage",
    "StageContext",
    "StageEnv",
    "StageWorker",
    "Table",
    "TombstoneHandler",
    "WindowStage",
    "WindowState",
    "WindowWorker",
    "Worker",
    "close_resources",
    "dead_letter",
    "ensure_broker",
    "letter_for",
    "load_sections",
    "open_resources",
    "release_broker",
    "tune_worker_process",
    "worker_for",
]
