"""The budget ledger over Kafka: one owner per tenant decides reservations; every gateway asks it.

::

    gateway (any replica) --reserve/settle, keyed by tenant--> podium.budget.requests
        budget-ledger stage (a consumer group: the partition's owner decides its tenants, in
        order, one lane per tenant) --decide(books, request)--> podium.budget.ledger (compacted,
        tenant/day) and podium.budget.replies (by the request's podium-request-id)
    gateway <--its reply, by request id-- podium.budget.replies (followed by every replica)

Why this holds across replicas and restarts:

1. a tenant's requests share a partition of ``podium.budget.requests`` (the key is the
   tenant), and a partition has one owner in the ``budget-ledger`` group, whose ordered lanes
   run one tenant's requests one after another: exactly one decider per tenant;
2. the owner's books are a :class:`~streams.runtime.Table` over the compacted ledger topic,
   read from its beginning and followed; before each decision it reads to the topic's end
   (``sync``), so an owner that takes a tenant over decides on every book its predecessor wrote;
3. the runtime's commit order makes the changed books and the reply durable before the request's
   offset is committed: a request the owner died on is decided again by the next, on books that
   hold everything acknowledged before it. :func:`~agents.gateway.budget.decide` depends on the
   books and the request alone, and answers an id it knows as the first time, so deciding again
   neither reserves nor charges twice;
4. a requester that hears no answer in time does not call the model, and releases what it asked
   for (the release follows the reservation on the same partition, so it is decided after it).

:class:`BudgetLedger` is the requester's side, which the model gateway calls around each model
call (:meth:`agents.gateway.gateway.ModelGateway.complete`, ``stream``, ``embed``).

Known limit: an owner cut off from the group longer than its session timeout, yet still running
(a long pause), may decide beside its successor until it notices; Kafka transactions with the
group's generation would fence it, and are not used here.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from agents.gateway.budget import (
    DayBook,
    Grant,
    LedgerRequest,
    Limits,
    book_key,
    day_of,
    decide,
    month_days,
)
from agents.gateway.config import BudgetsConfig
from agents.gateway.errors import BudgetUnavailable
from streams import Codec, Emit, PermanentError, PodiumError, Publisher, Record, Stage, StageContext, Table
from streams.contracts import Catalog
from streams.ingress import ReplyRouter
from streams.kafka import Cluster

__all__ = [
    "BOOKS",
    "LEDGER_STAGE",
    "REPLIES",
    "REQUESTS",
    "BudgetLedger",
    "LedgerOwner",
    "ledger_stage",
    "spent_in",
]

log = logging.getLogger("podium.budget")

REQUESTS = "podium.budget.requests"
REPLIES = "podium.budget.replies"
BOOKS = "podium.budget.ledger"
LEDGER_STAGE = "budget-ledger"
_REPLY_SCHEMA = "podium.budget.Reply"


def _request_of(record: Record) -> LedgerRequest:
    try:
        return LedgerRequest(
            kind=record["kind"],
            reservation_id=record["reservation_id"],
            tenant=record["tenant"],
            usd=record["usd"],
            at_ms=record["at_ms"],
            limits=Limits(record.get("per_day_usd"), record.get("per_month_usd")),
            hold_ms=record.get("hold_ms", 60_000),
            day=record.get("day", ""),
        )
    except ValueError as exc:  # never decidable: the DLQ, with what is wrong
        raise PermanentError(f"a budget request the ledger cannot decide: {exc}") from exc


class LedgerOwner:
    """The ``budget-ledger`` stage's handler: the owner's side (steps 1-3 of the docstring)."""

    def __init__(self) -> None:
        self.books = Table(
            BOOKS,
            key_of=lambda row: book_key(row["tenant"], row["day"]),
            version_of=lambda row: row["version"],
        )

    async def handle(self, record: Record, ctx: StageContext) -> list[Emit]:
        request = _request_of(record)
        if request.kind not in ("reserve", "settle"):
            raise PermanentError(f"a budget request of kind {request.kind!r}: reserve or settle")
        await self.books.sync()  # step 2: every book a predecessor wrote
        day = request.day if request.kind == "settle" and request.day else day_of(request.at_ms)
        books = {
            d: DayBook.from_record(row)
            for d in month_days(day)
            if (row := self.books.get_now(book_key(request.tenant, d))) is not None
        }
        decision = decide(books, request)
        written = decision.changed
        if not written and decision.day in books:
            # Asked again: write the book the answer rests on once more, in case the first
            # answer went out and its book did not (both are acknowledged before the commit).
            written = (books[decision.day],)
        emits = []
        for book in written:
            row = book.to_record()
            self.books.put(row)
            emits.append(Emit(BOOKS, row, key=book_key(book.tenant, book.day)))
        reply = {
            "reservation_id": request.reservation_id,
            "tenant": request.tenant,
            "kind": request.kind,
            "granted": decision.granted,
            "reason": decision.reason,
            "day": decision.day,
            "day_left_usd": decision.day_left_usd,
            "month_left_usd": decision.month_left_usd,
        }
        emits.append(Emit(REPLIES, reply, key=request.reservation_id))
        if not decision.granted:
            log.info("budget: %s refused for %s: %s", request.reservation_id, request.tenant, decision.reason)
        return emits


def ledger_stage() -> Stage[Record]:
    """The ledger's owner as a stage: a consumer group over ``podium.budget.requests``, one
    lane per tenant (``ordered_by_key``), its books a table over ``podium.budget.ledger``."""
    owner = LedgerOwner()
    return Stage(
        LEDGER_STAGE,
        REQUESTS,
        (BOOKS, REPLIES),
        owner.handle,
        ordered_by_key=True,
        resources=(owner.books,),
        handler_timeout_s=30.0,
    )


class BudgetLedger:
    """The requester's side: reserve a call's worst case and wait for the owner's answer, then
    settle it. Open (``async with``) while the gateway is."""

    def __init__(self, cluster: Cluster, catalog: Catalog, codec: Codec, budgets: BudgetsConfig) -> None:
        self._budgets = budgets
        self._codec = codec
        self._publisher = Publisher(cluster=cluster, catalog=catalog, codec=codec)
        self._router = ReplyRouter(cluster, [REPLIES])
        self._releases: set[asyncio.Future[None]] = set()  # kept until sent, even if unawaited

    def __repr__(self) -> str:
        return "BudgetLedger()"

    async def __aenter__(self) -> BudgetLedger:
        await self._publisher.__aenter__()
        try:
            await self._router.__aenter__()
        except BaseException:
            await self._publisher.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            await self._router.__aexit__(None, None, None)
        finally:
            await self._publisher.__aexit__(None, None, None)

    def limits(self, tenant: str | None) -> Limits | None:
        return self._budgets.windows_for(tenant)

    async def reserve(self, tenant: str, usd: float, hold_s: float, wait_s: float | None) -> Grant:
        """The owner's answer to a new reservation of ``usd``. Raises :class:`BudgetUnavailable`
        when the request cannot be sent or no answer comes within ``wait_s`` (bounded by the
        configured ``ledger_timeout_s``). Whenever no answer is heard (those, or the wait
        cancelled), it asks to release the reservation (step 4): the owner may yet grant it,
        and a hold nobody settles would keep its worst case until it expires, then be charged."""
        limits = self._budgets.windows_for(tenant)
        assert limits is not None, "reserve only for a tenant with a day or month budget"
        reservation = uuid.uuid4().hex
        wait = (
            self._budgets.ledger_timeout_s if wait_s is None else min(wait_s, self._budgets.ledger_timeout_s)
        )
        record = self._record("reserve", reservation, tenant, usd, limits, hold_ms=int(hold_s * 1000))
        asked = f"{reservation}:reserve"
        self._router.expect(asked)
        answered = False
        try:
            try:
                await self._publisher.publish(REQUESTS, record, request_id=asked, key=tenant, tenant=tenant)
            except PodiumError as exc:
                why = f"could not ask the budget ledger for tenant {tenant}: {exc}"
                raise BudgetUnavailable(why) from exc
            arrival = await self._router.wait(asked, max(0.0, wait))
            if arrival is None or arrival.value is None:
                raise BudgetUnavailable(
                    f"the budget ledger did not answer tenant {tenant}'s reservation within {wait:.1f}s "
                    f"(is a `budget-ledger` stage running, e.g. `podium run support`?)"
                )
            reply = self._codec.decode(_REPLY_SCHEMA, arrival.value)
            answered = True
            return Grant(reservation, tenant, usd, reply["granted"], reply["reason"], reply["day"])
        finally:
            if not answered:
                self._router.forget(asked)
                await self._release_unheard(Grant(reservation, tenant, usd, False, "", ""))

    async def _release_unheard(self, grant: Grant) -> None:
        """Best effort: ask the owner to release a reservation whose answer was not heard. Shielded,
        so a second cancellation of the caller does not stop it half sent; a release that
        cannot be sent is logged (the hold expires instead), never raised over the reason the
        reservation failed."""
        release = asyncio.ensure_future(self._send_settle(grant, 0.0))
        self._releases.add(release)
        release.add_done_callback(self._releases.discard)
        try:
            await asyncio.shield(release)
        except PodiumError as exc:
            log.warning(
                "could not release budget reservation %s of %s (it expires instead): %s",
                grant.reservation_id,
                grant.tenant,
                exc,
            )

    async def settle(self, grant: Grant, usd: float) -> None:
        """Tell the owner what the granted call cost (0: nothing was spent): acknowledged by the
        broker when this returns, decided by the owner in its turn (no answer is awaited)."""
        await self._send_settle(grant, usd)

    async def _send_settle(self, grant: Grant, usd: float) -> None:
        limits = self._budgets.windows_for(grant.tenant) or Limits()
        record = self._record("settle", grant.reservation_id, grant.tenant, usd, limits, day=grant.day)
        await self._publisher.publish(
            REQUESTS,
            record,
            request_id=f"{grant.reservation_id}:settle",
            key=grant.tenant,
            tenant=grant.tenant,
        )

    @staticmethod
    def _record(
        kind: str, reservation: str, tenant: str, usd: float, limits: Limits, **more: Any
    ) -> dict[str, Any]:
        return {
            "reservation_id": reservation,
            "tenant": tenant,
            "kind": kind,
            "usd": usd,
            "at_ms": int(time.time() * 1000),
            "per_day_usd": limits.per_day_usd,
            "per_month_usd": limits.per_month_usd,
            "hold_ms": 60_000,
            "day": "",
            **more,
        }


def spent_in(rows: Sequence[Record], tenant: str, day: str) -> float:
    """What the books say ``tenant`` spent on ``day`` (settled and expired), from ledger rows."""
    newest: dict[str, Record] = {}
    for row in rows:
        key = book_key(row["tenant"], row["day"])
        if key not in newest or row["version"] >= newest[key]["version"]:
            newest[key] = row
    found = newest.get(book_key(tenant, day))
    return 0.0 if found is None else float(found["spent_usd"])
