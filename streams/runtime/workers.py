"""What every worker is and shares: the :class:`Worker` contract, its Kafka clients, its
rebalance listener and how it stops.

Two workers run stages: :class:`~streams.runtime.StageWorker` (records in flight, commit
order in :mod:`streams.runtime.stage_worker`) and :class:`~streams.runtime.WindowWorker` (a windowed join,
commit order in :mod:`streams.runtime.window_join`). :func:`worker_for` picks one; the CLI and the
:class:`~streams.runtime.Stack` see only a :class:`Worker`. Both workers

- build their consumer and producer with :func:`kafka_clients` (one set of settings: ``acks=all``,
  idempotence, manual commits; what differs is a :class:`ClientSettings` field); :func:`start_clients`
  turns a broker that cannot be reached into a :class:`~streams.errors.PodiumError`;
- hear about rebalances through one :class:`Rebalance` listener, which stops the worker when its
  own handling of a rebalance fails (aiokafka would log the error and go on consuming);
- stop through one :class:`WorkerStop`: asked to, or at the first failure of a task that must
  not fail, which :meth:`Worker.run` raises once the worker has shut down, uncommitted past it.

All of that, and the lifecycle around it, is one base class, :class:`KafkaWorker`; a worker
supplies only what differs through its hooks (settings, topics, loop, rebalance, wind-down).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, NotRequired, Protocol, Self, TypedDict, TypeVar, Unpack

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from streams.errors import BrokerError, ConfigError, PodiumError
from streams.kafka.admin import check_copartitioned
from streams.kafka.connection import Cluster
from streams.runtime.access import stage_group
from streams.runtime.stage import Resource, Stage, StageEnv, close_resources, open_resources
from streams.telemetry.otel import Telemetry

if TYPE_CHECKING:
    from streams.contracts.catalog import Catalog
    from streams.contracts.codec import Codec
    from streams.runtime.window_join import WindowStage

__all__ = [
    "MAX_REQUEST_BYTES",
    "ClientSettings",
    "KafkaWorker",
    "Rebalance",
    "Worker",
    "WorkerArgs",
    "WorkerStop",
    "close_clients",
    "kafka_clients",
    "kafka_producer",
    "start_clients",
    "worker_for",
]

log = logging.getLogger("podium.workers")

MAX_REQUEST_BYTES = 16 * 1024 * 1024
_AIOKAFKA_FETCH_MAX_BYTES = 52_428_800  # aiokafka's own default
_NO_WEIGHTS: Mapping[str, float] = MappingProxyType({})

# What a cluster answers a principal that lacks an ACL: a missing grant, not a broker that is
# down, so it says what to apply instead of being retried.
_REFUSED = (TopicAuthorizationFailedError, GroupAuthorizationFailedError, ClusterAuthorizationFailedError)


class Worker(Protocol):
    """A running stage, as the CLI and the stack use it::

    worker = worker_for(stage, ...)
    await worker.start()          # resources opened, clients connected, subscribed
    task = asyncio.create_task(worker.run())
    ...
    worker.request_stop()         # e.g. on SIGTERM
    await task                    # drained, committed, closed; raises the worker's failure

    ``async with worker:`` starts it and, on leaving, stops and closes it without ``run``.
    """

    @property
    def name(self) -> str:
        """The stage's name."""
        ...

    async def start(self) -> None: ...

    async def run(self) -> None:
        """Consume until :meth:`request_stop` or a failure; then shut down (and raise the failure)."""
        ...

    def request_stop(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *_: object) -> None: ...


# -- the Kafka clients ------------------------------------------------------------------
@dataclass(frozen=True)
class ClientSettings:
    """What differs between the workers' clients; everything else is the same for both."""

    stage: str
    cluster: Cluster
    group: str
    assignor: type[Any]  # an aiokafka partition assignor class
    max_partition_fetch_bytes: int
    fetch_max_bytes: int = _AIOKAFKA_FETCH_MAX_BYTES
    # The producer's batch; None: aiokafka's 16 KB. A producer that fills batches with send()
    # must keep them under every topic's max.message.bytes (the broker refuses a whole batch).
    producer_batch_bytes: int | None = None


