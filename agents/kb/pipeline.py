"""The knowledge-base pipeline as the runtime receives it, with its ``kb:`` section of
``pipelines.yaml`` (document limits, chunk sizes, embedding batches). Declaring it imports no
parser, model or store: the stages are imported when it is built."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams.runtime import Build, Pipeline, Section

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from agents.kb.config import KbTuning
    from streams import Project, Stage

__all__ = ["KB", "parse_kb"]

_KEYS = {
    "max_document_bytes",
    "max_text_chars",
    "chunk_min_chars",
    "chunk_max_chars",
    "overlap_chars",
    "embed_batch",
}


def parse_kb(section: Section) -> KbTuning:
    from agents.kb.config import KbTuning
    from agents.rag.chunking import ChunkingPolicy
    from agents.rag.parsing import Limits

    section.known(_KEYS)
    values = section.values
    limits, chunking, tuning = Limits(), ChunkingPolicy(), KbTuning()
    try:
        return KbTuning(
            limits=Limits(
                max_bytes=int(values.get("max_document_bytes", limits.max_bytes)),
                max_chars=int(values.get("max_text_chars", limits.max_chars)),
            ),
            chunking=ChunkingPolicy(
                min_chars=int(values.get("chunk_min_chars", chunking.min_chars)),
                max_chars=int(values.get("chunk_max_chars", chunking.max_chars)),
                overlap_chars=int(values.get("overlap_chars", chunking.overlap_chars)),
            ),
            embed_batch=int(values.get("embed_batch", tuning.embed_batch)),
        )
    except (TypeError, ValueError) as exc:
        raise section.fail(exc) from exc


def _build(build: Build) -> list[Stage[Any]]:
    from agents.kb.config import kb_config
    from agents.kb.stages import kb_stages

    return kb_stages(kb_config(build.settings, build.section), build.shared)


async def _demo(project: Project, console: Console, _folder: Path) -> int:
    from agents.kb.demo import run_kb_demo

    return await run_kb_demo(project, console)


KB = Pipeline(
    name="kb",
    summary="chunk, embed, index (the knowledge base)",
    build=_build,
    parse=parse_kb,
    demo=_demo,  # first in `podium demo`: the support pipeline retrieves from what it indexes
    try_it="podium ingest docs agents/data/kb",
)
