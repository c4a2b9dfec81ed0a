"""PODIUM_EVENT_LOOP: uvloop when the `fast` extra installed it, asyncio's loop when asked, and a
clear refusal when uvloop is demanded but missing."""

from __future__ import annotations

import asyncio
import gc
import sys

import pytest

from streams.errors import ConfigError
from streams.runtime import tune_worker_process


@pytest.fixture
def restored() -> object:
    policy = asyncio.get_event_loop_policy()
    threshold = gc.get_threshold()
    yield None
    asyncio.set_event_loop_policy(policy)
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_auto_takes_uvloop_when_it_is_installed_and_asyncio_stays_asyncio(restored: object) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert tune_worker_process("asyncio") == "asyncio"
    assert not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
    assert tune_worker_process("auto") == "uvloop"
    assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)


def test_uvloop_demanded_but_missing_says_what_to_install(
    restored: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert tune_worker_process("auto") == "asyncio"
    with pytest.raises(ConfigError, match=r"podium\[fast\]"):
        tune_worker_process("uvloop")


async def test_inside_a_running_loop_the_loop_is_left_as_it_is(restored: object) -> None:
    policy = asyncio.get_event_loop_policy()
    assert tune_worker_process("auto") == "asyncio"  # pytest-asyncio's loop is asyncio's
    assert asyncio.get_event_loop_policy() is policy
