"""One deadline watcher per worker instead of an ``asyncio.timeout`` per record.

Every ``asyncio.timeout`` schedules a timer on the event loop and cancels it again: with
thousands of records a second that was 8% of a stage's CPU (issue 15's py-spy profile). A
:class:`Deadlines` keeps one heap of the records' deadlines and one loop timer, armed for the
earliest; a deadline that passes cancels its record's task, and :meth:`Watch.expired` turns that
cancellation into the ``TimeoutError`` the caller expects, exactly as ``asyncio.timeout`` does
(``Task.uncancel``: a cancellation from elsewhere stays a cancellation).

A stage's handler timeout is one number, so deadlines mostly arrive in order and a new one is
only pushed, never re-arms the timer. Settled records leave their entries behind (no search on
the hot path); the heap is rebuilt from the live entries once the dead ones outnumber them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

__all__ = ["Deadlines", "Watch"]

_COMPACT_AT = 1024  # dead entries tolerated before a rebuild is considered


class Watch:
    """One record's deadline: ``async with``-free, released by :meth:`Deadlines.release`."""

    __slots__ = ("at", "cancelling", "fired", "task")

    def __init__(self, task: asyncio.Task[object] | None, at: float) -> None:
        self.task = task  # None once released
        self.at = at
        self.fired = False
        self.cancelling = task.cancelling() if task is not None else 0

    def expired(self) -> bool:
        """Whether the CancelledError being handled is this deadline's: its cancellation is
        taken back, and True unless the task was also cancelled from elsewhere."""
        if not self.fired or self.task is None:
            return False
        self.fired = False  # taken back once
        return self.task.uncancel() <= self.cancelling


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()  # ties: never compare two Watch objects
        self._live = 0
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = float("inf")

    def watch(self, timeout_s: float) -> Watch:
        """Cancel the current task if it is still watched ``timeout_s`` from now."""
        loop = asyncio.get_running_loop()
        at = loop.time() + timeout_s
        entry = Watch(asyncio.current_task(), at)
        heapq.heappush(self._heap, (at, next(self._order), entry))
        self._live += 1
        if at < self._armed_at:
            self._arm(loop, at)
        return entry

    def release(self, entry: Watch) -> None:
        """The record left its handler: its deadline no longer applies. A deadline that fired
        while its task swallowed the cancellation takes it back, as ``asyncio.timeout`` would."""
        if entry.task is None:
            return
        if entry.fired:
            entry.task.uncancel()
        entry.task = None
        self._live -= 1
        dead = len(self._heap) - self._live
        if dead > _COMPACT_AT and dead > 2 * self._live:
            self._heap = [item for item in self._heap if item[2].task is not None]
            heapq.heapify(self._heap)

    def __len__(self) -> int:
        return self._live

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_at = at
        self._timer = loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer, self._armed_at = None, float("inf")
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = self._heap
        while heap and (heap[0][2].task is None or heap[0][0] <= now):
            _, _, entry = heapq.heappop(heap)
            task = entry.task
            if task is None:
                continue
            if task.done():
                # Its task ended without releasing it (a bug upstream): forget it.
                entry.task = None
                self._live -= 1
                continue
            entry.fired = True
            task.cancel()
            # Still live (the task releases it when the cancellation reaches its handler), but
            # no longer in the heap.
        if heap:
            self._arm(loop, heap[0][0])
