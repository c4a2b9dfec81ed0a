import json
from itertools import pairwise
from pathlib import Path
from typing import get_type_hints

from agents import PIPELINES
from agents.passthrough import Note, finish, stamp
from streams.config import Settings
from streams.contracts.headers import RequestHeaders
from streams.runtime.project import Project
from streams.runtime.stage import StageContext

REPO = Path(__file__).resolve().parents[2]


def test_the_typed_record_mirrors_the_schema() -> None:
    schema = json.loads((REPO / "schemas" / "note.avsc").read_text())
    assert list(get_type_hints(Note)) == [f["name"] for f in schema["fields"]]


def context(stage: str) -> StageContext:
    return StageContext(stage, "demo.notes", 0, 0, RequestHeaders(request_id="r"), 1)


async def test_each_stage_stamps_its_name_and_routes_onward() -> None:
    note: Note = {"request_id": "r", "text": "t", "hops": [], "priority": 0}
    first = await stamp(note, context("stamp"))
    assert first.topic == "demo.stamped" and first.value["hops"] == ["stamp"]
    second = await finish(first.value, context("finish"))  # type: ignore[arg-type]
    assert second.topic == "demo.done" and second.value["hops"] == ["stamp", "finish"]
    assert note["hops"] == []  # the input record is not mutated


def test_the_demo_pipeline_chains_its_topics() -> None:
    stages = Project(Settings(), PIPELINES).build("demo")
    for upstream, downstream in pairwise(stages):
        assert downstream.consumes in upstream.produces