def kafka_clients(settings: ClientSettings) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
    """A worker's consumer and producer, not started (:func:`start_clients` starts them).

    Built before they start so that the worker holds them when the first rebalance arrives: the
    assignment may be handed over before ``consumer.start()`` returns.
    """
    consumer = settings.cluster.consumer(
        group_id=settings.group,
        client_id=f"podium-{settings.stage}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        fetch_max_bytes=settings.fetch_max_bytes,
        partition_assignment_strategy=(settings.assignor,),
    )
    return consumer, kafka_producer(settings)


def kafka_producer(settings: ClientSettings) -> AIOKafkaProducer:
    """A worker's producer, not started; also the one that replaces a producer gone bad."""
    batch = {} if settings.producer_batch_bytes is None else {"max_batch_size": settings.producer_batch_bytes}
    return settings.cluster.producer(
        **batch,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        # A stage output or a window snapshot may be this large.
        max_request_size=MAX_REQUEST_BYTES,
        client_id=f"podium-{settings.stage}",
    )


async def start_clients(
    settings: ClientSettings,
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    topics: Collection[str],
    listener: ConsumerRebalanceListener,
    *,
    copartitioned: bool,
) -> None:
    """Start the producer, subscribe the consumer to ``topics`` and start it.

    ``copartitioned``: the worker meets one key's records from several topics, so they must have
    the same partition count (a :class:`~streams.errors.ConfigError` otherwise). A broker that
    cannot be reached is a :class:`~streams.errors.PodiumError`; on any failure both clients are
    closed again.
    """
    try:
        await producer.start()
        if copartitioned:
            await check_copartitioned(producer, topics, settings.stage)
        consumer.subscribe(list(topics), listener=listener)
        await consumer.start()
    except _REFUSED as exc:
        await close_clients(consumer, producer)
        who = settings.cluster.security.sasl_username or "its principal"
        raise ConfigError(
            f"stage {settings.stage}: Kafka at {settings.cluster} refused {who} ({type(exc).__name__}): "
            f"make the stage's ACLs with `podium acls apply {settings.stage}` (or have the cluster's "
            "operator grant what `podium acls plan` lists)"
        ) from exc
    except KafkaError as exc:
        await close_clients(consumer, producer)
        raise PodiumError(f"stage {settings.stage}: cannot reach Kafka at {settings.cluster}: {exc}") from exc
    except BaseException:
        await close_clients(consumer, producer)
        raise


async def close_clients(consumer: AIOKafkaConsumer | None, producer: AIOKafkaProducer | None) -> None:
    """The consumer first (it leaves the group), then the producer (it flushes)."""
    try:
        if consumer is not None:
            await consumer.stop()
    finally:
        if producer is not None:
            await producer.stop()


# -- stopping ---------------------------------------------------------------------------
class WorkerStop:
    """When a worker stops and why: asked to, or the first failure of something it runs.

    The first failure is kept (later ones are its consequences) and raised by :meth:`raise_failure`
    after the worker shut down; ``on_request`` wakes whatever in the worker waits.
    """

    def __init__(self, stage: str, on_request: Callable[[], None] | None = None) -> None:
        self._stage = stage
        self._on_request = on_request
        self.requested = asyncio.Event()
        self.failure: BaseException | None = None

    def request(self) -> None:
        self.requested.set()
        if self._on_request is not None:
            self._on_request()

    def fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        self.request()

    def watch(self, task: asyncio.Task[Any]) -> None:
        """``task`` must never end on its own: if it does (not cancelled, not stopping), fail."""
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        if self.requested.is_set():
            return  # the worker cancels its tasks only after a stop was requested
        if task.cancelled():
            failure: BaseException = PodiumError(f"background task {task.get_name()} was cancelled")
        else:
            failure = task.exception() or PodiumError(f"background task {task.get_name()} ended")
        log.error("stage %s: %s ended: %r", self._stage, task.get_name(), failure)
        self.fail(failure)

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise PodiumError(f"stage {self._stage} failed: {self.failure}") from self.failure


