"""What a stage does on Kafka, read from its declaration: the input for the ACL plan.

The names come from where the workers take them: :func:`~streams.contracts.retry_topic` and
:func:`~streams.contracts.dlq_topic` for a stage's companions, :func:`stage_group` for its
consumer group (the workers' default; a worker started with another ``group_id``, as tests do,
needs its own grant).

A compacted topic a stage writes is its state (a join's table, an agent's conversation, a tool
ledger): the stage's :class:`~streams.runtime.Table` reads it back from the start, so the stage
reads it too (the same rule :func:`streams.operations.audit.pipeline_topics` uses to tell state
from where a request ends).

What the process around the stages does (its stages' resources: the model gateway's caches and
circuits, a pipeline's publishers and tables; its spans on ``podium.telemetry``) is the
process's, not a stage's: :func:`process_access` grants its principal (``podium-worker``) READ
and WRITE on every topic its stages touch and on the catalog's ``podium.*`` topics. Broader than
a stage's (resources do not declare their topics), far narrower than a super user: no topic,
config or ACL management, nothing outside the catalog, no consumer group.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from streams.contracts.catalog import Catalog, dlq_topic, retry_topic
from streams.kafka.acls import StageAccess
from streams.kafka.principals import WORKER
from streams.runtime.stage import Stage

if TYPE_CHECKING:
    from streams.runtime.window_join import WindowStage

__all__ = ["merge_access", "process_access", "stage_access", "stage_group"]


def stage_group(stage_name: str) -> str:
    """The consumer group a stage's workers share."""
    return f"podium.{stage_name}"


def stage_access(stage: Stage[Any] | WindowStage, catalog: Catalog) -> StageAccess:
    """Every topic named is looked up in ``catalog``: a stage naming one it lacks fails here,
    naming the topic, before any ACL is written."""
    if isinstance(stage, Stage):
        retry = retry_topic(stage.consumes)
        # Reads: what the worker subscribes (Outcomes.topics). Writes: its outputs, and where
        # a failed record goes: later (the retry topic) or for good (the dead-letter topic).
        reads = (stage.consumes, retry, *stage.also_consumes)
        writes = (*stage.produces, retry, dlq_topic(stage.consumes))
    else:
        # A window stage reads both inputs and its snapshots back (restore), writes windows,
        # snapshots and the dead letters of its main input; it has no retry topic.
        reads = (stage.consumes, stage.joins, stage.state_topic)
        writes = (*stage.produces, stage.state_topic, dlq_topic(stage.consumes))
    specs = [catalog.get(t) for t in (*reads, *writes)]
    state = tuple(s.name for s in specs if s.name in writes and "compact" in s.cleanup)
    return StageAccess(stage.name, stage_group(stage.name), _once((*reads, *state)), _once(writes))


def merge_access(stages: Iterable[Stage[Any] | WindowStage], catalog: Catalog) -> list[StageAccess]:
    """One access per stage name (the principal is per name): two pipelines' stages of one name
    get what both need."""
    merged: dict[str, StageAccess] = {}
    for stage in stages:
        access = stage_access(stage, catalog)
        if (seen := merged.get(access.stage)) is not None:
            access = StageAccess(
                access.stage,
                access.group,
                _once((*seen.reads, *access.reads)),
                _once((*seen.writes, *access.writes)),
            )
        merged[access.stage] = access
    return list(merged.values())


def process_access(stages: Iterable[Stage[Any] | WindowStage], catalog: Catalog) -> StageAccess:
    """What the shared clients of a process running ``stages`` need (see the module's docstring)."""
    accesses = merge_access(stages, catalog)
    shared = [spec.name for spec in catalog if spec.name.startswith("podium.")]
    topics = _once((*(t for a in accesses for t in (*a.reads, *a.writes)), *shared))
    return StageAccess("process", "", topics, topics, user=WORKER)


def _once(topics: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(topics))
