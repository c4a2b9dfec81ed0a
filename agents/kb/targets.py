"""Which index versions a document's chunks are embedded for: a decision without I/O.

A document goes to

1. the active version (it serves the retrievers now),
2. every building one (``podium kb reindex`` is filling it from kb.documents: a document
   published while it builds must reach it too, or the new version would miss it), and
3. the version of the configured ``embed`` model (models.yaml), whatever its state: a retired
   one again when the configuration names its model (a rollback being rebuilt).

A retired version of another model gets nothing more. When the configured model has no version
yet, the embedding itself names it (its dimensions): :attr:`Targets.learn`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents.rag.store import ACTIVE, BUILDING, IndexVersion

__all__ = ["Targets", "targets"]


@dataclass(frozen=True)
class Targets:
    versions: tuple[IndexVersion, ...]  # each embedded by its own route, active first
    learn: bool  # the configured model has no version yet: embed by the policy, learn its size


def targets(versions: Sequence[IndexVersion], model: str, dimensions: int | None = None) -> Targets:
    """The versions of the store a document goes to, given the configured model (and the
    dimensions its policy asks for, if it names them)."""
    mine = [v for v in versions if v.model == model and dimensions in (None, v.dimensions)]
    # The configured model's version: the active one, else the newest.
    mine.sort(key=lambda v: (v.state == ACTIVE, v.created_ms), reverse=True)
    chosen = [v for v in versions if v.state in (ACTIVE, BUILDING)]
    if mine and mine[0] not in chosen:
        chosen.append(mine[0])
    chosen.sort(key=lambda v: (v.state != ACTIVE, v.created_ms, v.name))
    return Targets(tuple(chosen), learn=not mine)
