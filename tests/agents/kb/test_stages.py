"""The embed and index handlers' decisions, without Kafka or a model: which chunks are embedded
and which keep a stored vector, and what a deletion does (the real store and broker are in
test_pipeline.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from agents.kb.records import EMBEDDED, INDEXED, Chunks
from agents.kb.services import Embedding
from agents.kb.stages import IndexStages, deleted_chunks, embedding_input
from agents.kb.targets import Targets, targets
from agents.rag.store import ACTIVE, BUILDING, RETIRED, IndexVersion, UnknownIndexVersion
from streams.contracts import parse_headers
from streams.runtime import StageContext


@dataclass
class FakeServices:
    """What IndexStages asks of KbServices, with a dict for a store."""

    stored: dict[str, dict[str, npt.NDArray[np.float32]]] = field(default_factory=dict)
    dimensions: int = 2
    asked: list[list[str]] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)  # the version each call embedded for
    versions_: list[IndexVersion] = field(default_factory=list)

    @property
    def store(self) -> FakeServices:
        return self

    @property
    def model(self) -> tuple[str, str]:
        return "local", "toy"

    async def targets(self) -> Targets:
        return targets(self.versions_, "toy")

    async def embed(self, texts: list[str], version: IndexVersion | None = None) -> Embedding:
        self.asked.append(list(texts))
        self.routes.append("policy" if version is None else version.name)
        model = "toy" if version is None else version.model
        dimensions = self.dimensions if version is None or version.model == "toy" else version.dimensions
        rows = np.ones((len(texts), dimensions), np.float32)
        return Embedding(rows, "local", model, dimensions, 0.5)

    async def vectors_of(self, version: str, ids: list[str]) -> dict[str, npt.NDArray[np.float32]]:
        if version not in self.stored:
            raise UnknownIndexVersion(version)
        return {i: v for i, v in self.stored[version].items() if i in ids}


def _chunks(*texts: str) -> Chunks:
    return {
        "document_id": "d",
        "content_hash": "h",
        "deleted": False,
        "tenant": "",
        "source": "s",
        "chunks": [{"id": f"d#{t}", "text": t, "title": "T", "url": "", "language": "en"} for t in texts],
    }


def _ctx() -> StageContext:
    return StageContext("embed", "kb.chunks", 0, 0, parse_headers([]), 1)


async def test_only_chunks_without_a_stored_vector_are_embedded_and_the_cost_is_charged() -> None:
    services = FakeServices(stored={"toy-2": {"d#old": np.array([0.6, 0.8], np.float32)}})
    services.versions_ = [IndexVersion("toy-2", "local", "toy", 2, ACTIVE, 1)]
    ctx = _ctx()
    [emit] = await IndexStages(services).embed(_chunks("old", "new"), ctx)  # type: ignore[arg-type]
    assert services.asked == [[embedding_input("T", "new")]] and ctx.spent_usd == 0.5
    assert emit.topic == EMBEDDED and emit.key == "d"
    assert (emit.value["index"], emit.value["dimensions"], emit.value["reused"]) == ("toy-2", 2, 1)
    vectors = {c["id"]: c["vector"] for c in emit.value["chunks"]}
    assert vectors["d#old"] == [np.float32(0.6), np.float32(0.8)] and vectors["d#new"] == [1.0, 1.0]


async def test_a_version_not_written_yet_holds_no_vectors_and_everything_is_embedded() -> None:
    services = FakeServices()
    services.versions_ = [IndexVersion("toy-2", "local", "toy", 2, BUILDING, 1)]  # no table yet
    [emit] = await IndexStages(services).embed(_chunks("a", "b"), _ctx())  # type: ignore[arg-type]
    assert len(services.asked[0]) == 2 and emit.value["reused"] == 0


async def test_vectors_of_another_size_are_not_reused() -> None:
    services = FakeServices(stored={"toy-3": {"d#a": np.ones(3, np.float32)}}, dimensions=2)
    services.versions_ = [IndexVersion("toy-3", "local", "toy", 3, ACTIVE, 1)]
    [emit] = await IndexStages(services).embed(_chunks("a", "b"), _ctx())  # type: ignore[arg-type]
    assert [len(a) for a in services.asked] == [1, 2], "the stored one is embedded again"
    assert emit.value["index"] == "toy-2" and emit.value["reused"] == 0
    assert all(len(c["vector"]) == 2 for c in emit.value["chunks"])


async def test_a_record_is_embedded_for_the_active_and_the_building_version_each_by_its_own_route() -> None:
    old = IndexVersion("other-4", "sim", "other", 4, ACTIVE, 1)
    services = FakeServices(
        stored={"toy-2": {"d#a": np.array([0.6, 0.8], np.float32)}, "other-4": {}},
        versions_=[old, IndexVersion("toy-2", "local", "toy", 2, BUILDING, 2)],
    )
    ctx = _ctx()
    emits = await IndexStages(services).embed(_chunks("a", "b"), ctx)  # type: ignore[arg-type]
    assert [(e.value["index"], e.value["model"], e.value["dimensions"]) for e in emits] == [
        ("other-4", "other", 4),
        ("toy-2", "toy", 2),
    ]
    assert services.routes == ["other-4", "toy-2"] and services.asked == [
        [embedding_input("T", "a"), embedding_input("T", "b")],
        [embedding_input("T", "b")],  # the building version already holds d#a: reused there only
    ]
    assert [e.value["reused"] for e in emits] == [0, 1] and ctx.spent_usd == 1.0
    assert all(len(c["vector"]) == e.value["dimensions"] for e in emits for c in e.value["chunks"])
    # Once the new one is active, the retired one gets nothing.
    services.versions_ = [replace(old, state=RETIRED), IndexVersion("toy-2", "local", "toy", 2, ACTIVE, 2)]
    services.asked.clear()
    emits = await IndexStages(services).embed(_chunks("a", "b"), _ctx())  # type: ignore[arg-type]
    assert [e.value["index"] for e in emits] == ["toy-2"]


async def test_a_model_with_no_version_yet_is_named_by_its_first_embedding() -> None:
    services = FakeServices(
        stored={"other-4": {}}, versions_=[IndexVersion("other-4", "sim", "other", 4, ACTIVE, 1)]
    )
    emits = await IndexStages(services).embed(_chunks("a"), _ctx())  # type: ignore[arg-type]
    assert [e.value["index"] for e in emits] == ["other-4", "toy-2"] and services.routes == [
        "other-4",
        "policy",
    ]


async def test_a_deletion_passes_on_with_no_model_call() -> None:
    services = FakeServices(versions_=[IndexVersion("toy-2", "local", "toy", 2, ACTIVE, 1)])
    [emit] = await IndexStages(services).embed(deleted_chunks("d"), _ctx())  # type: ignore[arg-type]
    assert services.asked == [] and emit.value["deleted"] and emit.value["chunks"] == []


@dataclass
class FakeIndex:
    versions_: list[IndexVersion] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)

    @property
    def store(self) -> FakeIndex:
        return self

    async def versions(self) -> list[IndexVersion]:
        return self.versions_

    async def delete_document(self, version: str, document_id: str) -> None:
        self.deleted.append((version, document_id))


async def test_a_deleted_document_leaves_every_version_and_the_index_says_so() -> None:
    index = FakeIndex(
        [IndexVersion("a-2", "p", "a", 2, ACTIVE, 1), IndexVersion("b-2", "p", "b", 2, "retired", 1)]
    )
    record: dict[str, Any] = {
        **deleted_chunks("d"),
        "index": "",
        "provider": "",
        "model": "",
        "dimensions": 0,
        "reused": 0,
    }
    emit = await IndexStages(index).index(record, _ctx())  # type: ignore[arg-type]
    assert index.deleted == [("a-2", "d"), ("b-2", "d")]
    assert emit.topic == INDEXED and emit.value["deleted"] and emit.value["chunks"] == 0
