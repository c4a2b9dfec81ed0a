"""What a stage does on Kafka, from its declaration: the names the workers use, nothing more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.contracts.catalog import parse_catalog
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.errors import CatalogError
from streams.kafka.acls import Operation, ResourceType, plan_acls
from streams.kafka.connection import Cluster
from streams.runtime.access import merge_access, process_access, stage_access, stage_group
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.stage_worker import StageWorker
from streams.runtime.window_join import WindowStage
from streams.runtime.workers import worker_for

SCHEMAS = ["podium.demo.Note", "podium.DeadLetter", "podium.WindowState"]
CATALOG = parse_catalog(
    "topics:\n"
    "  in: {value: podium.demo.Note, consumer: s}\n"
    "  checks: {value: podium.demo.Note, consumer: s}\n"
    "  out: {value: podium.demo.Note}\n"
    "  state: {value: podium.demo.Note, cleanup: compact, retention: forever}\n"
    "  ticks: {value: podium.demo.Note, consumer: w}\n"
    "  signals: {value: podium.demo.Note}\n"
    "  windows: {value: podium.demo.Note}\n"
    "  snapshots: {value: podium.WindowState, cleanup: compact, retention: forever}\n",
    Path("topics.yaml"),
    SCHEMAS,
)


async def handler(record: Any, ctx: StageContext) -> Emit:
    return Emit("out", record)


def test_a_stage_reads_its_input_retry_and_extra_topics_and_writes_outputs_retry_and_dlq() -> None:
    stage = Stage(
        "join", consumes="in", produces=("out", "state"), handler=handler, also_consumes=("checks.dlq",)
    )
    access = stage_access(stage, CATALOG)
    assert access.group == stage_group("join") == "podium.join"
    # The compacted topic it writes is its table: read back at start, so read too.
    assert access.reads == ("in", "in.retry", "checks.dlq", "state")
    assert access.writes == ("out", "state", "in.retry", "in.dlq")


def test_the_group_is_the_one_the_workers_join(schema_store: SchemaStore) -> None:
    stage = Stage("stamp", consumes="in", produces=("out",), handler=handler)
    # Made, never started: the constructor names the group its consumer will join.
    worker = worker_for(
        stage, cluster=Cluster("unused:9092"), catalog=CATALOG, codec=SingleObjectCodec(schema_store)
    )
    assert isinstance(worker, StageWorker)
    assert worker._group == stage_access(stage, CATALOG).group


def test_a_window_stage_reads_both_inputs_and_its_snapshots_and_has_no_retry_topic() -> None:
    stage = WindowStage(
        name="windows",
        consumes="ticks",
        joins="signals",
        produces=("windows",),
        state_topic="snapshots",
        new_state=lambda _: None,  # type: ignore[arg-type,return-value]
    )
    access = stage_access(stage, CATALOG)
    assert access.reads == ("ticks", "signals", "snapshots")
    assert access.writes == ("windows", "snapshots", "ticks.dlq")


def test_a_topic_the_catalog_lacks_fails_before_any_acl_is_planned() -> None:
    stage = Stage("s", consumes="in", produces=("nowhere",), handler=handler)
    with pytest.raises(CatalogError, match="no topic 'nowhere'"):
        stage_access(stage, CATALOG)


def test_two_stages_of_one_name_are_merged_and_a_stage_may_not_write_what_it_reads() -> None:
    first = Stage("s", consumes="in", produces=("out",), handler=handler)
    second = Stage("s", consumes="checks", produces=("state",), handler=handler)
    (merged,) = merge_access([first, second], CATALOG)
    assert merged.reads == ("in", "in.retry", "checks", "checks.retry", "state")
    assert set(merged.writes) == {"out", "in.retry", "in.dlq", "state", "checks.retry", "checks.dlq"}
    writes = {
        a.resource_name for a in plan_acls([stage_access(first, CATALOG)]) if a.operation == Operation.WRITE
    }
    assert "in" not in writes and "checks" not in writes and "state" not in writes


def test_the_process_around_the_stages_is_podium_worker_on_their_topics_and_podiums_own() -> None:
    catalog = parse_catalog(
        "topics:\n"
        "  in: {value: podium.demo.Note, consumer: s}\n"
        "  out: {value: podium.demo.Note}\n"
        "  elsewhere: {value: podium.demo.Note}\n"
        "  podium.telemetry: {value: podium.demo.Note}\n"
        "  podium.cache: {value: podium.demo.Note, cleanup: compact, retention: forever}\n",
        Path("topics.yaml"),
        SCHEMAS,
    )
    stage = Stage("s", consumes="in", produces=("out",), handler=handler)
    access = process_access([stage], catalog)
    assert access.principal == "User:podium-worker" and access.group == ""
    topics = {"in", "in.retry", "in.dlq", "out", "podium.telemetry", "podium.cache"}
    assert set(access.reads) == set(access.writes) == topics  # not "elsewhere": no stage of it
    acls = plan_acls([access])
    # Topics only: no group, no cluster resource, so no way to manage topics or ACLs.
    assert {a.resource_type for a in acls} == {ResourceType.TOPIC}
    assert {(a.resource_name, a.operation) for a in acls} == {
        (t, op) for t in topics for op in (Operation.READ, Operation.WRITE)
    }
