"""One deadline watcher per worker: a passed deadline cancels its record's task and reads as a
timeout; a cancellation from elsewhere stays a cancellation; released deadlines never fire."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from streams.runtime.deadlines import Deadlines


async def handler_under(deadlines: Deadlines, timeout_s: float, work: asyncio.Future[None]) -> str:
    watch = deadlines.watch(timeout_s)
    try:
        await work
        return "done"
    except asyncio.CancelledError:
        if watch.expired():
            return "timed out"
        raise
    finally:
        deadlines.release(watch)


async def test_a_deadline_that_passes_cancels_its_task_and_reads_as_a_timeout() -> None:
    deadlines = Deadlines()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(handler_under(deadlines, 0.02, never))
    assert await task == "timed out"
    assert task.cancelling() == 0  # taken back: the task may go on awaiting
    assert len(deadlines) == 0


async def test_records_that_finish_in_time_are_never_cancelled_and_later_deadlines_still_fire() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    quick = [loop.create_future() for _ in range(3000)]
    tasks = [asyncio.create_task(handler_under(deadlines, 0.05, f)) for f in quick]
    patient = asyncio.create_task(handler_under(deadlines, 60.0, loop.create_future()))
    await asyncio.sleep(0)
    for f in quick:
        f.set_result(None)
    assert set(await asyncio.gather(*tasks)) == {"done"}
    assert len(deadlines) == 1
    await asyncio.sleep(0.1)  # the quick ones' deadlines pass: they cancel nothing
    assert not patient.done()
    assert len(deadlines._heap) == 1  # what was released is gone once its time passed
    late = asyncio.create_task(handler_under(deadlines, 0.01, loop.create_future()))
    assert await late == "timed out"  # the timer is armed again after all of that
    patient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await patient


async def test_an_earlier_deadline_after_a_later_one_fires_first() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    late = asyncio.create_task(handler_under(deadlines, 5.0, loop.create_future()))
    await asyncio.sleep(0)
    early = asyncio.create_task(handler_under(deadlines, 0.02, loop.create_future()))
    assert await asyncio.wait_for(early, 30) == "timed out"
    assert not late.done()
    late.cancel()
    with pytest.raises(asyncio.CancelledError):
        await late


async def test_a_cancellation_from_elsewhere_is_not_taken_for_a_timeout() -> None:
    deadlines = Deadlines()
    task = asyncio.create_task(handler_under(deadlines, 10.0, asyncio.get_running_loop().create_future()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(deadlines) == 0


async def test_a_timeout_and_a_stop_at_once_is_a_stop() -> None:
    """The worker stopping while the deadline passes: the stop wins, as under asyncio.timeout."""
    deadlines = Deadlines()
    task = asyncio.create_task(handler_under(deadlines, 0.0, asyncio.get_running_loop().create_future()))
    await asyncio.sleep(0)  # the task is waiting, its deadline already due
    deadlines._fire()  # the deadline cancels it (as its timer would) ...
    task.cancel()  # ... and the worker too, before the task runs again
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(deadlines) == 0


async def test_a_handler_that_swallows_the_cancellation_leaves_its_task_uncancelled() -> None:
    deadlines = Deadlines()

    async def stubborn() -> int:
        watch = deadlines.watch(0.01)
        try:
            # The handler's own choice; the deadline's cancellation must not linger after it.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(1)
            return asyncio.current_task().cancelling()  # type: ignore[union-attr]
        finally:
            deadlines.release(watch)

    task = asyncio.create_task(stubborn())
    await task
    assert task.cancelling() == 0
