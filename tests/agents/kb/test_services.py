"""The embed stage's micro-batching, without Kafka or a model: the texts of every record that asks
in one turn of the loop go out together, in calls of at most max_batch, each record charged its
share; a failure reaches every record of the batch and a cancelled record is skipped."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agents.gateway.attempt import Attempt
from agents.gateway.gateway import EmbeddingResult
from agents.gateway.policy import Route
from agents.gateway.pricing import Usage
from agents.gateway.providers.protocol import Embeddings
from agents.kb.services import EmbedBatcher
from streams import TransientError


def _fake(calls: list[list[str]], fail: Exception | None = None, wait: asyncio.Event | None = None) -> object:
    async def embed(texts: list[str]) -> EmbeddingResult:
        calls.append(texts)
        await asyncio.sleep(0)
        if wait is not None:
            await wait.wait()
        if fail is not None:
            raise fail
        vectors = np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)
        attempt = Attempt("p", "m", "ok", 0.0, Usage(), cost_usd=0.01 * len(texts))
        return EmbeddingResult(Embeddings(vectors, "m", 2, Usage(), "p", 0.0), Route("p", "m"), (attempt,))

    return embed


async def test_records_in_flight_share_calls_of_at_most_max_batch_and_pay_their_share() -> None:
    calls: list[list[str]] = []
    batcher = EmbedBatcher(_fake(calls), max_batch=4)  # type: ignore[arg-type]
    asked = [["a", "bb"], ["ccc"], ["dddd", "e", "ff"], ["g"]]
    results = await asyncio.gather(*(batcher(texts) for texts in asked))
    assert [len(c) for c in calls] == [4, 3] and batcher.calls == 2
    for texts, result in zip(asked, results, strict=True):
        assert result.vectors[:, 0].tolist() == [float(len(t)) for t in texts]
        assert (result.provider, result.model, result.dimensions) == ("p", "m", 2)
    total = sum(r.cost_usd for r in results)
    assert total == pytest.approx(0.07)
    assert results[2].cost_usd == pytest.approx(0.07 * 7 / 14)  # 7 of the 14 characters
    await batcher.close()


async def test_a_failed_call_fails_every_record_of_its_batch_and_a_cancelled_one_is_skipped() -> None:
    calls: list[list[str]] = []
    batcher = EmbedBatcher(_fake(calls, TransientError("provider down")), max_batch=8)  # type: ignore[arg-type]
    results = await asyncio.gather(batcher(["a"]), batcher(["b"]), return_exceptions=True)
    assert all(isinstance(r, TransientError) for r in results)

    ok = EmbedBatcher(_fake(calls := []), max_batch=8)  # type: ignore[arg-type]
    gone = asyncio.ensure_future(ok(["never"]))
    kept = asyncio.ensure_future(ok(["kept"]))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    assert (await kept).vectors.shape == (1, 2)
    assert calls == [["kept"]]
    await ok.close()
    await batcher.close()


async def test_records_that_ask_while_a_call_is_out_go_out_together_after_it() -> None:
    calls: list[list[str]] = []
    slow = asyncio.Event()
    batcher = EmbedBatcher(_fake(calls, wait=slow), max_batch=64)  # type: ignore[arg-type]
    first = asyncio.ensure_future(batcher(["first"]))
    await asyncio.sleep(0.01)  # its call is out
    later = []
    for i in range(5):  # on different turns of the loop
        later.append(asyncio.ensure_future(batcher([f"later {i}"])))
        await asyncio.sleep(0.005)
    assert calls == [["first"]]
    slow.set()
    await asyncio.gather(first, *later)
    assert calls == [["first"], [f"later {i}" for i in range(5)]]
    assert (await batcher([])).vectors.shape == (0, 0) and batcher.calls == 2
    await batcher.close()
