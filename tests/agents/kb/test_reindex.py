"""A model switch on the real broker, into LanceDB: the shipped knowledge base indexed by WordLlama
(version A), then ``reindex`` to the provider simulator's model (version B) from kb.documents
while the pipeline runs on the new models file and a retriever keeps searching. A reindex
stopped half way and started again pays only for what it had not written; a document published
and one deleted during the build are right in B; after the switch the retriever answers from B
within its refresh, and the retired A gets no more writes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from agents.gateway.providers.simulator import SimConfig, SimulatorServer
from agents.gateway.resource import GatewayResource
from agents.kb.config import KbConfig
from agents.kb.documents import Draft, KbPublisher, drafts_from_path, latest_documents, request_id_for
from agents.kb.records import DOCUMENTS, INDEXED
from agents.kb.reindex import ReindexReport, reindex
from agents.kb.services import KbServices
from agents.kb.stages import ChunkStage, kb_stages
from agents.offline.embedder import EMBEDDING_MODELS
from agents.rag.retriever import HybridRetriever, Retrieval, embed_queries_with
from agents.rag.store import ACTIVE, RETIRED, VectorStore, open_store
from streams.ingress.publish import Publisher
from streams.kafka.follow import Arrival, Follower
from streams.runtime import StageEnv
from streams.runtime.project import Project
from streams.runtime.stage_worker import StageWorker
from streams.telemetry import Telemetry
from tests.streams.running import REPO, committed, running, start_group_at_end

A = "local-wordllama-256"
B = "text-embedding-3-small-256"
QUERIES = [
    "How do I get a refund for a double charge?",
    "embed a dashboard in our website",
    "reset two-factor authentication backup codes",
    "export my data every night",
]
MODELS_A = """
providers:
  local: {kind: local}
prices:
  local-wordllama: {input: 0, output: 0}
stages:
  embed:
    operation: embeddings
    chain:
      - {provider: local, model: local-wordllama}
    timeout_s: 10
    max_retries: 0
"""
MODELS_B = """
providers:
  local: {kind: local}
  sim-openai: {kind: openai, base_url: "URL/v1"}
prices:
  local-wordllama: {input: 0, output: 0}
  text-embedding-3-small: {input: 0.02, output: 0}
stages:
  embed:
    operation: embeddings
    dimensions: 256
    chain:
      - {provider: sim-openai, model: text-embedding-3-small}
    timeout_s: 10
    max_retries: 2
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    # A hosted provider's pace: the build takes long enough for documents to change during it.
    with SimulatorServer(SimConfig(latency_ms=150, jitter_ms=0)) as url:
        yield url


def _env(project: Project) -> StageEnv:
    return StageEnv(project.cluster(), project.catalog, project.codec, Telemetry.configure("none"))


@asynccontextmanager
async def _pipeline(project: Project, unique: str, models: Path, home: Path) -> AsyncIterator[None]:
    stages = kb_stages(KbConfig(models=models, home=home))
    for stage in stages:  # from the topics' ends the first time (the backlog of other tests is
        # not this test's); a restart on the other models file resumes where the group stopped
        if not await committed(project.cluster(), f"{unique}-{stage.name}"):
            await start_group_at_end(project.cluster(), f"{unique}-{stage.name}", stage.consumes)
    workers = [
        StageWorker(
            s,
            cluster=project.cluster(),
            catalog=project.catalog,
            codec=project.codec,
            group_id=f"{unique}-{s.name}",  # restarted on another models file: resumes
        )
        for s in stages
    ]
    async with running(*workers):
        yield


@asynccontextmanager
async def _opened(project: Project, models: Path, home: Path) -> AsyncIterator[KbServices]:
    services = KbServices(KbConfig(models=models, home=home))
    await services.open(_env(project))
    try:
        yield services
    finally:
        await services.close()


