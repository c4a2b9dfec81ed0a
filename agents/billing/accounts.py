"""A stand-in for a billing system: the billing agent's accounts, invoices, subscriptions and
refunds, read from the sample file ``data/accounts.json`` (invented customers, no real service).

It exists so the demo's agent has something real to look up and one real side effect to
perform exactly once. What it holds: six accounts, ``A-1001`` to ``A-1006``; ``A-1001`` and
``A-1006`` were charged twice for 2026-11 (two paid invoices, same period and amount), the others
are clean (``A-1003`` cancelled, ``A-1004`` a failed payment retried, ``A-1005`` a prorated upgrade).

The operations are plain typed methods so the agent's ``@tool`` decorator can turn them into
tools. :meth:`SampleBillingSystem.issue_refund` is the side effect: each refund is one line of
``refunds.jsonl`` in the data directory the object is given, keyed by its idempotency key. A key
seen before returns the refund it made (nothing is refunded again); the checks that refuse a
refund are pure functions (:func:`earlier_refund`, :func:`check_refund`) over the invoice and
the refunds so far. The errors::

    BillingError (PermanentError)     retrying the same call cannot help
    ├── UnknownAccount                no such account id (names the ids' format)
    ├── UnknownInvoice                no such invoice on that account
    └── RefundRefused                 ``reason``: not_positive, above_invoice, not_paid,
                                      already_refunded, key_reused
"""

from __future__ import annotations

import fcntl
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from hashlib import sha256
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from streams import ConfigError, PermanentError

__all__ = [
    "ACCOUNTS",
    "REFUNDS_FILE",
    "Account",
    "BillingError",
    "DuplicateCharge",
    "Invoice",
    "Refund",
    "RefundRefused",
    "SampleBillingSystem",
    "Subscription",
    "UnknownAccount",
    "UnknownInvoice",
    "check_refund",
    "earlier_refund",
    "find_duplicate_charges",
    "load_accounts",
]

ACCOUNTS = Path(__file__).parent / "data" / "accounts.json"
REFUNDS_FILE = "refunds.jsonl"
ACCOUNT_ID = re.compile(r"A-\d{4}")
ACCOUNT_ID_FORMAT = "account ids look like A-1001: 'A-' and four digits"


class BillingError(PermanentError):
    dead_letter_reason = "billing"


class UnknownAccount(BillingError):
    dead_letter_reason = "unknown_account"


class UnknownInvoice(BillingError):
    dead_letter_reason = "unknown_invoice"


RefusalReason = Literal["not_positive", "above_invoice", "not_paid", "already_refunded", "key_reused"]


class RefundRefused(BillingError):
    dead_letter_reason = "refund_refused"

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason: RefusalReason = reason


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Invoice(_Record):
    id: str
    amount_usd: float
    period: str  # "2026-11" for a month, "2026-03 to 2027-02" for a year
    charged_on: date
    # "refunded" is never in the sample file: lookups show it once a refund names the invoice.
    status: Literal["paid", "failed", "refunded"]
    refunded_usd: float = 0.0


class Subscription(_Record):
    plan: str
    price_usd: float
    status: Literal["active", "cancelled"]
    renews_on: date | None  # None: a cancelled subscription does not renew


class Refund(_Record):
    id: str
    account: str
    invoice_id: str
    amount_usd: float
    idempotency_key: str
    issued_at: datetime


class Account(_Record):
    customer: str
    subscription: Subscription
    invoices: tuple[Invoice, ...]


class _AccountsFile(_Record):
    about: str = ""
    accounts: dict[str, Account]


def load_accounts(path: Path = ACCOUNTS) -> dict[str, Account]:
    """The accounts of a sample file, by id; a file that does not fit fails naming itself."""
    try:
        loaded = _AccountsFile.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise ConfigError(f"{path}: not a billing accounts file: {exc}") from exc
    malformed = sorted(a for a in loaded.accounts if not ACCOUNT_ID.fullmatch(a))
    if malformed:
        raise ConfigError(f"{path}: account id {malformed[0]!r} does not fit ({ACCOUNT_ID_FORMAT})")
    return loaded.accounts


@dataclass(frozen=True)
class DuplicateCharge:
    original: Invoice
    duplicate: Invoice  # the later of the two: the one to refund


def find_duplicate_charges(invoices: Sequence[Invoice]) -> list[DuplicateCharge]:
    """Paid invoices for the same period and amount: every one after the first is a duplicate
    of the first. A failed payment and its retry, or a prorated charge beside the plan's, are not."""
    first: dict[tuple[str, int], Invoice] = {}
    found = []
    for invoice in sorted(invoices, key=lambda i: (i.charged_on, i.id)):
        if invoice.status != "paid":
            continue
        charge = (invoice.period, _cents(invoice.amount_usd))
        if charge in first:
            found.append(DuplicateCharge(first[charge], invoice))
        else:
            first[charge] = invoice
    return found


def earlier_refund(
    refunds: Sequence[Refund], key: str, account: str, invoice_id: str, amount_usd: float
) -> Refund | None:
    """The refund this idempotency key already made, if any. The same key with other arguments
    is refused: it is a caller's bug (two calls sharing a key), and answering with a refund of
    another invoice would hide it."""
    for refund in refunds:
        if refund.idempotency_key != key:
            continue
        same = (refund.account, refund.invoice_id, _cents(refund.amount_usd)) == (
            account,
            invoice_id,
            _cents(amount_usd),
        )
        if not same:
            raise RefundRefused(
                "key_reused",
                f"idempotency key {key!r} already refunded ${refund.amount_usd:.2f} of "
                f"{refund.account}/{refund.invoice_id} ({refund.id}); it cannot be reused for "
                f"${amount_usd:.2f} of {account}/{invoice_id}",
            )
        return refund
    return None


