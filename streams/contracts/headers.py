"""The headers podium carries on every record, and how bad ones are tolerated.

==========================  ===============================================================
``traceparent``             W3C trace context (``00-<trace>-<span>-<flags>``), one per record
``tracestate``              W3C vendor state, passed through
``podium-request-id``       Created once at ingress, forwarded unchanged; also the record key
``podium-deadline-ms``      Absolute deadline of the request's latency budget (epoch ms)
``podium-attempt``          Handler runs of this stage so far for this record
``podium-round``            Deliveries through the stage's retry topic so far
``podium-not-before-ms``    On retry topics: do not run before this time (epoch ms)
``podium-path``             Stages passed, comma separated
``podium-cost-usd``         What the request has cost so far (model calls of all stages passed)
``podium-tenant``           Who the request is for (set at ingress, forwarded unchanged): the
                            runtime shares a stage's in-flight slots between tenants by it
==========================  ===============================================================

Headers arrive from anywhere, so parsing never raises: a header that is not UTF-8, too long,
malformed or repeated is dropped (the first good value wins) and named in ``problems``; the
runtime replaces what it needs (a fresh request id, a new trace) and records the problems on the
span. Unknown headers are passed through to the next hop untouched.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_HEADER_VALUE_BYTES",
    "KafkaHeaders",
    "RequestHeaders",
    "header_value",
    "ingress_headers",
    "is_stage_name",
    "is_tenant",
    "new_request_id",
    "now_ms",
    "parse_headers",
    "request_id_from_key",
]

KafkaHeaders = list[tuple[str, bytes]]

MAX_HEADER_VALUE_BYTES = 4096
_MAX_PATH_STAGES = 64

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
REQUEST_ID = "podium-request-id"
DEADLINE = "podium-deadline-ms"
ATTEMPT = "podium-attempt"
ROUND = "podium-round"
NOT_BEFORE = "podium-not-before-ms"
PATH = "podium-path"
COST = "podium-cost-usd"
TENANT = "podium-tenant"
_OWN = {TRACEPARENT, TRACESTATE, REQUEST_ID, DEADLINE, ATTEMPT, ROUND, NOT_BEFORE, PATH, COST, TENANT}

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TENANT = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_STAGE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def request_id_from_key(key: bytes | None) -> str:
    """Keys are request ids by convention; an unusable key gets a fresh id."""
    if key and len(key) <= 128:
        try:
            text = key.decode("ascii")
        except UnicodeDecodeError:
            return new_request_id()
        if _REQUEST_ID.fullmatch(text):
            return text
    return new_request_id()


def is_stage_name(name: str) -> bool:
    """What ``podium-path`` accepts as a stage name."""
    return _STAGE.fullmatch(name) is not None


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RequestHeaders:
    request_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    deadline_ms: int | None = None
    attempt: int = 0
    round: int = 0
    not_before_ms: int | None = None
    path: tuple[str, ...] = ()
    cost_usd: float = 0.0
    tenant: str | None = None
    passthrough: tuple[tuple[str, bytes], ...] = ()
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def trace_id(self) -> str | None:
        return self.traceparent.split("-")[1] if self.traceparent else None

    def evolve(self, **changes: Any) -> RequestHeaders:
        """``dataclasses.replace`` for the hot path: every record takes two or three of these;
        replace costs about 5 us here (its generic __init__), this about 1 us."""
        new = object.__new__(RequestHeaders)
        unknown = changes.keys() - self.__dict__.keys()
        if unknown:
            raise TypeError(f"RequestHeaders has no field {sorted(unknown)[0]!r}")
        fields = new.__dict__
        fields.update(self.__dict__)
        fields.update(changes)
        return new

    def remaining_s(self, at_ms: int | None = None) -> float | None:
        """Seconds left in the latency budget; None when the request carries no deadline."""
        if self.deadline_ms is None:
            return None
        return (self.deadline_ms - (now_ms() if at_ms is None else at_ms)) / 1000.0

    def to_kafka(self) -> KafkaHeaders:
        out: KafkaHeaders = []
        if self.traceparent:
            out.append((TRACEPARENT, self.traceparent.encode()))
        if self.tracestate:
            out.append((TRACESTATE, self.tracestate.encode()))
        if self.request_id:
            out.append((REQUEST_ID, self.request_id.encode()))
        if self.deadline_ms is not None:
            out.append((DEADLINE, str(self.deadline_ms).encode()))
        out.append((ATTEMPT, str(self.attempt).encode()))
        if self.round:
            out.append((ROUND, str(self.round).encode()))
        if self.not_before_ms is not None:
            out.append((NOT_BEFORE, str(self.not_before_ms).encode()))
        if self.path:
            out.append((PATH, ",".join(self.path).encode()))
        if self.cost_usd:
            out.append((COST, f"{self.cost_usd:.10g}".encode()))
        if self.tenant:
            out.append((TENANT, self.tenant.encode()))
        out.extend(self.passthrough)
        return out

    def for_next_hop(
        self, stage: str, traceparent: str | None, tracestate: str | None, spent_usd: float = 0.0
    ) -> RequestHeaders:
        """What a stage's output carries: same request and deadline, fresh attempt counters,
        and the cost so far plus what this stage spent."""
        return self.evolve(
            cost_usd=self.cost_usd + spent_usd,
            traceparent=traceparent,
            tracestate=tracestate,
            attempt=0,
            round=0,
            not_before_ms=None,
            path=(*self.path, stage)[-_MAX_PATH_STAGES:],
            problems=(),
        )


def _int(value: str, name: str, problems: list[str], minimum: int = 0) -> int | None:
    try:
        number = int(value)
    except ValueError:
        problems.append(f"{name}: not an integer")
        return None
    if number < minimum or number > 2**62:
        problems.append(f"{name}: out of range")
        return None
    return number


def _cost(value: str | None, problems: list[str]) -> float:
    if value is None:
        return 0.0
    try:
        cost = float(value)
    except ValueError:
        cost = -1.0
    if not 0.0 <= cost < 1e9:  # also rejects nan and inf
        problems.append(f"{COST}: not a cost, reset to 0")
        return 0.0
    return cost


def parse_headers(raw: Iterable[tuple[str, bytes | None]] | None) -> RequestHeaders:
    problems: list[str] = []
    seen: dict[str, str] = {}
    passthrough: list[tuple[str, bytes]] = []
    for key, value in raw or ():
        if key not in _OWN:
            if value is not None and len(value) <= MAX_HEADER_VALUE_BYTES:
                passthrough.append((key, value))
            else:
                problems.append(f"{key[:40]}: dropped (empty or over {MAX_HEADER_VALUE_BYTES} bytes)")
            continue
        if value is None or len(value) > MAX_HEADER_VALUE_BYTES:
            problems.append(f"{key}: dropped (empty or over {MAX_HEADER_VALUE_BYTES} bytes)")
            continue
        try:
            text = value.decode("utf-8").strip()
        except UnicodeDecodeError:
            problems.append(f"{key}: dropped (not UTF-8)")
            continue
        if key in seen:
            problems.append(f"{key}: repeated, first value kept")
            continue
        seen[key] = text

    def checked(name: str, pattern: re.Pattern[str]) -> str | None:
        value = seen.get(name)
        if value is not None and not pattern.match(value):
            problems.append(f"{name}: malformed, replaced")
            return None
        return value

    traceparent = checked(TRACEPARENT, _TRACEPARENT)
    path_text = seen.get(PATH, "")
    path = tuple(p for p in path_text.split(",") if p)
    if any(not _STAGE.match(p) for p in path):
        problems.append(f"{PATH}: malformed, reset")
        path = ()

    def number(name: str) -> int | None:
        return _int(seen[name], name, problems) if name in seen else None

    # Built without the frozen dataclass's __init__ (a setattr per field, 3 us a record): the
    # same fields, every one given.
    parsed = object.__new__(RequestHeaders)
    parsed.__dict__.update(
        request_id=checked(REQUEST_ID, _REQUEST_ID),
        traceparent=traceparent,
        tracestate=seen.get(TRACESTATE) if traceparent else None,
        deadline_ms=number(DEADLINE),
        attempt=number(ATTEMPT) or 0,
        round=number(ROUND) or 0,
        not_before_ms=number(NOT_BEFORE),
        path=path[-_MAX_PATH_STAGES:],
        cost_usd=_cost(seen.get(COST), problems),
        tenant=checked(TENANT, _TENANT),
        passthrough=tuple(passthrough),
        problems=tuple(problems),
    )
    return parsed


def is_tenant(name: str) -> bool:
    """What ``podium-tenant`` accepts."""
    return _TENANT.fullmatch(name) is not None


def ingress_headers(
    request_id: str | None = None, budget_s: float | None = None, tenant: str | None = None
) -> RequestHeaders:
    """Headers of a brand-new request (the trace is added by telemetry when it is sent).

    A tenant that ``podium-tenant`` would not accept is left out, not sent malformed."""
    deadline = None if budget_s is None else now_ms() + int(budget_s * 1000)
    return RequestHeaders(
        request_id=request_id or new_request_id(),
        deadline_ms=deadline,
        tenant=tenant if tenant and is_tenant(tenant) else None,
    )


def header_value(headers: Sequence[tuple[str, bytes]], key: str) -> bytes | None:
    return next((v for k, v in headers if k == key), None)