# -- rebalances -------------------------------------------------------------------------
Partitions = set[TopicPartition]


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands revocations and assignments to the worker. When the worker's handling fails it
    stops, uncommitted past it: aiokafka would log the error and go on, and a worker must not
    consume partitions whose state it failed to restore nor keep working on ones it failed to
    release."""

    def __init__(
        self,
        stage: str,
        stop: WorkerStop,
        *,
        revoked: Callable[[Partitions], Awaitable[None]],
        assigned: Callable[[Partitions], Awaitable[None]],
    ) -> None:
        self._stage = stage
        self._stop = stop
        self._revoked = revoked
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: Partitions) -> None:
        await self._hand_over("releasing", self._revoked, revoked)

    async def on_partitions_assigned(self, assigned: Partitions) -> None:
        await self._hand_over("taking", self._assigned, assigned)

    async def _hand_over(
        self, what: str, handle: Callable[[Partitions], Awaitable[None]], partitions: Partitions
    ) -> None:
        try:
            await handle(partitions)
        except Exception as exc:
            log.exception(
                "stage %s: %s partitions %s failed", self._stage, what, sorted(map(str, partitions))
            )
            self._stop.fail(exc)


# -- the base of both workers ---------------------------------------------------------
class WorkerArgs(TypedDict):
    """What a worker is given besides its stage (:func:`worker_for` passes them on)."""

    cluster: Cluster
    catalog: Catalog
    codec: Codec
    # The stage's own consumer and producer reach Kafka as the stage's principal (least
    # privilege: the ACLs `podium acls apply` makes for it); ``cluster``, the process's
    # identity, is what its resources (a gateway's caches, telemetry) share. Unset: ``cluster``.
    as_stage: NotRequired[Cluster | None]
    telemetry: NotRequired[Telemetry | None]
    group_id: NotRequired[str | None]  # stage_group(<stage>) unless given


class _RunsStage(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def resources(self) -> tuple[Resource, ...]: ...


S = TypeVar("S", bound=_RunsStage)


class KafkaWorker(ABC, Generic[S]):
    """A :class:`Worker` over one consumer and one producer: the lifecycle both workers share.

    - :meth:`start` opens the stage's resources, builds the clients from :meth:`_client_settings`
      with a :class:`Rebalance` listener over :meth:`_revoked` and :meth:`_assigned`, subscribes
      :meth:`_topics` (checked :meth:`_copartitioned`) and starts them; then :meth:`_started`
      starts what runs beside the loop. If the clients cannot start, the resources are closed
      again and the error is raised.
    - :meth:`run` runs :meth:`_loop` until a stop is requested, shuts down (also when the loop
      raised) and raises the first failure the worker's :class:`WorkerStop` kept.
    - Shutting down, once: :meth:`_wind_down` (drain, commit, checkpoint: the worker's own commit
      order), then the clients close, then the resources. ``async with`` starts the worker and,
      on leaving, asks it to stop and shuts it down without ``run``.

    A request to stop calls :meth:`_stop_requested`, to wake whatever in the worker waits.
    """

    def __init__(self, stage: S, **clients: Unpack[WorkerArgs]) -> None:
        self.stage = stage
        self._cluster = clients["cluster"]
        self._stage_cluster = clients.get("as_stage") or self._cluster
        self._catalog = clients["catalog"]
        self._codec = clients["codec"]
        self._group = clients.get("group_id") or stage_group(stage.name)
        self._telemetry = clients.get("telemetry") or Telemetry.configure("none")
        self._tracer = self._telemetry.tracer("podium.streams")
        self._resources: list[Resource] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stop = WorkerStop(stage.name, on_request=self._stop_requested)

    @property
    def name(self) -> str:
        return self.stage.name

    async def start(self) -> None:
        env = StageEnv(self._cluster, self._catalog, self._codec, self._telemetry)
        self._resources = await open_resources(self.stage.resources, env)
        try:
            settings = self._client_settings()
            listener = Rebalance(self.stage.name, self._stop, revoked=self._revoked, assigned=self._assigned)
            self._consumer, self._producer = kafka_clients(settings)
            await start_clients(
                settings,
                self._consumer,
                self._producer,
                self._topics(),
                listener,
                copartitioned=self._copartitioned(),
            )
        except BaseException:
            self._consumer = self._producer = None  # closed by start_clients
            await self._close_resources()
            raise
        self._started()

    async def run(self) -> None:
        """Consume until :meth:`request_stop` or a failure; then shut down (and raise the failure)."""
        assert self._consumer is not None, "call start() first"
        try:
            await self._loop()
        except KafkaError as exc:
            # aiokafka's errors stop here: whoever runs a worker sees podium's tree only.
            raise BrokerError(f"stage {self.name}: Kafka failed the worker: {exc!r}") from exc
        finally:
            # A loop that failed stops the rest too: records waiting out a retry delay are given
            # up at once (redelivered), instead of holding the drain for its whole timeout.
            self._stop.request()
            await self._shutdown()
        self._stop.raise_failure()

    def request_stop(self) -> None:
        self._stop.request()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.request_stop()
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._consumer is None:
            return  # never started, or shut down already
        try:
            await self._wind_down()
        finally:
            try:
                await self._close_clients()
            finally:
                await self._close_resources()

    async def _close_clients(self) -> None:
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        await close_clients(consumer, producer)

    async def _close_resources(self) -> None:
        resources, self._resources = self._resources, []
        await close_resources(resources)

    # -- the hooks ------------------------------------------------------------------------
    @abstractmethod
    def _client_settings(self) -> ClientSettings:
        """The worker's clients: its assignor and fetch sizes."""

    @abstractmethod
    def _topics(self) -> Collection[str]:
        """What the consumer subscribes."""

    @abstractmethod
    def _copartitioned(self) -> bool:
        """Whether one key's records meet from several topics (see :func:`start_clients`)."""

    def _started(self) -> None:
        """The clients are up: start what runs beside the loop."""

    @abstractmethod
    async def _loop(self) -> None:
        """Consume until ``self._stop.requested`` is set."""

    @abstractmethod
    async def _revoked(self, revoked: Partitions) -> None: ...

    @abstractmethod
    async def _assigned(self, assigned: Partitions) -> None: ...

    @abstractmethod
    async def _wind_down(self) -> None:
        """Before the clients close: settle what the worker holds, by its own commit order."""

    def _stop_requested(self) -> None:
        """A stop was asked for: wake whatever waits."""