def check_refund(invoice: Invoice, amount_usd: float, refunds: Sequence[Refund]) -> None:
    """Raise :class:`RefundRefused` unless ``amount_usd`` may be refunded of ``invoice`` now."""
    if _cents(amount_usd) <= 0:
        raise RefundRefused("not_positive", f"a refund must be above $0.00, not ${amount_usd:.2f}")
    if _cents(amount_usd) > _cents(invoice.amount_usd):
        raise RefundRefused(
            "above_invoice",
            f"${amount_usd:.2f} is more than invoice {invoice.id}'s ${invoice.amount_usd:.2f}",
        )
    before = next((r for r in refunds if r.invoice_id == invoice.id), None)
    if before is not None:
        raise RefundRefused(
            "already_refunded",
            f"invoice {invoice.id} was already refunded (${before.amount_usd:.2f}, {before.id}, "
            f"idempotency key {before.idempotency_key!r})",
        )
    if invoice.status != "paid":
        raise RefundRefused("not_paid", f"invoice {invoice.id} is {invoice.status}: nothing was charged")


def _cents(amount_usd: float) -> int:
    # Money compared in whole cents: 49.0 and 48.999999 from JSON are the same refund.
    return round(amount_usd * 100)


def _refund_id(key: str) -> str:
    # Derived from the key, so two processes sharing the log can never mint the same id twice.
    return "R-" + sha256(key.encode()).hexdigest()[:10].upper()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SampleBillingSystem:
    """The stand-in billing system over the sample accounts; refunds go to
    ``<data_dir>/refunds.jsonl``.

    ``calls`` counts every :meth:`issue_refund` per idempotency key and ``executions`` the
    refunds this object really made per key, so a test can prove that no key ran twice.
    """

    def __init__(
        self,
        data_dir: Path,
        accounts: Path = ACCOUNTS,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.accounts = load_accounts(accounts)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.refunds_path = data_dir / REFUNDS_FILE
        self.calls: Counter[str] = Counter()
        self.executions: Counter[str] = Counter()
        self._clock = clock
        # The file lock in issue_refund serialises every writer of the log, threads and processes
        # alike; this one keeps the counters exact when a tool stage calls from worker threads.
        self._lock = threading.Lock()

    def lookup_invoices(self, account: str) -> list[Invoice]:
        """Every invoice of an account, oldest first; a refunded one shows as refunded."""
        refunded = {r.invoice_id: r.amount_usd for r in self.refunds() if r.account == account}
        return [
            i.model_copy(update={"status": "refunded", "refunded_usd": refunded[i.id]})
            if i.id in refunded
            else i
            for i in sorted(self._account(account).invoices, key=lambda i: (i.charged_on, i.id))
        ]

    def get_subscription(self, account: str) -> Subscription:
        """The account's subscription: plan, price, status and when it renews."""
        return self._account(account).subscription

    def issue_refund(self, account: str, invoice_id: str, amount_usd: float, idempotency_key: str) -> Refund:
        """Refund ``amount_usd`` of one invoice, at most once per idempotency key: a key seen
        before returns its refund and refunds nothing. Refuses an unknown account or invoice, an
        amount above the invoice, and a second refund of an invoice under another key."""
        invoice = self._invoice(account, invoice_id)
        with self._lock, self.refunds_path.open("a+") as log:
            self.calls[idempotency_key] += 1
            # 1. Lock the log, so the read, the decision and the append are one step.
            fcntl.flock(log, fcntl.LOCK_EX)
            # 2. Read every refund so far (another process may have added one since).
            log.seek(0)
            refunds = _parse_refunds(log, self.refunds_path)
            # 3. Decide without I/O: a replay of the key, a refusal, or a new refund.
            earlier = earlier_refund(refunds, idempotency_key, account, invoice_id, amount_usd)
            if earlier is not None:
                return earlier
            check_refund(invoice, amount_usd, refunds)
            refund = Refund(
                id=_refund_id(idempotency_key),
                account=account,
                invoice_id=invoice_id,
                amount_usd=round(amount_usd, 2),
                idempotency_key=idempotency_key,
                issued_at=self._clock(),
            )
            # 4. Append and flush before answering: a refund that was reported is on disk.
            log.write(refund.model_dump_json() + "\n")
            log.flush()
            self.executions[idempotency_key] += 1
            return refund

    def refunds(self) -> list[Refund]:
        """Every refund in the log, oldest first."""
        if not self.refunds_path.exists():
            return []
        with self.refunds_path.open() as log:
            fcntl.flock(log, fcntl.LOCK_SH)
            return _parse_refunds(log, self.refunds_path)

    def _account(self, account: str) -> Account:
        found = self.accounts.get(account)
        if found is None:
            raise UnknownAccount(f"no account {account!r} ({ACCOUNT_ID_FORMAT})")
        return found

    def _invoice(self, account: str, invoice_id: str) -> Invoice:
        invoices = self._account(account).invoices
        found = next((i for i in invoices if i.id == invoice_id), None)
        if found is None:
            known = ", ".join(i.id for i in invoices)
            raise UnknownInvoice(f"account {account} has no invoice {invoice_id!r} (it has {known})")
        return found


def _parse_refunds(log: IO[str], path: Path) -> list[Refund]:
    refunds = []
    for number, line in enumerate(log, start=1):
        if not line.strip():
            continue
        try:
            refunds.append(Refund.model_validate_json(line))
        except ValidationError as exc:
            raise BillingError(f"{path}:{number}: not a refund record: {exc}") from exc
    return refunds
