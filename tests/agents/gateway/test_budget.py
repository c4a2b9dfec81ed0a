"""The budget ledger's decisions (agents/gateway/budget.py), without Kafka."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from agents.gateway.budget import (
    MAX_CLOSED,
    DayBook,
    Decision,
    LedgerRequest,
    Limits,
    day_of,
    decide,
    month_days,
)

NOON = int(datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp() * 1000)
DAY = Limits(per_day_usd=1.0)


class Ledger:
    """One owner's books, as the ledger service keeps them: each decision's changed books replace
    the old ones."""

    def __init__(self) -> None:
        self.books: dict[str, DayBook] = {}

    def __call__(self, request: LedgerRequest) -> Decision:
        mine = {b.day: b for b in self.books.values() if b.tenant == request.tenant}
        decision = decide(mine, request)
        for book in decision.changed:
            self.books[f"{book.tenant}/{book.day}"] = book
        return decision

    def day(self, day: str = "2026-12-01", tenant: str = "acme") -> DayBook:
        return self.books[f"{tenant}/{day}"]


def reserve(rid: str, usd: float, at: int = NOON, limits: Limits = DAY, **more: object) -> LedgerRequest:
    return LedgerRequest("reserve", rid, "acme", usd, at, limits, **more)  # type: ignore[arg-type]


def settle(rid: str, usd: float, at: int = NOON, **more: object) -> LedgerRequest:
    return LedgerRequest("settle", rid, "acme", usd, at, DAY, **more)  # type: ignore[arg-type]


def test_grants_hold_the_worst_case_until_none_fits_so_concurrent_calls_cannot_pass_the_limit() -> None:
    ledger = Ledger()
    # Four calls in flight at once, none settled: the fifth worst case no longer fits.
    granted = [ledger(reserve(f"r{i}", 0.25)).granted for i in range(5)]
    assert granted == [True, True, True, True, False]
    refused = ledger(reserve("r5", 0.01))
    assert not refused.granted and refused.reason.startswith("budget_exhausted: tenant acme's day 2026-12-01")
    assert refused.day_left_usd == 0.0
    # Settling at the real cost frees what the worst case held beyond it.
    assert ledger(settle("r0", 0.05)).granted
    assert ledger.day().spent_usd == pytest.approx(0.05) and ledger.day().held_usd == pytest.approx(0.75)
    assert ledger(reserve("r6", 0.2)).granted
    assert not ledger(reserve("r7", 0.2)).granted


def test_a_reservation_asked_again_is_answered_as_the_first_time_and_reserves_once() -> None:
    ledger = Ledger()
    first = ledger(reserve("r1", 0.6))
    again = ledger(reserve("r1", 0.6))
    assert first.granted and again.granted and not again.changed
    assert ledger.day().held_usd == pytest.approx(0.6)
    # A refusal is remembered: asked again after room was made, it is still refused.
    assert not ledger(reserve("r2", 0.6)).granted
    ledger(settle("r1", 0.0))
    assert not ledger(reserve("r2", 0.6)).granted
    # Once settled, the id is closed: it neither reserves nor charges again.
    assert ledger(reserve("r3", 0.5)).granted
    ledger(settle("r3", 0.4))
    twice = ledger(settle("r3", 0.4))
    assert twice.reason == "settled already" and not twice.changed
    assert not ledger(reserve("r3", 0.5)).granted
    assert ledger.day().spent_usd == pytest.approx(0.4)


def test_a_release_frees_the_whole_hold_and_charges_nothing() -> None:
    ledger = Ledger()
    ledger(reserve("r1", 0.9))
    assert ledger(settle("r1", 0.0)).reason == "released"
    assert ledger.day().used_usd == 0.0 and ledger(reserve("r2", 0.9)).granted


def test_a_hold_never_settled_expires_charged_at_its_worst_case_and_a_late_settle_corrects_it() -> None:
    ledger = Ledger()
    ledger(reserve("r1", 0.5, hold_ms=1000))
    # The requester died: by the next request after its hold ran out, the hold is spent.
    later = NOON + 2000
    assert ledger(reserve("r2", 0.1, at=later)).granted
    assert ledger.day().spent_usd == pytest.approx(0.5) and [h.id for h in ledger.day().holds] == ["r2"]
    assert ledger(settle("r1", 0.2, at=later)).reason == "settled after it expired"
    assert ledger.day().spent_usd == pytest.approx(0.2)


def test_the_day_window_is_the_utc_day_and_the_month_window_sums_its_days() -> None:
    ledger = Ledger()
    limits = Limits(per_day_usd=1.0, per_month_usd=1.5)
    last_second = int(datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)
    assert ledger(reserve("a", 1.0, at=last_second, limits=limits)).granted
    assert not ledger(reserve("b", 0.1, at=last_second, limits=limits)).granted
    next_day = last_second + 1000
    assert day_of(next_day) == "2026-12-02"
    # A new day, but the month has 0.5 left.
    assert ledger(reserve("c", 0.5, at=next_day, limits=limits)).granted
    refused = ledger(reserve("d", 0.01, at=next_day, limits=limits))
    assert refused.reason.startswith("budget_exhausted: tenant acme's month 2026-12 has $0.000000")
    # A new month starts empty.
    january = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert ledger(reserve("e", 1.0, at=january, limits=limits)).granted


def test_a_call_that_ends_after_midnight_settles_in_the_day_it_reserved() -> None:
    ledger = Ledger()
    late = int(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)
    grant = ledger(reserve("r1", 0.5, at=late))
    ledger(settle("r1", 0.3, at=late + 5000, day=grant.day))
    assert ledger.day("2026-12-31").spent_usd == pytest.approx(0.3)
    assert ledger.day("2026-12-31").holds == () and "acme/2027-01-01" not in ledger.books


def test_a_settle_that_overtakes_its_reservation_is_charged_and_the_reservation_then_refused() -> None:
    ledger = Ledger()
    assert ledger(settle("r1", 0.3)).reason == "settled without a reservation"
    assert not ledger(reserve("r1", 0.3)).granted
    assert ledger.day().spent_usd == pytest.approx(0.3)


def test_tenants_and_unlimited_windows_do_not_touch_each_other() -> None:
    ledger = Ledger()
    assert ledger(reserve("r1", 5.0, limits=Limits())).granted  # no window set: only recorded
    other = LedgerRequest("reserve", "r2", "globex", 0.9, NOON, DAY)
    assert ledger(other).granted
    assert ledger.day(tenant="globex").used_usd == pytest.approx(0.9)


def test_every_change_raises_the_books_version_so_an_older_row_read_back_never_wins() -> None:
    ledger = Ledger()
    ledger(reserve("r1", 0.1))
    ledger(reserve("r2", 0.1))
    assert ledger.day().version == 2
    assert not ledger(reserve("r2", 0.1)).changed


def test_a_book_remembers_a_bounded_number_of_ended_reservations() -> None:
    book = DayBook("acme", "2026-12-01")
    many = replace(
        book, closed=tuple(decide({}, settle(f"x{i}", 0.0)).changed[0].closed[0] for i in range(3))
    )
    assert len(many.closed) == 3
    full = replace(book, closed=many.closed * (MAX_CLOSED // 3 + 1))
    after = decide({"2026-12-01": full}, settle("new", 0.0)).changed[0]
    assert len(after.closed) == MAX_CLOSED and after.closed[-1].id == "new"


def test_a_book_round_trips_through_its_record() -> None:
    ledger = Ledger()
    ledger(reserve("r1", 0.1))
    ledger(reserve("r2", 0.1))
    ledger(settle("r1", 0.05))
    book = ledger.day()
    assert DayBook.from_record(book.to_record()) == book


def test_bad_requests_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        reserve("r1", -0.1)
    with pytest.raises(ValueError, match="non-negative"):
        reserve("r1", float("nan"))
    with pytest.raises(ValueError, match="reservation id"):
        reserve("", 0.1)
    with pytest.raises(ValueError, match="UTC date"):
        settle("r1", 0.1, day="12/01/2026")
    with pytest.raises(ValueError, match="per_day_usd must be positive"):
        Limits(per_day_usd=0)


def test_month_days_knows_the_length_of_each_month() -> None:
    assert len(month_days("2026-02-10")) == 28 and len(month_days("2028-02-01")) == 29
    assert month_days("2026-12-05")[-1] == "2026-12-31"


def test_a_ledger_request_it_cannot_decide_is_a_permanent_error_that_says_why() -> None:
    from agents.gateway.ledger import _request_of
    from streams.errors import PermanentError

    record = {"reservation_id": "r1", "tenant": "acme", "kind": "reserve", "usd": -1.0, "at_ms": NOON}
    with pytest.raises(PermanentError, match="cannot decide: a reservation's amount must be a non-negative"):
        _request_of(record)
    good = _request_of({**record, "usd": 0.5, "per_day_usd": 2.0, "hold_ms": 1000})
    assert good.limits == Limits(2.0, None) and good.hold_ms == 1000
