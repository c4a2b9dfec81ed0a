"""``podium kb reindex``: a new index version for the configured embedding model, built from the
compacted kb.documents while the active one keeps serving, then activated.

1. One probe embedding by the ``embed`` policy (models.yaml) names the model's dimensions and
   so its version; if that version is already active there is nothing to do.
2. The version is made to exist as ``building`` (an existing row wins: a reindex started again
   goes on with what the last one wrote). From now on the embed stage feeds it too
   (:mod:`agents.kb.targets`): a document published during the build reaches it live.
3. A pass: the version's chunks are read (per document), then kb.documents from its beginning
   to its end (the latest value of every key; a tombstone deletes). Each live document is cut by
   the chunk stage's own code; one the version already holds exactly as it would be written is
   left alone (a restart pays nothing for it), the others are embedded by the version's route
   (chunks whose ids already have a vector there keep it) and replaced in the version; a
   document the version holds that is no longer on the topic is deleted from it. A document no
   parser reads is passed over and counted (the chunk stage dead-lettered it).
4. Passes repeat until one finds nothing to do (at most ``max_passes``): live ingestion writes
   the version too, and a document changed while a pass wrote its older value is caught by the
   next pass, whose reads come after that write. After a pass with nothing to do, only the
   pipeline writes the version.
5. With ``activate``, the version becomes active and the one active before is retired (the
   retrievers switch within their refresh; the embed stage stops feeding the retired one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from agents.kb.documents import latest_documents
from agents.kb.records import DOCUMENTS, Chunks, Document
from agents.kb.services import KbServices, learned_version
from agents.kb.stages import ChunkStage, embed_for, stored_chunks
from agents.rag.store import ACTIVE, Chunk, IndexVersion
from streams import Catalog, Codec
from streams.errors import PodiumError
from streams.kafka import Cluster

__all__ = ["PROBE", "Progress", "ReindexReport", "reindex"]

PROBE = "podium reindex probe"  # embedded once to learn the model's dimensions
_IN_FLIGHT = 16  # documents embedded at once (their texts share the gateway's calls)

# (documents done, documents to do in this pass)
Progress = Callable[[int, int], None]

_Signature = frozenset[tuple[str, ...]]


@dataclass
class ReindexReport:
    version: IndexVersion
    already_active: bool = False
    documents: int = 0  # live documents on kb.documents (last pass)
    written: int = 0  # documents replaced in the version, all passes
    unchanged: int = 0  # documents the version already held as they are (first pass)
    deleted: int = 0  # documents removed from the version (no longer on the topic)
    poison: int = 0  # documents no parser reads (dead-lettered by the chunk stage)
    embedded: int = 0  # chunks embedded
    reused: int = 0  # chunks whose vectors the version held
    cost_usd: float = 0.0
    passes: int = 0
    settled: bool = False  # the last pass found nothing to do
    activated: bool = False
    retired: list[str] = field(default_factory=list)


def _held(chunks: Sequence[Chunk]) -> dict[str, _Signature]:
    by_document: dict[str, set[tuple[str, ...]]] = {}
    for c in chunks:
        row = (c.id, c.text, c.title, c.url, c.language, c.source, c.tenant, c.content_hash)
        by_document.setdefault(c.document_id, set()).add(row)
    return {d: frozenset(rows) for d, rows in by_document.items()}


def _wanted(record: Chunks) -> _Signature:
    source, tenant, content_hash = record["source"], record["tenant"], record["content_hash"]
    return frozenset(
        (c["id"], c["text"], c["title"], c["url"], c["language"], source, tenant, content_hash)
        for c in record["chunks"]
    )


async def _retried(write: Callable[[], Awaitable[None]], attempts: int = 6) -> None:
    """A store write the pipeline's index stage may be racing (a lost commit is retryable)."""
    for attempt in range(attempts):
        try:
            await write()
            return
        except PodiumError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            await asyncio.sleep(min(0.2 * 2**attempt, 2.0))


