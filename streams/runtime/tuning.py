"""Process-wide settings of a worker process: the cyclic collector and the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc

from streams.errors import ConfigError

__all__ = ["tune_worker_process"]


def tune_worker_process(event_loop: str = "auto") -> str:
    """Process-wide settings for a worker, called by ``podium run`` (and the benchmarks) before
    its event loop starts; returns the event loop chosen (``uvloop`` or ``asyncio``). Inside a
    running loop it tunes the collector only and names the loop that runs.

    A worker keeps hundreds of records in flight, each with a task, frames and buffers: with
    CPython's default thresholds the cyclic collector scans them constantly (bench/stage_cpu.py:
    111 -> 96 us per record with this tuning). Start-up objects are frozen out of the scans and
    young collections run less often. ``event_loop`` (``PODIUM_EVENT_LOOP``): uvloop, libuv's
    loop, where the ``podium[fast]`` extra installed it (``auto``); bench/stage_throughput.py
    measures the stage on both (within 10-20% of each other either way on this machine).
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    with contextlib.suppress(RuntimeError):
        # Called inside a running loop, the loop is already chosen: a policy changed now would
        # only confuse it (on 3.11 asyncio's subprocesses look their child watcher up there).
        running = asyncio.get_running_loop()
        return "uvloop" if type(running).__module__.startswith("uvloop") else "asyncio"
    if event_loop == "asyncio":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        if event_loop == "uvloop":
            raise ConfigError(
                "PODIUM_EVENT_LOOP=uvloop, but uvloop is not installed: pip install 'podium[fast]'"
            ) from None
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
