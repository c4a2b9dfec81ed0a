"""Which fetched record a stage starts next, so that one tenant's flood cannot starve the others.

A stage worker reads records ahead of its in-flight slots into a :class:`FairScheduler`, one
queue per tenant (the ``podium-tenant`` header; no header is the tenant ``""``). Each time a slot
is free the worker asks :meth:`FairScheduler.take` what to start:

- the slots are shared by weight: the tenant with the fewest records *running* per unit of
  weight goes first (ties: the tenant served least recently), so two busy tenants of weight 3
  and 1 hold 3/4 and 1/4 of the slots, and a tenant that arrives with one record gets the next
  free slot however long the other's backlog is. The resource shared is a slot for as long as a
  record holds it, not a count of records started: a tenant whose handlers run ten times longer
  does not get ten times the slot time (which round robin over records would give it);
- a tenant's records start in the order they were read;
- with lanes (``ordered_by_key``: a lane is a key): at most one record of a lane runs at a time
  and a lane's records start in the order they were read, whatever their tenants, so per-key
  order holds. Only the first waiting record of an idle lane can start; other keys overtake it.

:class:`ReadAhead` bounds what is read but not started (records and bytes) and says which
partitions to pause so that the consumer stops fetching while the buffer is full. A flood is
overtaken only as far as it was read ahead: records behind an unread backlog wait.

Both are pure decisions, no I/O and no clock; the worker in :mod:`streams.runtime.stage_worker`
holds one of each and keeps the commit order (records are tracked when they are read, so the
committed position never passes a record waiting here).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import count
from types import MappingProxyType
from typing import Generic, TypeVar

from streams.contracts.headers import MAX_HEADER_VALUE_BYTES, TENANT, is_tenant

__all__ = ["FairScheduler", "Fairness", "ReadAhead", "Ticket", "tenant_of"]

T = TypeVar("T")
P = TypeVar("P", bound=Hashable)


@dataclass(frozen=True)
class Fairness:
    """How a stage shares its in-flight slots between tenants, and how far it reads ahead.

    ``Stage(..., fairness=Fairness(weights={"umbrella": 3}))``: the tenant ``umbrella`` gets three
    slots for every one of any other busy tenant (``default_weight``). ``by_tenant=False`` puts
    every record in one queue, started in the order read (FIFO, podium before fairness).
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    default_weight: float = 1.0
    by_tenant: bool = True
    # Read but not started, on top of the in-flight records. Only what was read can be
    # overtaken: large enough to hold a flood of small records, bounded in bytes for big ones.
    read_ahead_records: int = 10_000
    read_ahead_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for tenant, weight in {**self.weights, "(default_weight)": self.default_weight}.items():
            if not 0 < weight < float("inf"):  # also refuses nan
                raise ValueError(f"fairness: the weight of {tenant} must be positive, not {weight}")
        for tenant in self.weights:
            if not is_tenant(tenant):
                raise ValueError(
                    f"fairness: '{tenant}' is not a tenant podium-tenant can carry "
                    "(1-128 of letters, digits and . _ : @ -), so its weight would never apply"
                )
        if self.read_ahead_records < 1 or self.read_ahead_bytes < 1:
            raise ValueError("fairness: read_ahead_records and read_ahead_bytes must be at least 1")
        # A copy the caller cannot change after the stage was declared.
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))

    def __hash__(self) -> int:  # a stage stays hashable with its weights
        return hash((tuple(sorted(self.weights.items())), self.default_weight, self.by_tenant))

    def with_weights(self, weights: Mapping[str, float]) -> Fairness:
        """These weights on top of the stage's own (the settings' PODIUM_TENANT_WEIGHTS)."""
        return replace(self, weights={**self.weights, **weights})

    def weight(self, tenant: str) -> float:
        return self.weights.get(tenant, self.default_weight)


@dataclass(eq=False, slots=True)
class Ticket(Generic[T]):
    """One record waiting in (or started by) a :class:`FairScheduler`."""

    item: T
    tenant: str
    lane: Hashable | None
    seq: int


@dataclass
class _Lane(Generic[T]):
    # Not started, in the order read; when the lane is idle, waiting[0] is its ready head.
    waiting: deque[Ticket[T]] = field(default_factory=deque)
    running: bool = False


