"""Stage declarations and shared resources, without Kafka."""

import asyncio

import pytest

from streams.runtime.stage import Emit, SharedResource, Stage, StageContext, StageEnv


class Counted(SharedResource):
    def __init__(self) -> None:
        super().__init__()
        self.opened = self.closed = 0

    async def _open(self, env: StageEnv) -> None:
        await asyncio.sleep(0.01)  # concurrent openers must still open it once
        self.opened += 1

    async def _close(self) -> None:
        self.closed += 1


async def test_a_shared_resource_is_opened_by_the_first_user_and_closed_by_the_last() -> None:
    resource = Counted()
    env = StageEnv("b", None, None, None)  # type: ignore[arg-type]
    await asyncio.gather(resource.open(env), resource.open(env))
    assert resource.opened == 1
    await resource.close()
    assert resource.closed == 0
    await resource.close()
    await resource.close()  # one close too many is harmless
    assert resource.closed == 1
    await resource.open(env)
    assert resource.opened == 2


async def handler(record: dict[str, object], ctx: StageContext) -> Emit:
    return Emit("out", record)


def test_a_stage_must_declare_where_it_produces() -> None:
    with pytest.raises(ValueError, match="at least one topic"):
        Stage("s", "in", (), handler)
    assert Stage("s", "in", ("out",), handler).answers_expired is False


def test_an_ordered_stage_needs_at_least_one_lane() -> None:
    with pytest.raises(ValueError, match="lanes must be at least 1"):
        Stage("s", "in", ("out",), handler, ordered_by_key=True, lanes=0)
    assert Stage("s", "in", ("out",), handler).lanes == 64