# -- which worker -----------------------------------------------------------------------
def worker_for(
    stage: Stage[Any] | WindowStage,
    *,
    cluster: Cluster,
    catalog: Catalog,
    codec: Codec,
    telemetry: Telemetry | None = None,
    group_id: str | None = None,
    as_stage: Cluster | None = None,
    max_in_flight: int | None = None,
    tenant_weights: Mapping[str, float] = _NO_WEIGHTS,
) -> Worker:
    """The worker that runs ``stage``: a :class:`~streams.runtime.StageWorker` for a
    :class:`~streams.runtime.Stage`, a :class:`~streams.runtime.WindowWorker` for a window stage.

    ``max_in_flight`` overrides a stage's in-flight limit; ``tenant_weights`` (the settings'
    ``PODIUM_TENANT_WEIGHTS``) go on top of its tenants' weights. A window stage folds its
    records in batches, one at a time, and has neither.
    """
    # Here, not at the top: both worker modules build on this one.
    from streams.runtime.stage_worker import StageWorker
    from streams.runtime.window_join import WindowWorker

    clients = WorkerArgs(
        cluster=cluster,
        as_stage=as_stage,
        catalog=catalog,
        codec=codec,
        telemetry=telemetry,
        group_id=group_id,
    )
    if isinstance(stage, Stage):
        if max_in_flight is not None:
            stage = replace(stage, max_in_flight=max_in_flight)
        if tenant_weights:
            try:
                stage = replace(stage, fairness=stage.fairness.with_weights(tenant_weights))
            except ValueError as exc:
                raise ConfigError(f"PODIUM_TENANT_WEIGHTS: {exc}") from exc
        return StageWorker(stage, **clients)
    return WindowWorker(stage, **clients)
