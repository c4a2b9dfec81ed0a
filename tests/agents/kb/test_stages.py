"""The embed and index handlers' decisions, without Kafka or a model: which chunks are embedded
and which keep a stored vector, and what a deletion does (the real store and broker are in
test_pipeline.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from agents.kb.records import EMBEDDED, INDEXED, Chunks
from agents.kb.services import Embedding
from agents.kb.stages import IndexStages, deleted_chunks, embedding_input
from agents.rag.store import ACTIVE, BUILDING, IndexVersion, UnknownIndexVersion, version_name
from streams.contracts import parse_headers
from streams.runtime import StageContext


@dataclass
class FakeServices:
    """What IndexStages asks of KbServices, with a dict for a store."""

    stored: dict[str, dict[str, npt.NDArray[np.float32]]] = field(default_factory=dict)
    dimensions: int = 2
    asked: list[list[str]] = field(default_factory=list)
    target_version: IndexVersion | None = None

    @property
    def store(self) -> FakeServices:
        return self

    @property
    def model(self) -> tuple[str, str]:
        return "local", "toy"

    async def target(self) -> IndexVersion | None:
        return self.target_version

    def learned(self, embedding: Embedding) -> IndexVersion:
        name = version_name(embedding.model, embedding.dimensions)
        self.target_version = IndexVersion(
            name, embedding.provider, embedding.model, embedding.dimensions, BUILDING, 1
        )
        return self.target_version

    async def embed(self, texts: list[str]) -> Embedding:
        self.asked.append(list(texts))
        rows = np.ones((len(texts), self.dimensions), np.float32)
        return Embedding(rows, "local", "toy", self.dimensions, 0.5)

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
    services.target_version = IndexVersion("toy-2", "local", "toy", 2, ACTIVE, 1)
    ctx = _ctx()
    emit = await IndexStages(services).embed(_chunks("old", "new"), ctx)  # type: ignore[arg-type]
    assert services.asked == [[embedding_input("T", "new")]] and ctx.spent_usd == 0.5
    assert emit.topic == EMBEDDED and emit.key == "d"
    assert (emit.value["index"], emit.value["dimensions"], emit.value["reused"]) == ("toy-2", 2, 1)
    vectors = {c["id"]: c["vector"] for c in emit.value["chunks"]}
    assert vectors["d#old"] == [np.float32(0.6), np.float32(0.8)] and vectors["d#new"] == [1.0, 1.0]


async def test_a_version_not_written_yet_holds_no_vectors_and_everything_is_embedded() -> None:
    services = FakeServices()
    services.target_version = IndexVersion("toy-2", "local", "toy", 2, BUILDING, 1)  # not in the store
    emit = await IndexStages(services).embed(_chunks("a", "b"), _ctx())  # type: ignore[arg-type]
    assert len(services.asked[0]) == 2 and emit.value["reused"] == 0


async def test_vectors_of_another_size_are_not_reused() -> None:
    services = FakeServices(stored={"toy-3": {"d#a": np.ones(3, np.float32)}}, dimensions=2)
    services.target_version = IndexVersion("toy-3", "local", "toy", 3, ACTIVE, 1)
    emit = await IndexStages(services).embed(_chunks("a", "b"), _ctx())  # type: ignore[arg-type]
    assert [len(a) for a in services.asked] == [1, 2], "the stored one is embedded again"
    assert emit.value["index"] == "toy-2" and emit.value["reused"] == 0
    assert all(len(c["vector"]) == 2 for c in emit.value["chunks"])


async def test_a_deletion_passes_on_with_no_model_call() -> None:
    services = FakeServices()
    emit = await IndexStages(services).embed(deleted_chunks("d"), _ctx())  # type: ignore[arg-type]
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
