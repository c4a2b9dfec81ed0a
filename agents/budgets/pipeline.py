"""The budget ledger's owner as a pipeline of one stage (``budget-ledger``), so ``podium up``
runs it beside the pipelines whose model calls reserve against it, and ``podium run budgets``
(or ``podium run budget-ledger``) runs more of it: a tenant is decided by whichever replica
owns its partition (:mod:`agents.gateway.ledger`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams.runtime import Build, Pipeline

if TYPE_CHECKING:
    from streams import Stage

__all__ = ["BUDGETS"]


def _build(_: Build) -> list[Stage[Any]]:
    from agents.gateway.ledger import ledger_stage

    return [ledger_stage()]


BUDGETS = Pipeline(
    name="budgets",
    summary="the budget ledger: each tenant's day and month spend, one owner per tenant",
    build=_build,
)
