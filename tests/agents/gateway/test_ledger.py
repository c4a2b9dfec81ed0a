"""The budget ledger on the real broker: one owner decides a tenant's reservations, a request
asked again reserves once, and an owner that takes over finds the window its predecessor kept."""

from __future__ import annotations

import asyncio
import time

import pytest

from agents.gateway.budget import Grant, day_of
from agents.gateway.config import BudgetsConfig
from agents.gateway.errors import BudgetUnavailable
from agents.gateway.ledger import BOOKS, REQUESTS, BudgetLedger, ledger_stage, spent_in
from streams.errors import BrokerError
from streams.ingress.publish import Publisher
from streams.runtime.project import Project
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import read_topic, running, start_group_at_end


def _owner(project: Project, group: str) -> StageWorker:
    return StageWorker(
        ledger_stage(),
        cluster=project.cluster(),
        catalog=project.catalog,
        codec=project.codec,
        group_id=group,
    )


async def _books(project: Project) -> list[dict[str, object]]:
    return [
        project.codec.decode("podium.budget.DayBook", v)
        for _, v in await read_topic(project.cluster(), BOOKS)
        if v
    ]


async def test_one_owner_holds_a_tenants_day_across_concurrent_requests_and_a_restart(
    project: Project, unique: str
) -> None:
    cluster = project.cluster()
    tenant = f"tenant-{unique}"
    group = f"{unique}-budget-ledger"
    await start_group_at_end(cluster, group, REQUESTS)  # not the other tests' requests
    budgets = BudgetsConfig.model_validate(
        {"tenants": {tenant: {"per_day_usd": 1.0}}, "ledger_timeout_s": 30}
    )
    async with BudgetLedger(cluster, project.catalog, project.codec, budgets) as ledger:
        async with running(_owner(project, group)):
            grants = await asyncio.gather(*(ledger.reserve(tenant, 0.3, 600, None) for _ in range(5)))
            assert sorted(g.granted for g in grants) == [False, False, True, True, True]
            refused = next(g for g in grants if not g.granted)
            assert refused.reason.startswith(
                f"budget_exhausted: tenant {tenant}'s day {day_of(int(time.time() * 1000))}"
            )
            first = next(g for g in grants if g.granted)
            await ledger.settle(first, 0.1)
            # The same reservation asked again (a redelivery, or a requester asking twice) is
            # answered as the first time and holds nothing more.
            async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
                again = {
                    "reservation_id": grants[-1].reservation_id
                    if grants[-1].granted
                    else grants[0].reservation_id,
                    "tenant": tenant,
                    "kind": "reserve",
                    "usd": 0.3,
                    "at_ms": int(time.time() * 1000),
                    "per_day_usd": 1.0,
                }
                await pub.publish(REQUESTS, again, key=tenant)
            # Room for 0.3 is left (0.1 spent, 0.6 held): the books say so once decided in turn.
            after = await ledger.reserve(tenant, 0.3, 600, None)
            assert after.granted, after.reason
        # The owner stops; a new one (its books read back from the compacted ledger) takes over.
        async with running(_owner(project, group)):
            full = await ledger.reserve(tenant, 0.01, 600, None)
            assert not full.granted and "has $0.000000 of $1 left" in full.reason
            await ledger.settle(after, 0.05)
            freed = await ledger.reserve(tenant, 0.2, 600, None)
            assert freed.granted, freed.reason
    books = [b for b in await _books(project) if b["tenant"] == tenant]
    assert spent_in(books, tenant, day_of(int(time.time() * 1000))) == pytest.approx(0.15)
    newest = max(books, key=lambda b: b["version"])  # type: ignore[arg-type,return-value]
    assert len(newest["holds"]) == 3  # type: ignore[arg-type]


async def test_a_reservation_whose_answer_was_not_heard_is_released_and_never_fails_as_the_broker(
    project: Project, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = project.cluster()
    tenant = f"tenant-{unique}"
    group = f"{unique}-budget-ledger"
    await start_group_at_end(cluster, group, REQUESTS)
    budgets = BudgetsConfig.model_validate(
        {"tenants": {tenant: {"per_day_usd": 1.0}}, "ledger_timeout_s": 30}
    )
    async with BudgetLedger(cluster, project.catalog, project.codec, budgets) as ledger:
        # No owner yet: the caller gives up on its reservation once it is sent (cancelled)...
        waiting = asyncio.create_task(ledger.reserve(tenant, 0.3, 600, None))
        for _ in range(600):  # until the broker has it (its publish was acknowledged)
            if any(key == tenant for key, _ in await read_topic(cluster, REQUESTS)):
                break
            await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # ... or waits too short a time for its answer.
        with pytest.raises(BudgetUnavailable):
            await ledger.reserve(tenant, 0.3, 600, 0.2)

        # A release that cannot be sent either: still the ledger's unavailability, not Kafka's.
        async def refused(grant: Grant, usd: float) -> None:
            raise BrokerError("the broker refused the release")

        with monkeypatch.context() as patched:
            patched.setattr(ledger, "_send_settle", refused)
            with pytest.raises(BudgetUnavailable):
                await ledger.reserve(tenant, 0.05, 600, 0.2)
        async with running(_owner(project, group)):
            # The owner grants the first two and releases them: room for 0.9 beside the 0.05
            # whose release never left (it holds until it expires).
            after = await ledger.reserve(tenant, 0.9, 600, None)
            assert after.granted, after.reason
    books = [b for b in await _books(project) if b["tenant"] == tenant]
    newest = max(books, key=lambda b: b["version"])  # type: ignore[arg-type,return-value]
    assert sorted(h["usd"] for h in newest["holds"]) == [0.05, 0.9]  # type: ignore[attr-defined]
    assert [c["outcome"] for c in newest["closed"]] == ["released", "released"]  # type: ignore[attr-defined]
