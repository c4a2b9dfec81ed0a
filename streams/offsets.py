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
    position: int | None = None  # next offset to read; None until something finished
    committed: int | None = None

    def advance(self) -> None:
        while self.started and self.started[0] in self.finished:
            offset = self.started.popleft()
            self.finished.discard(offset)
            self.position = offset + 1


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[PartitionKey, _Partition] = {}

    def started(self, tp: PartitionKey, offset: int) -> None:
        part = self._partitions.setdefault(tp, _Partition())
        if part.started and offset <= part.started[-1]:
            raise ValueError(f"{tp}: offset {offset} started out of order")
        part.started.append(offset)

    def finished(self, tp: PartitionKey, offset: int) -> None:
        part = self._partitions.get(tp)
        if part is None or not part.started or offset < part.started[0]:
            # The partition was revoked and forgotten while this record ran: its next owner
            # reads it again from the committed position (a duplicate, never a loss).
            return
        part.finished.add(offset)
        part.advance()

    def in_flight(self, tp: PartitionKey | None = None) -> int:
        if tp is not None:
            part = self._partitions.get(tp)
            return len(part.started) if part else 0
        return sum(len(p.started) for p in self._partitions.values())

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
