"""What the stage worker keeps of a record from its start to its settle, and of a batch."""

from __future__ import annotations

from aiokafka import ConsumerRecord
from opentelemetry import trace

from streams.contracts.headers import RequestHeaders
from streams.runtime.fairness import Ticket
from streams.runtime.outcome import Output

__all__ = ["Batch", "Read", "Settling"]

# A record read ahead and its size as the read-ahead counts it.
Read = tuple[ConsumerRecord[bytes, bytes], int]


class Batch:
    """Records started together: their duration is recorded once, when the last one settles."""

    __slots__ = ("left", "outcomes", "started")

    def __init__(self, started: float) -> None:
        self.started = started
        self.left = 0
        self.outcomes: dict[str, int] = {}


class Settling:
    """One record from its start to its settle (step 6 or given up), which happens once."""

    __slots__ = (
        "batch",
        "generation",
        "headers",
        "outcome",
        "outputs",
        "record",
        "redelivering",
        "settled",
        "span",
        "ticket",
        "unacked",
    )

    def __init__(self, ticket: Ticket[Read], record: ConsumerRecord[bytes, bytes], batch: Batch) -> None:
        self.ticket = ticket
        self.record = record
        self.batch = batch
        self.headers: RequestHeaders | None = None
        self.span: trace.Span | None = None
        self.outputs: list[Output] = []
        self.outcome = "abandoned"
        self.unacked = 0  # outputs sent and not yet acknowledged
        self.settled = False
        self.redelivering = False  # a send failed: the slow path owns the record now
        self.generation = 0  # of the producer its outputs were handed to
