"""Search podium's shipped knowledge base (the product docs and the FAQ) for the billing agent.

The same search serves two tools: ``search_docs``, called in process, and ``kb_search`` of the
docs MCP server (:mod:`agents.billing.docs_server`), so the agent reads one result shape from
either. It is the offline BM25 retriever of :mod:`agents.offline.retriever`, both sources merged.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from agents.offline.retriever import DOCS, FAQ, KnowledgeSource, Passage, merge

__all__ = ["MAX_HITS", "SNIPPET_CHARS", "DocHit", "DocSearch", "KnowledgeBase", "search_docs"]

MAX_HITS = 10
SNIPPET_CHARS = 240

# The bounds live in the annotation so a tool's JSON Schema (and an MCP client) sees them.
HitCount = Annotated[int, Field(ge=1, le=MAX_HITS, description="how many passages to return")]


class DocHit(BaseModel):
    model_config = ConfigDict(frozen=True)

    title: str
    url: str
    snippet: str


# An object rather than a bare list: MCP's structured content must be one, and both tools
# answer alike.
class DocSearch(BaseModel):
    """What a search found: the query and the passages, best first."""

    model_config = ConfigDict(frozen=True)

    query: str
    hits: list[DocHit]


class KnowledgeBase:
    """The docs and the FAQ, indexed once (at open, a few milliseconds) and searched together."""

    def __init__(self, *sources: KnowledgeSource) -> None:
        self.sources = sources or (KnowledgeSource("docs", DOCS), KnowledgeSource("faq", FAQ))

    def search(self, query: str, k: int = 3) -> DocSearch:
        if not 1 <= k <= MAX_HITS:
            raise ValueError(f"k must be between 1 and {MAX_HITS}, not {k}")
        ranked = merge([source.search_now(query, k) for source in self.sources], k)
        return DocSearch(query=query, hits=[_hit(p) for p in ranked])


def _hit(passage: Passage) -> DocHit:
    return DocHit(title=passage.title, url=passage.url, snippet=_snippet(passage.text))


def _snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The text up to ``limit`` characters, cut at a word and marked when cut."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " ..."


@cache
def _shipped() -> KnowledgeBase:
    # One index per process, built at the first search: the in-process tool is a plain function.
    return KnowledgeBase()


def search_docs(query: str, k: HitCount = 3) -> DocSearch:
    """Search the product docs and the FAQ: the best k passages, each with title, url and snippet."""
    return _shipped().search(query, k)
