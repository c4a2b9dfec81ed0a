"""A tenant's spend over time: the budget ledger's decisions, free of I/O.

The ledger holds, per tenant and UTC day, a :class:`DayBook`: what was spent (settled), what
is held (open reservations, each at its call's worst case) and the reservations that ended
(settled, released, expired or refused, by id). One owner decides each tenant's requests in
order (:mod:`agents.gateway.ledger` runs it over Kafka); :func:`decide` is that decision:

1. the windows of the request: its UTC day (``at_ms``, the requester's clock, so a request
   decided again after a crash lands in the same day) and the month that day is in;
2. holds of the tenant's books that expired by ``at_ms`` are charged at what they held: a call
   whose end the ledger never heard may have spent its worst case (a later settle corrects it);
3. a reservation id the books know is answered as it was the first time (a redelivered request
   never reserves twice, a settle never charges twice);
4. a new reservation is granted only if the day's and the month's spent plus held plus its own
   worst case stay within the limits; a refusal is remembered too, so it is refused again;
5. a settle moves the reservation's hold to spent at the real cost (0 is a release).

Concurrency cannot let spend slip past a limit (the bug LiteLLM users report, #34732 and
#40095): every grant holds its worst case until it settles, and only one owner grants. Spend
can pass a limit only when a real cost is above the worst case it reserved, or when a settle
arrives for a hold that was unknown or had expired; a settle is always charged its real cost, so
the books stay honest either way. The gateway reserves an upper bound, not an estimate
(:meth:`~agents.gateway.providers.protocol.ChatRequest.upper_bound`: the prompt's UTF-8 bytes,
since a token is at least a byte, and ``max_tokens`` of output), so a real cost above it means a
provider billing past that bound or a price table below the provider's.

The decision depends on the books and the request alone, never on the owner's clock, so an
owner that takes over and decides a request again decides it the same way.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

__all__ = [
    "MAX_CLOSED",
    "Closed",
    "DayBook",
    "Decision",
    "Grant",
    "Hold",
    "InMemoryLedger",
    "LedgerRequest",
    "Limits",
    "SpendLedger",
    "book_key",
    "day_of",
    "decide",
    "month_days",
]

# The ended reservations a day's book remembers by id (the oldest are forgotten first): a
# redelivery of a request older than this many ends of its tenant's day is not recognised, and a
# settle for it is charged again (too much, never too little). Bounds the size of a book.
MAX_CLOSED = 5000

Outcome = Literal["settled", "released", "expired", "refused"]


@dataclass(frozen=True)
class Limits:
    """A tenant's windows in USD (None: that window is not limited)."""

    per_day_usd: float | None = None
    per_month_usd: float | None = None

    def __post_init__(self) -> None:
        for name, value in (("per_day_usd", self.per_day_usd), ("per_month_usd", self.per_month_usd)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive (got {value})")


@dataclass(frozen=True)
class Hold:
    id: str
    usd: float
    expires_ms: int


@dataclass(frozen=True)
class Closed:
    id: str
    usd: float  # what it was charged
    outcome: Outcome


@dataclass(frozen=True)
class DayBook:
    tenant: str
    day: str  # "2026-12-01" (UTC)
    spent_usd: float = 0.0
    holds: tuple[Hold, ...] = ()
    closed: tuple[Closed, ...] = ()
    version: int = 0

    @property
    def held_usd(self) -> float:
        return sum(h.usd for h in self.holds)

    @property
    def used_usd(self) -> float:
        return self.spent_usd + self.held_usd

    def hold(self, reservation_id: str) -> Hold | None:
        return next((h for h in self.holds if h.id == reservation_id), None)

    def ended(self, reservation_id: str) -> Closed | None:
        return next((c for c in self.closed if c.id == reservation_id), None)

    def to_record(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "day": self.day,
            "spent_usd": self.spent_usd,
            "holds": [h.__dict__ for h in self.holds],
            "closed": [c.__dict__ for c in self.closed],
            "version": self.version,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DayBook:
        return cls(
            tenant=record["tenant"],
            day=record["day"],
            spent_usd=record["spent_usd"],
            holds=tuple(Hold(**h) for h in record["holds"]),
            closed=tuple(Closed(**c) for c in record["closed"]),
            version=record["version"],
        )


@dataclass(frozen=True)
class LedgerRequest:
    """``reserve``: hold ``usd`` (a call's worst case) for ``hold_ms``; ``settle``: the call
    cost ``usd`` (0: release, nothing was spent)."""

    kind: Literal["reserve", "settle"]
    reservation_id: str
    tenant: str
    usd: float
    at_ms: int
    limits: Limits = field(default_factory=Limits)
    hold_ms: int = 60_000
    # settle: the day the grant named (a call that ends after midnight settles in its own day)
    day: str = ""

    def __post_init__(self) -> None:
        if not self.usd >= 0:  # also refuses NaN
            raise ValueError(f"a reservation's amount must be a non-negative number (got {self.usd})")
        if not self.reservation_id:
            raise ValueError("a ledger request needs a reservation id")
        if self.day:
            try:
                datetime.strptime(self.day, "%Y-%m-%d")
            except ValueError:
                raise ValueError(f"day {self.day!r} is not a UTC date such as 2026-12-01") from None


@dataclass(frozen=True)
class Decision:
    """The answer (granted or not, and why) and the books to write (changed ones only)."""

    granted: bool
    reason: str
    day: str
    day_left_usd: float | None
    month_left_usd: float | None
    changed: tuple[DayBook, ...] = ()


@dataclass(frozen=True)
class Grant:
    """The ledger's answer to a requester's reservation of ``usd``."""

    reservation_id: str
    tenant: str
    usd: float
    granted: bool
    reason: str
    day: str


class SpendLedger(Protocol):
    """What the model gateway asks around each model call of a tenant with a window
    (:class:`agents.gateway.ledger.BudgetLedger` over Kafka)."""

    def limits(self, tenant: str | None) -> Limits | None:
        """The tenant's windows, or None: its calls reserve nothing."""
        ...

    async def reserve(self, tenant: str, usd: float, hold_s: float, wait_s: float | None) -> Grant: ...

    async def settle(self, grant: Grant, usd: float) -> None: ...


# (granted, reason, the day of the reservation): the decision, with the books as they now are.
_Answer = Callable[[bool, str, str], Decision]


def day_of(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d")


def month_days(day: str) -> list[str]:
    """Every day of ``day``'s month, as book days (the month window is the sum of its days)."""
    year, month = int(day[:4]), int(day[5:7])
    days = []
    for d in range(1, 32):
        try:
            days.append(datetime(year, month, d, tzinfo=UTC).strftime("%Y-%m-%d"))
        except ValueError:
            break
    return days


def book_key(tenant: str, day: str) -> str:
    """The book's key on the compacted ledger topic."""
    return f"{tenant}/{day}"


def _left(limit: float | None, used: float) -> float | None:
    return None if limit is None else max(0.0, limit - used)


def _close(book: DayBook, ended: Closed) -> DayBook:
    closed = (*(c for c in book.closed if c.id != ended.id), ended)
    return replace(book, closed=closed[-MAX_CLOSED:])


def _expire(book: DayBook, now_ms: int) -> DayBook:
    """Charge the holds that expired by ``now_ms`` at what they held (step 2)."""
    expired = [h for h in book.holds if h.expires_ms <= now_ms]
    if not expired:
        return book
    for h in expired:
        book = _close(book, Closed(h.id, h.usd, "expired"))
    return replace(
        book,
        spent_usd=book.spent_usd + sum(h.usd for h in expired),
        holds=tuple(h for h in book.holds if h.expires_ms > now_ms),
    )


def decide(books: Mapping[str, DayBook], request: LedgerRequest) -> Decision:
    """The owner's decision on ``request`` given the tenant's books of the request's month
    (by day; a day without a book has none yet). Steps as in the module docstring."""
    day = request.day if request.kind == "settle" and request.day else day_of(request.at_ms)
    month = month_days(day)
    current = {d: _expire(books.get(d) or DayBook(request.tenant, d), request.at_ms) for d in month}
    changed = {d for d in month if current[d] != (books.get(d) or DayBook(request.tenant, d))}

    def answer(granted: bool, reason: str, where: str) -> Decision:
        month_used = sum(b.used_usd for b in current.values())
        out = tuple(replace(current[d], version=current[d].version + 1) for d in month if d in changed)
        return Decision(
            granted,
            reason,
            where,
            _left(request.limits.per_day_usd, current[day].used_usd),
            _left(request.limits.per_month_usd, month_used),
            out,
        )

    # Step 3: a reservation the books know, wherever its day is.
    where = next((d for d in month if current[d].hold(request.reservation_id)), None)
    ended_in = next((d for d in month if current[d].ended(request.reservation_id)), None)
    if request.kind == "reserve":
        if where is not None:
            return answer(True, "held already (the same reservation, asked again)", where)
        if ended_in is not None:
            ended = current[ended_in].ended(request.reservation_id)
            assert ended is not None
            return answer(False, f"reservation {request.reservation_id} already {ended.outcome}", ended_in)
        return _reserve(current, changed, request, day, answer)
    return _settle(current, changed, request, day, where, ended_in, answer)


def _reserve(
    current: dict[str, DayBook], changed: set[str], request: LedgerRequest, day: str, answer: _Answer
) -> Decision:
    """Step 4: grant only within both windows; remember a refusal."""
    limits = request.limits
    day_used = current[day].used_usd
    month_used = sum(b.used_usd for b in current.values())
    why = ""
    if limits.per_day_usd is not None and day_used + request.usd > limits.per_day_usd:
        why = (
            f"budget_exhausted: tenant {request.tenant}'s day {day} has "
            f"${_left(limits.per_day_usd, day_used):.6f} of ${limits.per_day_usd:g} left, "
            f"the call could cost ${request.usd:.6f}"
        )
    elif limits.per_month_usd is not None and month_used + request.usd > limits.per_month_usd:
        why = (
            f"budget_exhausted: tenant {request.tenant}'s month {day[:7]} has "
            f"${_left(limits.per_month_usd, month_used):.6f} of ${limits.per_month_usd:g} left, "
            f"the call could cost ${request.usd:.6f}"
        )
    book = current[day]
    if why:
        current[day] = _close(book, Closed(request.reservation_id, 0.0, "refused"))
        changed.add(day)
        return answer(False, why, day)
    hold = Hold(request.reservation_id, request.usd, request.at_ms + request.hold_ms)
    current[day] = replace(book, holds=(*book.holds, hold))
    changed.add(day)
    return answer(True, "granted", day)


def _settle(
    current: dict[str, DayBook],
    changed: set[str],
    request: LedgerRequest,
    day: str,
    where: str | None,
    ended_in: str | None,
    answer: _Answer,
) -> Decision:
    """Step 5: the hold becomes spent at the real cost. A settle for an ended reservation
    corrects what an expiry (or a refusal: the call was made anyway) charged, and is a no-op for
    one settled already; one for a reservation never seen is charged to its own day."""
    outcome: Outcome = "settled" if request.usd > 0 else "released"
    if where is not None:
        book = current[where]
        held = book.hold(request.reservation_id)
        assert held is not None
        book = replace(
            book,
            spent_usd=book.spent_usd + request.usd,
            holds=tuple(h for h in book.holds if h.id != request.reservation_id),
        )
        current[where] = _close(book, Closed(request.reservation_id, request.usd, outcome))
        changed.add(where)
        return answer(True, outcome, where)
    if ended_in is not None:
        book = current[ended_in]
        ended = book.ended(request.reservation_id)
        assert ended is not None
        if ended.outcome in ("settled", "released"):
            return answer(True, f"{ended.outcome} already", ended_in)
        book = replace(book, spent_usd=max(0.0, book.spent_usd - ended.usd + request.usd))
        current[ended_in] = _close(book, Closed(request.reservation_id, request.usd, outcome))
        changed.add(ended_in)
        return answer(True, f"{outcome} after it {ended.outcome}", ended_in)
    book = current[day]
    book = replace(book, spent_usd=book.spent_usd + request.usd)
    current[day] = _close(book, Closed(request.reservation_id, request.usd, outcome))
    changed.add(day)
    return answer(True, f"{outcome} without a reservation", day)


class InMemoryLedger:
    """A :class:`SpendLedger` of one process, deciding with :func:`decide` as the Kafka ledger's
    owner does: for tests and for a single process with no other replica to agree with."""

    def __init__(self, limits: Mapping[str, Limits], clock: Callable[[], float] = time.time) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._ids = (f"r{n}" for n in itertools.count())
        self.books: dict[str, DayBook] = {}
        self.requests: list[LedgerRequest] = []

    def limits(self, tenant: str | None) -> Limits | None:
        return self._limits.get(tenant or "")

    def _decide(self, request: LedgerRequest) -> Decision:
        self.requests.append(request)
        mine = {b.day: b for b in self.books.values() if b.tenant == request.tenant}
        decision = decide(mine, request)
        for book in decision.changed:
            self.books[book_key(book.tenant, book.day)] = book
        return decision

    async def reserve(self, tenant: str, usd: float, hold_s: float, wait_s: float | None) -> Grant:
        limits = self._limits[tenant]
        rid = next(self._ids)
        at = int(self._clock() * 1000)
        decision = self._decide(LedgerRequest("reserve", rid, tenant, usd, at, limits, int(hold_s * 1000)))
        return Grant(rid, tenant, usd, decision.granted, decision.reason, decision.day)

    async def settle(self, grant: Grant, usd: float) -> None:
        at = int(self._clock() * 1000)
        limits = self._limits[grant.tenant]
        self._decide(
            LedgerRequest("settle", grant.reservation_id, grant.tenant, usd, at, limits, day=grant.day)
        )

    def spent(self, tenant: str) -> float:
        return sum(b.spent_usd for b in self.books.values() if b.tenant == tenant)

    def held(self, tenant: str) -> float:
        return sum(b.held_usd for b in self.books.values() if b.tenant == tenant)
