"""What the join decides once a draft's checks are in: pure functions, no I/O.

A draft is checked by two branches at once (``factcheck``, ``style``). The join keeps one
:class:`podium.content.JoinState` per request: the articles each branch sent back for the
current round and the branches that failed. When each branch has answered (a verdict, or a dead
letter for a failure), or the deadline passed with a branch missing, it decides:

- every check at or above its threshold: **publish** (on to ``seo``);
- a check below its threshold and revisions left: **revise**, back to ``draft`` with the
  critique of the failing checks attached and ``round + 1``;
- otherwise **reject**, with each score against its threshold and the reasons; a failed or
  missing branch is recorded as such and is never revised (nothing to revise against).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["BRANCHES", "Outcome", "Thresholds", "arrival", "decide", "merge_checks", "ready"]

Record = dict[str, Any]
BRANCHES = ("factcheck", "style")


@dataclass(frozen=True)
class Thresholds:
    factcheck: float = 0.7
    style: float = 0.8
    max_revisions: int = 2  # a brief is drafted at most 1 + max_revisions times
    join_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name in BRANCHES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"threshold {name} must be within 0..1")
        if self.max_revisions < 0 or self.join_timeout_s <= 0:
            raise ValueError("max_revisions must not be negative and join_timeout_s must be positive")

    def of(self, branch: str) -> float:
        return float(getattr(self, branch))


@dataclass(frozen=True)
class Outcome:
    action: Literal["publish", "revise", "reject"]
    reasons: tuple[str, ...]
    critique: tuple[str, ...] = ()


def arrival(
    state: Record | None, request_id: str, round_: int, now_ms: int, timeout_ms: int
) -> tuple[Record, bool]:
    """The state to update for an arrival of ``round_``, and whether the arrival is stale
    (for a round already decided or superseded: it changes nothing)."""
    if state is not None and (
        state["round"] > round_ or (state["round"] == round_ and state["status"] == "done")
    ):
        return state, True
    if state is None or state["round"] < round_:
        state = {
            "request_id": request_id,
            "round": round_,
            "status": "waiting",
            "arrived": {},
            "failed": {},
            "deadline_ms": now_ms + timeout_ms,
            "updated_ms": now_ms,
        }
    return {
        **state,
        "arrived": dict(state["arrived"]),
        "failed": dict(state["failed"]),
        "updated_ms": now_ms,
    }, False


def ready(state: Record, now_ms: int) -> bool:
    """Every branch answered (a verdict, or a failure), or the deadline passed. A failed branch
    does not cut the wait short: the rejection then carries the other branch's verdict too."""
    answered = all(b in state["arrived"] or b in state["failed"] for b in BRANCHES)
    return answered or now_ms >= state["deadline_ms"]


def merge_checks(articles: Mapping[str, Record]) -> list[Record]:
    """Each branch's own check of the round, in branch order."""
    checks = []
    for branch in BRANCHES:
        article = articles.get(branch)
        if article is not None:
            checks += [
                c for c in article["checks"] if c["branch"] == branch and c["round"] == article["round"]
            ]
    return checks


def decide(checks: list[Record], failed: Mapping[str, str], round_: int, thresholds: Thresholds) -> Outcome:
    reasons: list[str] = []
    for branch in BRANCHES:
        if branch in failed:
            reasons.append(f"{branch} failed: {failed[branch]}")
        elif not any(c["branch"] == branch for c in checks):
            reasons.append(f"{branch}: no verdict within {thresholds.join_timeout_s:g}s")
    if reasons:
        return Outcome("reject", tuple(reasons))
    below = [c for c in checks if c["score"] < thresholds.of(c["branch"])]
    if not below:
        return Outcome(
            "publish",
            tuple(f"{c['branch']} {c['score']:.2f} >= {thresholds.of(c['branch']):.2f}" for c in checks),
        )
    reasons = [f"{c['branch']} {c['score']:.2f} < {thresholds.of(c['branch']):.2f}" for c in below]
    if round_ < thresholds.max_revisions:
        critique = tuple(line for c in below for line in c["critique"])
        return Outcome("revise", tuple(reasons), critique)
    reasons.append(f"no revisions left after {round_ + 1} draft(s)")
    return Outcome("reject", tuple(reasons))
