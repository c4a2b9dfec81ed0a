"""Request-reply over Kafka: wait for the record a request ends as, by request id.

A :class:`ReplyRouter` reads every partition of a pipeline's terminal topics from the moment it
starts (no consumer group, so each replica of an HTTP gateway reads them all) and hands each
record to whoever waits for its request id. Nobody else's reply can reach a caller: a waiter is
keyed by the request id its own publish returned. Replies nobody waits for (a request sent
through another replica, or one whose caller gave up) are kept in a bounded recent-replies map,
so ``GET /v1/requests/{id}`` answers on any replica.

Register before publishing (:meth:`expect`), then publish, then :meth:`wait`: a reply cannot
slip in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from typing import Self

from streams.kafka.connection import Cluster
from streams.kafka.follow import Arrival, Follower

__all__ = ["ReplyRouter", "StreamRouter"]

log = logging.getLogger(__name__)


class _Router:
    """Follows topics from the moment it starts (no group: every replica reads every partition)
    and hands each poll's records, by request id, to :meth:`_deliver`."""

    name = "router"

    def __init__(self, cluster: Cluster, topics: list[str]) -> None:
        self._follower = Follower(cluster, topics)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self._follower.__aenter__()
        self._task = asyncio.create_task(self._route(), name=self.name)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._follower.__aexit__(None, None, None)

    @property
    def healthy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _route(self) -> None:
        while True:
            try:
                batch = await self._follower.poll(0.5)
            except Exception:  # the follower reconnects by itself; keep routing
                log.exception("%s: poll failed", self.name)
                await asyncio.sleep(0.5)
                continue
            self._deliver(batch)

    def _deliver(self, batch: dict[str, list[Arrival]]) -> None:
        raise NotImplementedError


class ReplyRouter(_Router):
    name = "reply-router"

    def __init__(self, cluster: Cluster, topics: list[str], keep: int = 10_000) -> None:
        super().__init__(cluster, topics)
        self._keep = keep
        self._waiting: dict[str, asyncio.Future[Arrival]] = {}
        self._recent: OrderedDict[str, Arrival] = OrderedDict()
        # Published here, to tell pending from unknown, with the tenant it was published for.
        self._sent: OrderedDict[str, str | None] = OrderedDict()

    async def __aexit__(self, *_: object) -> None:
        await super().__aexit__()
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()

    def expect(self, request_id: str, tenant: str | None = None) -> None:
        """Call before publishing the request, so its reply cannot arrive unnoticed."""
        self._sent[request_id] = tenant
        self._sent.move_to_end(request_id)
        while len(self._sent) > self._keep:
            self._sent.popitem(last=False)
        if request_id not in self._waiting:
            self._waiting[request_id] = asyncio.get_running_loop().create_future()

    def forget(self, request_id: str) -> None:
        """The request was not published after all."""
        self._sent.pop(request_id, None)
        future = self._waiting.pop(request_id, None)
        if future is not None and not future.done():
            future.cancel()

    def pending(self, request_id: str) -> bool:
        """Published through this router and not answered yet."""
        return request_id in self._sent and request_id not in self._recent

    def tenant(self, request_id: str) -> str | None:
        """The tenant a request published through this router was published for."""
        return self._sent.get(request_id)

    def recent(self, request_id: str) -> Arrival | None:
        return self._recent.get(request_id)

    async def wait(self, request_id: str, timeout_s: float) -> Arrival | None:
        """The reply, or None when it did not come within ``timeout_s`` (or the request was never
        :meth:`expect`-ed here). A reply that comes later is still kept for :meth:`recent`."""
        if (done := self._recent.get(request_id)) is not None:
            return done
        future = self._waiting.get(request_id)
        if future is None:
            return None  # not expected here: only replies that already arrived are known
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            # Stop holding a waiter; a late reply still lands in the recent replies.
            self._waiting.pop(request_id, None)
            return None

    def _deliver(self, batch: dict[str, list[Arrival]]) -> None:
        for request_id, arrivals in batch.items():
            self._recent[request_id] = arrivals[0]
            self._recent.move_to_end(request_id)
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
            future = self._waiting.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result(arrivals[0])


class StreamRouter(_Router):
    """Every record of the given topics, per request id, to whoever subscribed to that id
    (token chunks for a server-sent-events relay). Subscribe before publishing."""

    name = "stream-router"

    def __init__(self, cluster: Cluster, topics: list[str]) -> None:
        super().__init__(cluster, topics)
        self._queues: dict[str, asyncio.Queue[Arrival]] = {}

    def subscribe(self, request_id: str) -> asyncio.Queue[Arrival]:
        return self._queues.setdefault(request_id, asyncio.Queue())

    def unsubscribe(self, request_id: str) -> None:
        self._queues.pop(request_id, None)

    def _deliver(self, batch: dict[str, list[Arrival]]) -> None:
        for request_id, arrivals in batch.items():
            queue = self._queues.get(request_id)
            if queue is not None:
                for arrival in arrivals:
                    queue.put_nowait(arrival)