async def _live(project: Project, config: KbConfig) -> dict[str, frozenset[str]]:
    """Every document kb.documents holds now that the chunk stage reads, with its chunk ids."""
    schema = project.catalog.get(DOCUMENTS).value_schema
    chunker = ChunkStage(config)
    live: dict[str, frozenset[str]] = {}
    for key, document in (
        await latest_documents(project.cluster(), project.codec, schema, lambda d: d)
    ).items():
        with contextlib.suppress(Exception):
            live[key] = frozenset(c["id"] for c in chunker.chunks_of(document)["chunks"])
    return live


def _chunk_ids(config: KbConfig, draft: Draft) -> list[str]:
    return [c["id"] for c in ChunkStage(config).chunks_of(draft.record())["chunks"]]


def _indexed_into(project: Project, arrival: Arrival) -> str:
    return str(project.codec.decode("podium.kb.Indexed", arrival.value or b"")["index"])


async def _by_document(store: VectorStore, version: str) -> dict[str, list[str]]:
    held: dict[str, list[str]] = {}
    for chunk in await store.chunks(version):
        held.setdefault(chunk.document_id, []).append(chunk.id)
    return held


async def test_a_model_switch_rebuilds_from_kb_documents_while_the_old_version_serves_throughout(
    project: Project, unique: str, tmp_path: Path, sim: str
) -> None:
    home = tmp_path / "home"
    models_a, models_b = tmp_path / "models-a.yaml", tmp_path / "models-b.yaml"
    models_a.write_text(MODELS_A)
    models_b.write_text(MODELS_B.replace("URL", sim))
    cluster = project.cluster()
    shipped = [d for d in drafts_from_path(REPO / "agents" / "data" / "kb")]
    assert len(shipped) >= 80 and all(isinstance(d, Draft) for d in shipped)

    # 1. The shipped knowledge base into A (WordLlama), through the kb pipeline.
    async with Follower(cluster, [INDEXED]) as follower, _pipeline(project, unique, models_a, home):
        async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
            kb = KbPublisher(pub, project.catalog, project.codec)  # not loaded: every one is sent
            for draft in shipped:
                assert isinstance(draft, Draft)
                await kb.publish(draft)
        wanted = {request_id_for(d.document_id) for d in shipped if isinstance(d, Draft)}
        found = await follower.collect(wanted, timeout_s=120)
        assert set(found) >= wanted, f"not indexed: {wanted - set(found)}"

    store = open_store(None, home)
    await store.start()
    gateway = GatewayResource(models_b, local_models=EMBEDDING_MODELS)
    await gateway.open(_env(project))
    retriever = HybridRetriever(store, embed_queries_with(gateway.gateway, gateway.config), refresh_s=0.5)
    searches: list[Retrieval] = []
    stop = asyncio.Event()

    async def keep_searching() -> None:
        n = 0
        while not stop.is_set():
            searches.append(await retriever.search(QUERIES[n % len(QUERIES)], k=5))
            n += 1
            await asyncio.sleep(0.02)

    searching = asyncio.create_task(keep_searching(), name="searching")
    new_id, new_request = f"{unique}/new-plan.md", request_id_for(f"{unique}/new-plan.md")
    new_doc = Draft(
        new_id,
        "docs",
        "text/markdown",
        f"# The {unique} plan\n\nThe {unique} plan gives teams unlimited dashboards.\n".encode(),
        title=f"The {unique} plan",
    )
    try:
        config_b = KbConfig(models=models_b, home=home)
        live_before = await _live(project, config_b)
        gone_id = list(live_before)[-1]  # read late by the build: the deletion races the reindex
        assert gone_id in live_before

        # 2. The pipeline restarted on the new models file; a reindex stopped half way.
        async with (
            Follower(cluster, [INDEXED]) as follower,
            _pipeline(project, unique, models_b, home),
            _opened(project, models_b, home) as services,
        ):
            half = asyncio.Event()

            def stopping(done: int, total: int) -> None:
                if done >= 20:
                    half.set()

            first = asyncio.create_task(
                reindex(services, cluster, project.catalog, project.codec, progress=stopping)
            )
            await half.wait()
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first
            assert {v.name: v.state for v in await store.versions()} == {A: ACTIVE, B: "building"}
            partial = await _by_document(store, B)
            assert len(partial) >= 20

            # 3. Started again, with a document published and one deleted during the build.
            changed = asyncio.Event()

            def changing(done: int, total: int) -> None:
                if done >= 1:
                    changed.set()

            async def publish_and_delete() -> None:
                await changed.wait()
                async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
                    kb = KbPublisher(pub, project.catalog, project.codec)
                    await kb.publish(new_doc)
                    await kb.delete(gone_id)

            changes = asyncio.create_task(publish_and_delete())
            report: ReindexReport = await reindex(
                services, cluster, project.catalog, project.codec, progress=changing
            )
            await changes
            indexed = await follower.collect({new_request, request_id_for(gone_id)}, timeout_s=60)
            if len(indexed.get(new_request, [])) < 2:  # the second version's record
                indexed[new_request] += (await follower.collect({new_request}, timeout_s=30))[new_request]
            assert new_request in indexed and request_id_for(gone_id) in indexed
            assert report.activated and report.retired == [A] and report.version.state == ACTIVE
            assert report.unchanged >= len(partial) - 1, "what the stopped run wrote is not done again"
            # Only the chunks the stopped run had not written (and the new document's) are paid for.
            paid_before = sum(len(ids) for ids in partial.values())
            total = sum(len(ids) for ids in live_before.values())
            assert report.embedded <= total - paid_before + len(_chunk_ids(config_b, new_doc))
            # The document published during the build was fed live to both versions.
            assert [_indexed_into(project, a) for a in indexed[new_request]] == [A, B]

            # 4. The retriever reports B within its refresh.
            deadline = asyncio.get_running_loop().time() + 5
            while searches[-1].version != B:
                assert asyncio.get_running_loop().time() < deadline, searches[-1]
                await asyncio.sleep(0.05)
            assert {v.name: v.state for v in await store.versions()} == {A: RETIRED, B: ACTIVE}

            # 5. After the switch the retired A gets no more writes.
            later_id = f"{unique}/after-switch.md"
            async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
                await KbPublisher(pub, project.catalog, project.codec).publish(
                    Draft(later_id, "docs", "text/markdown", b"# After\n\nWritten after the switch.\n")
                )
            later = await follower.collect({request_id_for(later_id)}, timeout_s=60)
            assert [_indexed_into(project, a) for a in later[request_id_for(later_id)]] == [B]
        stop.set()
        await searching

        # B holds every live document once, with exactly the chunks the chunk stage cuts.
        live = await _live(project, config_b)
        assert new_id in live and gone_id not in live
        held = await _by_document(store, B)
        assert set(held) == set(live)
        ids = [i for chunk_ids in held.values() for i in chunk_ids]
        assert len(ids) == len(set(ids)), "a chunk id twice"
        assert {d: frozenset(i) for d, i in held.items()} == live
        in_a = await _by_document(store, A)
        assert later_id not in in_a and gone_id not in in_a

        # The model switch served throughout: every search answered, none fell back.
        assert searches and all(s.passages for s in searches), [s for s in searches if not s.passages][:1]
        assert not [s for s in searches if s.notes], [s.notes for s in searches if s.notes][:1]
        versions = [s.version for s in searches]
        assert versions[0] == A and versions[-1] == B and versions.index(B) > 0
        assert versions == sorted(versions, key=lambda v: v == B), "once on B, never back on A"

        # Started once more: nothing to do.
        async with _opened(project, models_b, home) as services:
            again = await reindex(services, cluster, project.catalog, project.codec)
        assert again.already_active and again.version.name == B
    finally:
        stop.set()
        await asyncio.gather(searching, return_exceptions=True)
        await retriever.aclose()
        await gateway.close()
        await store.stop()
