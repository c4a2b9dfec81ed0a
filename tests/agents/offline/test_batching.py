"""Micro-batching: concurrent calls become one batch call, in order, failures reach everyone."""

import asyncio

import pytest

from agents.offline.batching import Batcher


async def test_concurrent_calls_run_as_one_batch_in_order() -> None:
    seen: list[list[int]] = []

    def square(items: list[int]) -> list[int]:
        seen.append(items)
        return [i * i for i in items]

    batcher = Batcher(square)
    assert await asyncio.gather(*(batcher(i) for i in range(10))) == [i * i for i in range(10)]
    assert seen == [list(range(10))] and batcher.batches == 1
    assert await batcher(7) == 49  # a lone call does not wait for company
    assert batcher.batches == 2


async def test_batches_are_capped() -> None:
    sizes: list[int] = []

    def echo(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    batcher = Batcher(echo, max_batch=4)
    assert await asyncio.gather(*(batcher(i) for i in range(10))) == list(range(10))
    assert sizes == [4, 4, 2]


async def test_a_failing_batch_fails_every_caller_and_the_next_batch_runs() -> None:
    calls = 0

    def flaky(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("model exploded")
        return items

    batcher = Batcher(flaky)
    results = await asyncio.gather(batcher("a"), batcher("b"), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert await batcher("c") == "c"


async def test_a_wrong_number_of_results_is_an_error_not_a_mixup() -> None:
    batcher = Batcher(lambda items: items[:1])
    with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
        await asyncio.gather(batcher(1), batcher(2))