class FairScheduler(Generic[T]):
    """Per-tenant queues of records read ahead; :meth:`take` says which one starts next."""

    def __init__(self, weight: Callable[[str], float]) -> None:
        self._weight = weight
        self._ready: dict[str, deque[Ticket[T]]] = {}  # startable now, per tenant, in read order
        self._lanes: dict[Hashable, _Lane[T]] = {}
        self._running: dict[str, int] = {}
        self._served: dict[str, int] = {}  # when each tenant last got a slot (a take count)
        self._takes = 0
        self._seq = count()
        self._waiting = 0

    def __len__(self) -> int:
        """Records waiting (read, not started)."""
        return self._waiting

    def running(self, tenant: str) -> int:
        return self._running.get(tenant, 0)

    def add(self, item: T, tenant: str, lane: Hashable | None = None) -> None:
        """A record was read; ``lane``: records of one lane run one at a time, in this order."""
        ticket = Ticket(item, tenant, lane, next(self._seq))
        self._waiting += 1
        if lane is None:
            self._ready.setdefault(tenant, deque()).append(ticket)
            return
        state = self._lanes.setdefault(lane, _Lane())
        state.waiting.append(ticket)
        if not state.running and len(state.waiting) == 1:
            self._ready.setdefault(tenant, deque()).append(ticket)

    def take(self) -> Ticket[T] | None:
        """The record to start in the slot that is free, or None when none can start."""
        if not self._ready:
            return None
        best: str | None = None
        if len(self._ready) == 1:  # the common case, one tenant waiting: nothing to weigh
            [best] = self._ready
        else:
            best_key = (0.0, 0)
            for tenant in self._ready:
                key = (self._running.get(tenant, 0) / self._weight(tenant), self._served.get(tenant, -1))
                if best is None or key < best_key:
                    best, best_key = tenant, key
        assert best is not None
        queue = self._ready[best]
        ticket = queue.popleft()
        if not queue:
            del self._ready[best]
        if ticket.lane is not None:
            state = self._lanes[ticket.lane]
            assert state.waiting[0] is ticket and not state.running
            state.waiting.popleft()
            state.running = True
        self._waiting -= 1
        self._running[best] = self._running.get(best, 0) + 1
        self._served[best] = self._takes
        self._takes += 1
        return ticket

    def settled(self, ticket: Ticket[T]) -> None:
        """A started record is done (finished or given up): its slot and its lane are free."""
        left = self._running[ticket.tenant] - 1
        if left:
            self._running[ticket.tenant] = left
        else:
            del self._running[ticket.tenant]
            if ticket.tenant not in self._ready:
                # Nothing of it here any more: forget it, so that tenants come and go unbounded.
                self._served.pop(ticket.tenant, None)
        if ticket.lane is not None:
            state = self._lanes[ticket.lane]
            state.running = False
            if state.waiting:
                head = state.waiting[0]
                self._ready.setdefault(head.tenant, deque()).append(head)
            else:
                del self._lanes[ticket.lane]

    def drop(self, gone: Callable[[T], bool]) -> list[T]:
        """Remove the waiting records for which ``gone`` holds (a revoked partition's), in read order."""
        dropped: list[Ticket[T]] = []
        unlaned: list[Ticket[T]] = []
        for queue in self._ready.values():
            for ticket in queue:
                if ticket.lane is None:
                    (dropped if gone(ticket.item) else unlaned).append(ticket)
        heads: list[Ticket[T]] = []
        for lane, state in list(self._lanes.items()):
            kept = deque(t for t in state.waiting if not gone(t.item))
            dropped += [t for t in state.waiting if gone(t.item)]
            state.waiting = kept
            if not kept and not state.running:
                del self._lanes[lane]
            elif kept and not state.running:
                heads.append(kept[0])
        self._ready = {}
        for ticket in sorted(unlaned + heads, key=lambda t: t.seq):
            self._ready.setdefault(ticket.tenant, deque()).append(ticket)
        for tenant in list(self._served):
            if tenant not in self._ready and tenant not in self._running:
                del self._served[tenant]
        self._waiting -= len(dropped)
        return [t.item for t in sorted(dropped, key=lambda t: t.seq)]


