"""Which offset is safe to commit, per partition, while many records are in flight.

Records of a partition are started in offset order and finish in any order. The committed
position (the next offset to read after a restart) may only move past a record once that
record is *finished*: its result, retry record or dead-letter record is acknowledged by Kafka.
So the safe position is the oldest unfinished offset, or one past the newest finished offset
when nothing is in flight. This is the guard that faust's concurrency path lacks
(faust-streaming #606).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["OffsetTracker", "PartitionKey"]

PartitionKey = tuple[str, int]


@dataclass
class _Partition:
    started: deque[int] = field(default_factory=deque)
    finished: set[int] = field(default_factory=set)
    # Given up without an outcome (partition revoked, worker stopping): no longer running, but
    # the position never moves past them, so they are read again.
    abandoned: set[int] = field(default_factory=set)
    position: int | None = None  # next offset to read; None until something finished
    committed: int | None = None

    def running(self) -> int:
        return len(self.started) - len(self.finished) - len(self.abandoned)

    def advance(self) -> None:
        while self.started and self.started[0] in self.finished:
            offset = self.started.popleft()
            self.finished.discard(offset)
            self.position = offset + 1


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[PartitionKey, _Partition] = {}

    def started(self, tp: PartitionKey, offset: int) -> bool:
        """Track a record. False when the partition restarted below what was in flight.

        That happens only when the consumer re-reads from an earlier position (a seek, a
        truncated log): the old entries are dropped; their records arrive again.
        """
        part = self._partitions.setdefault(tp, _Partition())
        fresh = not part.started or offset > part.started[-1]
        if not fresh:
            part = self._partitions[tp] = _Partition(committed=part.committed)
        part.started.append(offset)
        return fresh

    def finished(self, tp: PartitionKey, offset: int) -> None:
        part = self._partitions.get(tp)
        if part is None or not part.started or offset < part.started[0]:
            # The partition was revoked and forgotten while this record ran: its next owner
            # reads it again from the committed position (a duplicate, never a loss).
            return
        part.finished.add(offset)
        part.advance()

    def abandoned(self, tp: PartitionKey, offset: int) -> None:
        part = self._partitions.get(tp)
        if part is not None:
            part.abandoned.add(offset)

    def in_flight(self, tp: PartitionKey | None = None) -> int:
        if tp is not None:
            part = self._partitions.get(tp)
            return part.running() if part else 0
        return sum(p.running() for p in self._partitions.values())

    def oldest_unsettled(self, tp: PartitionKey) -> int | None:
        """The next offset that still needs work here (None before anything was read)."""
        part = self._partitions.get(tp)
        if part is None:
            return None
        return part.started[0] if part.started else part.position

    def to_commit(self) -> dict[PartitionKey, int]:
        """Positions that moved since the last :meth:`committed` call."""
        return {
            tp: part.position
            for tp, part in self._partitions.items()
            if part.position is not None and part.position != part.committed
        }

    def committed(self, positions: dict[PartitionKey, int]) -> None:
        for tp, position in positions.items():
            if tp in self._partitions:
                self._partitions[tp].committed = position

    def forget(self, tps: list[PartitionKey]) -> None:
        """After a revocation: the partition's next owner starts from the committed position."""
        for tp in tps:
            self._partitions.pop(tp, None)
