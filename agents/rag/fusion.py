"""Reciprocal rank fusion: several ranked lists of ids made into one, by rank alone.

A list's scores (BM25, cosine) are not comparable with another's, so each id earns
``weight / (k + rank)`` from every list that has it (rank counted from 1) and the sums are ranked.
An id that two lists both found beats one that a single list found at the same rank; ``k`` damps
the lead of the very first places (60 is the constant of Cormack, Clarke and Buettcher, 2009).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["reciprocal_rank_fusion"]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]],
    *,
    k: int = 60,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[tuple[str, float]]:
    """Ids with their fused scores, best first, at most ``limit`` of them.

    An id repeated within one list counts at its first (best) rank only. Equal scores are broken
    by the best rank the id had in any list, then by the earliest list that has it at that rank,
    then by the id itself, so the order never depends on dict or set iteration.
    """
    if k < 0:
        raise ValueError(f"k must be 0 or more, not {k}")
    if weights is None:
        weights = [1.0] * len(rankings)
    elif len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    if any(w < 0 for w in weights):
        raise ValueError(f"weights must not be negative: {list(weights)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")

    shares: dict[str, list[float]] = {}
    best: dict[str, tuple[int, int]] = {}  # id -> (best rank, index of the list that had it)
    for position, (ranking, weight) in enumerate(zip(rankings, weights, strict=True)):
        seen: set[str] = set()
        for rank, id_ in enumerate(ranking, start=1):
            if id_ in seen:
                continue
            seen.add(id_)
            shares.setdefault(id_, []).append(weight / (k + rank))
            best[id_] = min(best.get(id_, (rank, position)), (rank, position))
    # fsum is exact whatever the order of the shares, so equal ranks give equal scores.
    scores = {id_: math.fsum(parts) for id_, parts in shares.items()}
    fused = sorted(scores.items(), key=lambda item: (-item[1], best[item[0]], item[0]))
    return fused if limit is None else fused[:limit]