class ReadAhead(Generic[P]):
    """What is read but not started, per partition, and which partitions to pause.

    Below the bounds (records, bytes) every partition is read. At a bound, the partitions that
    hold more than their share (the bound / the partitions assigned) are paused, so that a flood
    on some partitions does not stop a quiet one from being read (the retry topic's, another
    tenant's). At twice a bound all are paused whatever they hold. A
    paused partition is read again once the total is back to 3/4 of the bounds, so that fetches
    stay batches rather than one record each. One fetch may carry the total past a bound (the
    check is before the fetch); aiokafka's own buffer adds at most one fetch response per
    partition that is not paused.
    """

    def __init__(self, records: int, bytes_: int) -> None:
        self._records = records
        self._bytes = bytes_
        self._held: dict[P, list[int]] = {}  # partition -> [records, bytes]

    @property
    def records(self) -> int:
        return sum(r for r, _ in self._held.values())

    def held(self, partition: P) -> tuple[int, int]:
        records, size = self._held.get(partition, (0, 0))
        return records, size

    def read(self, partition: P, size: int) -> None:
        held = self._held.get(partition)
        if held is None:
            self._held[partition] = [1, size]
        else:
            held[0] += 1
            held[1] += size

    def started(self, partition: P, size: int) -> None:
        """Also for a record dropped unstarted. (An empty partition keeps its entry until
        :meth:`forget`: one per assigned partition, not one per record.)"""
        held = self._held[partition]
        held[0] -= 1
        held[1] -= size

    def forget(self, partitions: Iterable[P] | None = None) -> None:
        """After a revocation (None: every partition, on stop)."""
        if partitions is None:
            self._held.clear()
        for partition in partitions or ():
            self._held.pop(partition, None)

    def room(self) -> int:
        """Records one fetch may bring: up to the bound, then (from the partitions left unpaused)
        batches of an eighth of it, up to twice the bound; at least 1."""
        held = self.records
        if held < self._records:
            return self._records - held
        return max(1, min(self._records // 8, 2 * self._records - held))

    def pace(self, assigned: Collection[P], paused: Collection[P]) -> tuple[set[P], set[P]]:
        """(to pause, to resume) among ``assigned``, given those ``paused`` now."""
        if not assigned:
            return set(), set()
        total_records = self.records
        total_bytes = sum(b for _, b in self._held.values())
        kept = set(paused) & set(assigned)
        if total_records >= 2 * self._records or total_bytes >= 2 * self._bytes:
            wanted = set(assigned)
        elif total_records >= self._records or total_bytes >= self._bytes:
            share_records = max(1, self._records // len(assigned))
            share_bytes = max(1, self._bytes // len(assigned))
            heavy = {
                p
                for p in assigned
                if (held := self._held.get(p)) is not None
                and (held[0] >= share_records or held[1] >= share_bytes)
            }
            wanted = heavy | kept  # never empty: at a bound, some partition holds its share
        elif total_records > self._records * 3 // 4 or total_bytes > self._bytes * 3 // 4:
            wanted = kept  # between 3/4 and full nothing changes: fetches stay batches
        else:
            wanted = set()
        return wanted - kept, kept - wanted


_TENANT_NAMES: dict[bytes, str | None] = {}  # header value -> its tenant (None: not one)
_MAX_TENANT_NAMES = 4096


def tenant_of(headers: Iterable[tuple[str, bytes | None]] | None) -> str:
    """A record's tenant as :func:`~streams.contracts.headers.parse_headers` reads it (the first
    ``podium-tenant``; a malformed one is no tenant, ``""``), without parsing the other headers:
    this runs for every record read, before its slot, so the values seen are remembered."""
    for key, value in headers or ():
        if key != TENANT or value is None:
            continue
        if value in _TENANT_NAMES:
            name = _TENANT_NAMES[value]
        else:
            name = _tenant_name(value)
            if len(_TENANT_NAMES) >= _MAX_TENANT_NAMES:
                _TENANT_NAMES.clear()  # a stream of made-up tenants must not grow it without end
            _TENANT_NAMES[value] = name
        if name is not None:
            return name
    return ""


def _tenant_name(value: bytes) -> str | None:
    """The tenant a ``podium-tenant`` value names: None when parse_headers drops it (and reads
    a later one), ``""`` when it is malformed (parse_headers stops there: no tenant)."""
    if len(value) > MAX_HEADER_VALUE_BYTES:
        return None
    try:
        text = value.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return text if is_tenant(text) else ""
