"""How a stage is declared: what it consumes, where it may produce, its handler and policies.

::

    class Note(TypedDict):  # mirrors schemas/note.avsc
        request_id: str
        text: str
        hops: list[str]
        priority: int

    async def stamp(note: Note, ctx: StageContext) -> Emit:
        return Emit("demo.stamped", {**note, "hops": [*note["hops"], ctx.stage]})

    STAMP = Stage(name="stamp", consumes="demo.notes", produces=("demo.stamped",), handler=stamp)

A handler returns one :class:`Emit` or several (fan-out, routing). Returning nothing is an
error: every record must end somewhere (its next topic, a retry topic or the DLQ).

A record with no value (a tombstone: a deletion on a compacted topic) is dead-lettered unless
the stage declares ``on_tombstone``, a handler of the record's key that returns what the
deletion becomes, with the same timeout, retries and outcomes as the value's handler::

    async def forget(key: str, ctx: StageContext) -> Emit:
        return Emit("kb.chunks", {"document_id": key, "deleted": True, "chunks": []}, key=key)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from streams.contracts.headers import RequestHeaders, now_ms
from streams.kafka.connection import Cluster
from streams.runtime.fairness import Fairness
from streams.runtime.retry import RetryPolicy

if TYPE_CHECKING:
    from streams.contracts.catalog import Catalog
    from streams.contracts.codec import Codec
    from streams.telemetry.otel import Telemetry

__all__ = [
    "Emit",
    "Handler",
    "Record",
    "Resource",
    "SharedResource",
    "Stage",
    "StageContext",
    "StageEnv",
    "TombstoneHandler",
    "close_resources",
    "open_resources",
]

Record = dict[str, Any]


@dataclass(frozen=True)
class Emit:
    """One output record: the topic (one of the stage's ``produces``) and its value.

    The key is the request id unless ``key`` names another, e.g. a symbol, so that records of
    one key meet in one partition of a topic that is joined with another.
    """

    topic: str
    value: Record
    key: str | None = None


@dataclass(frozen=True)
class StageContext:
    stage: str
    topic: str
    partition: int
    offset: int
    headers: RequestHeaders
    attempt: int  # 1 on the first run of this record by this stage
    timestamp_ms: int = 0  # when the consumed record was written (the producer's clock)
    _spent: list[float] = field(default_factory=list, compare=False, repr=False)

    def add_cost(self, usd: float) -> None:
        """Charge a model call to this request; the sum travels on in ``podium-cost-usd``."""
        if usd < 0:
            raise ValueError("a cost cannot be negative")
        self._spent.append(usd)

    @property
    def spent_usd(self) -> float:
        return sum(self._spent)

    @property
    def cost_so_far_usd(self) -> float:
        """What earlier stages and this one have spent on the request."""
        return self.headers.cost_usd + self.spent_usd

    @property
    def request_id(self) -> str:
        assert self.headers.request_id is not None  # the runtime always sets one
        return self.headers.request_id

    def remaining_s(self) -> float | None:
        """Seconds left in the request's latency budget (None: the request has no deadline)."""
        return self.headers.remaining_s(now_ms())


@dataclass(frozen=True)
class StageEnv:
    """What a worker hands the resources of its stage when it starts."""

    cluster: Cluster
    catalog: Catalog
    codec: Codec
    telemetry: Telemetry


class Resource(Protocol):
    """Something a stage's handler needs open (models, a gateway, a cache): opened by the worker
    before it consumes, closed after its last record settled."""

    async def open(self, env: StageEnv) -> None: ...

    async def close(self) -> None: ...


class SharedResource:
    """A resource several stages of one process share: the first worker to start opens it,
    the last to stop closes it. Subclasses implement ``_open`` and ``_close``."""

    def __init__(self) -> None:
        self._users = 0
        self._lock = asyncio.Lock()

    async def open(self, env: StageEnv) -> None:
        async with self._lock:
            if self._users == 0:
                await self._open(env)
            self._users += 1

    async def close(self) -> None:
        async with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0:
                await self._close()

    async def _open(self, env: StageEnv) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError


async def open_resources(resources: Sequence[Resource], env: StageEnv) -> list[Resource]:
    """Open a stage's resources in order; when one fails, the ones already opened are closed
    before the error goes on. The caller closes the returned ones with :func:`close_resources`."""
    opened: list[Resource] = []
    try:
        for resource in resources:
            await resource.open(env)
            opened.append(resource)
    except BaseException:
        await close_resources(opened)
        raise
    return opened


async def close_resources(opened: Sequence[Resource]) -> None:
    for resource in reversed(opened):
        await resource.close()


# The input type is the decoded Avro record of the consumed topic: a dict at run time, best
# described by a TypedDict that mirrors the .avsc (see agents.passthrough.Note).
In = TypeVar("In")
Handler = Callable[[In, StageContext], Awaitable[Emit | Sequence[Emit]]]
# What a tombstone becomes: called with the record's key (UTF-8) instead of a decoded value.
TombstoneHandler = Callable[[str, StageContext], Awaitable[Emit | Sequence[Emit]]]


@dataclass(frozen=True)
class Stage(Generic[In]):
    name: str
    consumes: str
    produces: tuple[str, ...]
    handler: Handler[In]
    max_in_flight: int = 256
    # Records with the same key run one after another (one lane per key hash).
    ordered_by_key: bool = False
    # How many lanes (keys at once) an ordered stage runs, at most max_in_flight: a handler that
    # waits long, such as an agent's model turn, needs many to keep max_in_flight busy.
    lanes: int = 64
    handler_timeout_s: float = 30.0
    max_value_bytes: int = 1024 * 1024
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # False: a record whose latency budget is spent goes to the DLQ unhandled. True: the handler
    # still runs (bounded by handler_timeout_s) because it answers late requests itself, e.g.
    # with a degraded response, so the caller never waits for silence.
    answers_expired: bool = False
    resources: tuple[Resource, ...] = ()
    # More topics to read besides ``consumes``, each decoded with its own schema (a join reads
    # the dead letters of the branches it waits for). Their records are retried in process
    # only: a failure that would go to a retry topic goes to ``<consumes>.dlq`` instead.
    also_consumes: tuple[str, ...] = ()
    # A record with no value (a deletion on a compacted topic): None dead-letters it as
    # undecodable; a handler receives its key and returns what the deletion becomes.
    on_tombstone: TombstoneHandler | None = None
    # How the in-flight slots are shared between tenants (podium-tenant) and how far the worker
    # reads ahead of them; Fairness(by_tenant=False) starts records in the order read.
    fairness: Fairness = field(default_factory=Fairness)

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ValueError(f"stage {self.name}: max_in_flight must be at least 1")
        if not self.produces:
            raise ValueError(f"stage {self.name}: declare at least one topic it produces to")
        if self.lanes < 1:
            raise ValueError(f"stage {self.name}: lanes must be at least 1")
        if self.handler_timeout_s <= 0:
            raise ValueError(f"stage {self.name}: handler_timeout_s must be positive")