class _Reindex:
    def __init__(
        self,
        services: KbServices,
        cluster: Cluster,
        catalog: Catalog,
        codec: Codec,
        progress: Progress | None,
    ) -> None:
        self.services = services
        self.cluster = cluster
        self.codec = codec
        self.schema = catalog.get(DOCUMENTS).value_schema
        self.chunker = ChunkStage(services.config)
        self.progress = progress
        self._chunked: dict[str, tuple[tuple[str, ...], Chunks | None]] = {}  # key -> (identity, chunks)

    def chunks_of(self, key: str, document: Document) -> Chunks | None:
        """The chunk stage's chunks (None: poison), kept between passes while the document is the same."""
        d = document
        identity: tuple[str, ...] = (d["content_hash"], d["title"], d["url"], d["media_type"])
        identity += (d["source"], d["tenant"], d["language"])
        known = self._chunked.get(key)
        if known is not None and known[0] == identity:
            return known[1]
        try:
            chunks: Chunks | None = self.chunker.chunks_of(document)
        except PodiumError as exc:
            if exc.retryable:
                raise
            chunks = None
        self._chunked[key] = (identity, chunks)
        return chunks

    async def one_pass(self, version: IndexVersion, report: ReindexReport, first: bool) -> bool:
        """True when the pass had something to do."""
        store = self.services.store
        # The version's holdings are read before the topic: what the topic says is never older.
        held = _held(await store.chunks(version.name))
        documents = await latest_documents(self.cluster, self.codec, self.schema, lambda d: d)
        report.documents = len(documents)
        todo: list[Chunks] = []
        poison = 0
        for key, document in documents.items():
            chunks = await asyncio.to_thread(self.chunks_of, key, document)
            if chunks is None:
                poison += 1
            elif held.get(key) != _wanted(chunks):
                todo.append(chunks)
            elif first:
                report.unchanged += 1
        report.poison = poison
        gone = [d for d in held if d not in documents]
        done, total = 0, len(todo) + len(gone)
        if self.progress is not None:
            self.progress(done, total)
        for start in range(0, len(todo), _IN_FLIGHT):
            group = todo[start : start + _IN_FLIGHT]
            # Concurrent: the batcher gathers the group's texts into shared calls.
            results = await asyncio.gather(*(embed_for(self.services, c, version) for c in group))
            for chunks, (embedded, cost) in zip(group, results, strict=True):
                if embedded["index"] != version.name:
                    raise PodiumError(
                        f"{version.name}: the model now embeds into {embedded['index']} (other dimensions)"
                    )
                rows = stored_chunks(embedded)
                await _retried(partial(store.replace_document, version.name, chunks["document_id"], rows))
                report.written += 1
                report.reused += embedded["reused"]
                report.embedded += len(embedded["chunks"]) - embedded["reused"]
                report.cost_usd += cost
                done += 1
                if self.progress is not None:
                    self.progress(done, total)
        for document_id in gone:
            await _retried(partial(store.delete_document, version.name, document_id))
            report.deleted += 1
            done += 1
            if self.progress is not None:
                self.progress(done, total)
        return total > 0


async def reindex(
    services: KbServices,
    cluster: Cluster,
    catalog: Catalog,
    codec: Codec,
    *,
    activate: bool = True,
    progress: Progress | None = None,
    max_passes: int = 5,
) -> ReindexReport:
    """Build (and with ``activate``, switch to) the configured model's version. ``services``
    must be open; ``progress`` is told (done, total) of each pass."""
    store = services.store
    probe = await services.embed([PROBE])
    wanted = learned_version(probe)
    for existing in await store.versions():
        if existing.name == wanted.name and existing.state == ACTIVE:
            return ReindexReport(existing, already_active=True)
    version = await store.ensure_version(wanted)  # building; an existing row wins
    report = ReindexReport(version, cost_usd=probe.cost_usd)
    run = _Reindex(services, cluster, catalog, codec, progress)
    while report.passes < max_passes:
        report.passes += 1
        if not await run.one_pass(version, report, first=report.passes == 1):
            report.settled = True
            break
    # Unsettled, the last pass may have written a document's older value over the pipeline's
    # newer one (only another pass repairs that): such a version is not switched to.
    if activate and report.settled:
        before = await store.active()
        await store.activate(version.name)
        report.activated = True
        report.retired = [before.name] if before is not None and before.name != version.name else []
    report.version = next(v for v in await store.versions() if v.name == version.name)
    return report
