"""The stand-in billing system: the sample data, refunds at most once per key, the refusals."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from agents.billing.accounts import (
    REFUNDS_FILE,
    BillingError,
    Invoice,
    RefundRefused,
    SampleBillingSystem,
    UnknownAccount,
    UnknownInvoice,
    find_duplicate_charges,
    load_accounts,
)
from streams import ConfigError
from streams.errors import error_type, is_retryable

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def billing(tmp_path: Path) -> SampleBillingSystem:
    return SampleBillingSystem(tmp_path / "billing", clock=lambda: NOON)


def _invoice(id: str, period: str, amount: float, charged_on: str, status: str = "paid") -> Invoice:
    return Invoice.model_validate(
        {"id": id, "amount_usd": amount, "period": period, "charged_on": charged_on, "status": status}
    )


# -- the sample data -------------------------------------------------------------------------------
def test_the_sample_holds_six_accounts_and_only_a_1001_and_a_1006_were_charged_twice(
    billing: SampleBillingSystem,
) -> None:
    assert sorted(load_accounts()) == ["A-1001", "A-1002", "A-1003", "A-1004", "A-1005", "A-1006"]
    charged_twice = {
        a: [(d.original.id, d.duplicate.id) for d in find_duplicate_charges(billing.lookup_invoices(a))]
        for a in billing.accounts
    }
    assert charged_twice == {
        "A-1001": [("INV-5103", "INV-5104")],
        "A-1002": [],
        "A-1003": [],
        "A-1004": [],
        "A-1005": [],
        "A-1006": [("INV-5602", "INV-5603")],
    }


def test_one_sample_subscription_is_cancelled_and_does_not_renew(billing: SampleBillingSystem) -> None:
    cancelled = {a for a in billing.accounts if billing.get_subscription(a).status == "cancelled"}
    assert cancelled == {"A-1003"}
    assert billing.get_subscription("A-1003").renews_on is None
    assert billing.get_subscription("A-1001").renews_on == date(2026, 12, 15)


def test_invoices_come_oldest_first_with_their_fields(billing: SampleBillingSystem) -> None:
    invoices = billing.lookup_invoices("A-1001")
    assert [i.id for i in invoices] == ["INV-5101", "INV-5102", "INV-5103", "INV-5104"]
    assert invoices[-1].model_dump(mode="json") == {
        "id": "INV-5104",
        "amount_usd": 49.0,
        "period": "2026-11",
        "charged_on": "2026-11-16",
        "status": "paid",
        "refunded_usd": 0.0,
    }


def test_a_duplicate_is_the_later_of_two_paid_charges_for_one_period_and_amount() -> None:
    later = _invoice("B", "2026-11", 49.0, "2026-11-16")
    earlier = _invoice("A", "2026-11", 49.0, "2026-11-15")
    (found,) = find_duplicate_charges([later, earlier])
    assert (found.original.id, found.duplicate.id) == ("A", "B")


@pytest.mark.parametrize(
    "second",
    [
        _invoice("B", "2026-11", 49.0, "2026-11-18", status="failed"),  # a failed payment's retry
        _invoice("B", "2026-11", 25.0, "2026-11-18"),  # a prorated upgrade
        _invoice("B", "2026-12", 49.0, "2026-12-15"),  # the next month
    ],
    ids=["failed-then-paid", "other-amount", "other-period"],
)
def test_charges_that_differ_in_status_amount_or_period_are_not_duplicates(second: Invoice) -> None:
    assert find_duplicate_charges([_invoice("A", "2026-11", 49.0, "2026-11-15"), second]) == []


def test_amounts_are_compared_in_cents() -> None:
    assert find_duplicate_charges(
        [_invoice("A", "2026-11", 49.0, "2026-11-15"), _invoice("B", "2026-11", 48.999999, "2026-11-16")]
    )


# -- refunds ---------------------------------------------------------------------------------------
def test_a_refund_is_written_to_the_log_and_counted(billing: SampleBillingSystem) -> None:
    refund = billing.issue_refund("A-1001", "INV-5104", 49.0, "req-1:call-1")
    assert (refund.account, refund.invoice_id, refund.amount_usd) == ("A-1001", "INV-5104", 49.0)
    assert refund.id.startswith("R-") and refund.issued_at == NOON
    lines = billing.refunds_path.read_text().splitlines()
    assert billing.refunds_path.name == REFUNDS_FILE
    assert [json.loads(line)["idempotency_key"] for line in lines] == ["req-1:call-1"]
    assert billing.executions == {"req-1:call-1": 1}


def test_the_same_key_returns_the_first_refund_and_refunds_no_more(billing: SampleBillingSystem) -> None:
    first = billing.issue_refund("A-1001", "INV-5104", 49.0, "req-1:call-1")
    again = billing.issue_refund("A-1001", "INV-5104", 49.0, "req-1:call-1")
    assert again == first
    assert billing.calls == {"req-1:call-1": 2}
    assert billing.executions == {"req-1:call-1": 1}
    assert len(billing.refunds()) == 1


def test_the_key_holds_across_a_restart_over_the_same_data_dir(tmp_path: Path) -> None:
    first = SampleBillingSystem(tmp_path).issue_refund("A-1001", "INV-5104", 49.0, "req-1:call-1")
    restarted = SampleBillingSystem(tmp_path)
    assert restarted.issue_refund("A-1001", "INV-5104", 49.0, "req-1:call-1") == first
    assert restarted.executions == {}


def test_concurrent_calls_with_one_key_run_it_once(billing: SampleBillingSystem) -> None:
    with ThreadPoolExecutor(8) as pool:
        refunds = list(pool.map(lambda _: billing.issue_refund("A-1001", "INV-5104", 49.0, "k"), range(16)))
    assert len({r.id for r in refunds}) == 1
    assert billing.calls == {"k": 16}
    assert billing.executions == {"k": 1}


def test_two_systems_sharing_a_log_refund_an_invoice_once(tmp_path: Path) -> None:
    one, other = SampleBillingSystem(tmp_path), SampleBillingSystem(tmp_path)
    one.issue_refund("A-1001", "INV-5104", 49.0, "worker-1")
    with pytest.raises(RefundRefused) as refused:
        other.issue_refund("A-1001", "INV-5104", 49.0, "worker-2")
    assert refused.value.reason == "already_refunded"
    assert other.executions == {}


def test_a_refunded_invoice_shows_so_and_is_no_longer_a_duplicate(billing: SampleBillingSystem) -> None:
    billing.issue_refund("A-1001", "INV-5104", 49.0, "k")
    invoices = {i.id: i for i in billing.lookup_invoices("A-1001")}
    assert (invoices["INV-5104"].status, invoices["INV-5104"].refunded_usd) == ("refunded", 49.0)
    assert invoices["INV-5103"].status == "paid"
    assert find_duplicate_charges(list(invoices.values())) == []


# -- refusals --------------------------------------------------------------------------------------
def test_an_unknown_account_is_refused_naming_the_id_format(billing: SampleBillingSystem) -> None:
    for operation in (billing.lookup_invoices, billing.get_subscription):
        with pytest.raises(UnknownAccount, match=r"no account 'B-7'.*A-1001"):
            operation("B-7")
    with pytest.raises(UnknownAccount):
        billing.issue_refund("A-9999", "INV-5104", 49.0, "k")
    assert billing.executions == {}


def test_an_invoice_of_another_account_is_unknown(billing: SampleBillingSystem) -> None:
    with pytest.raises(UnknownInvoice, match=r"A-1002 has no invoice 'INV-5104' \(it has INV-5201\)"):
        billing.issue_refund("A-1002", "INV-5104", 49.0, "k")


@pytest.mark.parametrize(
    ("invoice", "amount", "reason"),
    [
        ("INV-5104", 49.01, "above_invoice"),
        ("INV-5104", 0.0, "not_positive"),
        ("INV-5104", -5.0, "not_positive"),
        ("INV-5402", 49.0, "not_paid"),  # A-1004's failed payment
    ],
)
def test_a_refund_that_cannot_be_right_is_refused(
    billing: SampleBillingSystem, invoice: str, amount: float, reason: str
) -> None:
    account = "A-1004" if invoice == "INV-5402" else "A-1001"
    with pytest.raises(RefundRefused) as refused:
        billing.issue_refund(account, invoice, amount, "k")
    assert refused.value.reason == reason
    assert billing.executions == {} and billing.refunds() == []


def test_a_partial_refund_is_allowed_once(billing: SampleBillingSystem) -> None:
    assert billing.issue_refund("A-1001", "INV-5104", 10.0, "k1").amount_usd == 10.0
    with pytest.raises(RefundRefused, match="already refunded") as refused:
        billing.issue_refund("A-1001", "INV-5104", 39.0, "k2")
    assert refused.value.reason == "already_refunded"
    assert billing.executions == {"k1": 1}


def test_a_key_reused_for_another_refund_is_refused(billing: SampleBillingSystem) -> None:
    billing.issue_refund("A-1001", "INV-5104", 49.0, "k")
    with pytest.raises(RefundRefused, match="cannot be reused") as refused:
        billing.issue_refund("A-1001", "INV-5103", 49.0, "k")
    assert refused.value.reason == "key_reused"
    assert billing.executions == {"k": 1}


def test_billing_errors_are_permanent_with_their_own_dead_letter_reasons() -> None:
    assert not is_retryable(UnknownAccount("x"))
    assert [error_type(e) for e in (UnknownAccount("x"), UnknownInvoice("x"))] == [
        "unknown_account",
        "unknown_invoice",
    ]
    assert error_type(RefundRefused("above_invoice", "x")) == "refund_refused"


def test_a_broken_accounts_file_fails_naming_itself(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_text('{"accounts": {"A-1": {"customer": "x"}}}')
    with pytest.raises(ConfigError, match=r"accounts\.json"):
        load_accounts(path)
    path.write_text(json.dumps({"accounts": {"acct-1": json.loads(_sample_account())}}))
    with pytest.raises(ConfigError, match="'acct-1' does not fit"):
        load_accounts(path)


def _sample_account() -> str:
    return load_accounts()["A-1002"].model_dump_json()


def test_a_corrupt_refund_log_fails_naming_the_line(billing: SampleBillingSystem) -> None:
    billing.issue_refund("A-1001", "INV-5104", 49.0, "k")
    with billing.refunds_path.open("a") as log:
        log.write("not json\n")
    with pytest.raises(BillingError, match=rf"{REFUNDS_FILE}:2"):
        billing.refunds()
