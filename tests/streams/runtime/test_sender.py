"""The sender's guarantee: a dead sender fails every record waiting for it at once."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.errors import PodiumError
from streams.runtime.sender import Sender, SenderStopped


class Crash(BaseException):
    """Ends a sender's task the way a bug would: not an error about one record."""


def sender_over(produce_one: Any, deaths: list[BaseException]) -> Sender[str]:
    """A sender whose rounds produce item by item: an item ``produce_one`` refuses with an
    Exception fails alone (as one partition's batch would), anything else ends the round."""

    async def produce(items: list[str]) -> list[asyncio.Future[Any]]:
        deliveries = []
        for item in items:
            try:
                deliveries.append(await produce_one(item))
            except Exception as exc:  # noqa: BLE001
                refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                refused.set_exception(exc)
                deliveries.append(refused)
        return deliveries

    return Sender(produce, name="test-send", on_death=deaths.append)


def send(sender: Sender[str], item: str) -> asyncio.Future[Any]:
    """Hand ``item`` over; the future is what its callback was told: the delivery's result or error."""
    told: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def tell(delivery: asyncio.Future[Any]) -> None:
        if delivery.cancelled():
            told.set_result("cancelled")
        elif (exc := delivery.exception()) is not None:
            told.set_exception(exc)
        else:
            told.set_result(delivery.result())

    sender.hand(item, tell)
    return told


async def acknowledged(item: str) -> asyncio.Future[Any]:
    acked: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    acked.set_result(item)
    return acked


async def test_a_sender_that_dies_fails_every_record_waiting_for_it_at_once() -> None:
    deaths: list[BaseException] = []

    async def produce(item: str) -> asyncio.Future[Any]:
        if item == "refused":
            raise ValueError("too large")  # one record's error: the sender goes on
        if item == "boom":
            raise Crash
        return await acknowledged(item)

    sender = sender_over(produce, deaths)
    sender.start()
    try:
        first_round = [send(sender, item) for item in ("a", "refused")]
        await asyncio.wait(first_round, timeout=1)
        assert first_round[0].result() == "a"
        assert isinstance(first_round[1].exception(), ValueError)  # its own: the sender goes on
        futures = [send(sender, item) for item in ("boom", "b", "c")]
        _, pending = await asyncio.wait(futures, timeout=1)
        assert not pending
        for waiting in futures:  # the round being sent when it died, and what waits behind it
            error = waiting.exception()
            assert isinstance(error, SenderStopped) and isinstance(error.__cause__, Crash)
        [death] = deaths
        assert isinstance(death, Crash)
        later = send(sender, "d")
        assert later.done() and isinstance(later.exception(), SenderStopped)
    finally:
        await sender.stop()


async def test_a_sender_cancelled_from_outside_fails_what_it_was_sending_and_says_so() -> None:
    deaths: list[BaseException] = []
    never = asyncio.Event()

    async def produce(item: str) -> asyncio.Future[Any]:
        await never.wait()
        return await acknowledged(item)

    sender = sender_over(produce, deaths)
    sender.start()
    try:
        futures = [send(sender, "a"), send(sender, "b")]
        await asyncio.sleep(0.01)  # "a" is inside produce()
        [task] = [t for t in asyncio.all_tasks() if t.get_name() == "test-send"]
        task.cancel()
        _, pending = await asyncio.wait(futures, timeout=1)
        assert not pending
        assert all(isinstance(f.exception(), SenderStopped) for f in futures)
        [death] = deaths
        assert isinstance(death, PodiumError) and "cancelled" in str(death)
    finally:
        await sender.stop()


async def test_a_stopped_sender_fails_what_is_left_but_is_no_death() -> None:
    deaths: list[BaseException] = []
    sender = sender_over(acknowledged, deaths)
    sender.start()
    assert await send(sender, "a") == "a"
    await sender.stop()
    assert isinstance(send(sender, "b").exception(), SenderStopped)
    assert deaths == []


async def test_a_send_the_producer_drops_is_told_to_its_record_and_the_sender_goes_on() -> None:
    """A cancelled delivery (what a producer does to a batch it abandons) reaches the record's
    callback like any answer (the worker gives the record up: redelivered); no death."""
    deaths: list[BaseException] = []

    async def produce(_item: str) -> asyncio.Future[Any]:
        dropped: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        dropped.cancel()
        return dropped

    sender = sender_over(produce, deaths)
    sender.start()
    try:
        assert await asyncio.wait_for(send(sender, "a"), 1) == "cancelled"
        assert await asyncio.wait_for(send(sender, "b"), 1) == "cancelled"
        assert deaths == []
    finally:
        await sender.stop()
