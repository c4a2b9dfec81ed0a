"""Step 5's slow path: the records of a produce batch the producer or the broker refused.

A refused batch's records are sent again one at a time, each output in a batch of its own
(:func:`~streams.runtime.batches.send_alone`), so that the broker's answer is about that record:
retried with backoff when it is retriable, dead-lettered (``output_rejected``) when the broker
refuses it alone. After a refusal for good the producer is replaced: aiokafka's idempotent
producer gives a batch its sequence numbers when it sends it and keeps them when the broker
refuses the batch, so every later batch of that partition would come back
``OutOfOrderSequenceNumber`` (Java's producer resets its sequences; aiokafka does not). What the
producer caused, not the record, is retried, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, OutOfOrderSequenceNumber, ProducerClosed

from streams.errors import BrokerError
from streams.runtime.batches import send_alone
from streams.runtime.outcome import Output

__all__ = ["PRODUCE_GIVE_UP_S", "Abandon", "Redelivery"]

log = logging.getLogger("podium.runtime")

PRODUCE_GIVE_UP_S = 120.0

# A produce that failed because of the producer, not the record: it goes again, never to the DLQ.
_NOT_ITS_FAULT = (OutOfOrderSequenceNumber, ProducerClosed)


class Abandon(Exception):
    """The worker is stopping: leave the record unfinished so it is redelivered."""


class Redelivery:
    """The slow path of one worker, and the producer generation its records were sent with.

    ``producer``/``replace``: the worker's current producer and how to swap it; ``make``: a new
    producer, not started; ``stopping``: whether the worker stops; ``sleep``: the worker's (it
    raises :class:`Abandon` once the worker stops).
    """

    def __init__(
        self,
        stage: str,
        *,
        producer: Callable[[], AIOKafkaProducer | None],
        replace: Callable[[AIOKafkaProducer], None],
        make: Callable[[], AIOKafkaProducer],
        stopping: Callable[[], bool],
        sleep: Callable[[float], Awaitable[None]],
        dlq_topic: str,
    ) -> None:
        self._stage = stage
        self._producer = producer
        self._replace = replace
        self._make = make
        self._stopping = stopping
        self._sleep = sleep
        self._dlq_topic = dlq_topic
        self.generation = 0  # how often the producer was replaced
        self._renewing = asyncio.Lock()
        self._alone = asyncio.Lock()  # one record at a time
        self._retiring: set[asyncio.Task[None]] = set()

    async def deliver(
        self,
        outputs: list[Output],
        error: BaseException,
        generation: int,
        dead_letter: Callable[[BaseException], Output],
    ) -> bool:
        """Send ``outputs`` again after ``error`` (the answer to a batch shared with other
        records, sent with producer ``generation``): returns once the broker acknowledged every
        one, True when they were replaced by ``dead_letter`` (the broker refused one alone)."""
        backoff = 0.1
        give_up = time.monotonic() + PRODUCE_GIVE_UP_S
        dead_lettered = False
        alone = False  # whether ``error`` answered this record's outputs on their own
        while True:
            if not isinstance(error, KafkaError):
                raise error  # not the broker's answer: a bug, stop uncommitted
            retriable = isinstance(error, (KafkaTimeoutError, *_NOT_ITS_FAULT)) or getattr(
                error, "retriable", False
            )
            if not retriable or isinstance(error, OutOfOrderSequenceNumber):
                await self._renew(generation)
            if retriable:
                if time.monotonic() > give_up:
                    # Stop uncommitted; a supervisor restarts the worker, the record replays.
                    raise BrokerError(f"produce failing for {PRODUCE_GIVE_UP_S:.0f}s: {error!r}") from error
                log.warning("stage %s: produce failed (%s), retrying", self._stage, error)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            elif not alone:
                pass  # a refused batch may be another record's fault: this one's go alone first
            elif outputs and outputs[0].topic == self._dlq_topic:
                raise error  # the dead-letter record itself is refused: stop, uncommitted
            else:
                # The broker refused an output (too large, invalid): the input goes to the DLQ.
                dead_lettered = True
                outputs = [dead_letter(error)]
            generation = self.generation
            try:
                await self._send_alone(outputs)
                return dead_lettered
            except _NOT_ITS_FAULT as exc:
                error = exc  # another record spoiled that producer, or it was replaced meanwhile
            except KafkaError as exc:
                error, alone = exc, True

    async def close(self) -> None:
        """Wait for the replaced producers to be closed."""
        await asyncio.gather(*self._retiring, return_exceptions=True)

    async def _send_alone(self, outputs: list[Output]) -> None:
        """Each output in a batch of its own, one record at a time, in order: hundreds of
        concurrent ``send_batch`` calls to a partition all wake at each drain, and aiokafka's
        wait for room times them out early."""
        async with self._alone:
            for out in outputs:
                producer = self._producer()
                if self._stopping() or producer is None:
                    raise Abandon
                await send_alone(producer, out)

    async def _renew(self, generation: int) -> None:
        """Replace the producer the refusal came from (``generation``): once, whoever asks."""
        async with self._renewing:
            if generation != self.generation:
                return
            spoiled = self._producer()
            if self._stopping() or spoiled is None:
                raise Abandon  # stopping: the clients are closing, the record is redelivered
            producer = self._make()
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._replace(producer)
            self.generation += 1
        log.warning("stage %s: the broker refused a produce batch; the producer is replaced", self._stage)
        closing = asyncio.create_task(_retire(spoiled))
        self._retiring.add(closing)
        closing.add_done_callback(self._retiring.discard)


async def _retire(spoiled: AIOKafkaProducer) -> None:
    """Stop a replaced producer, then fail what it still holds: aiokafka's ``stop()`` flushes
    only the batches it holds when it begins, and a batch handed over while it flushes would
    wait for an acknowledgement forever. Failed, their records take the slow path again."""
    try:
        await spoiled.stop()
    finally:
        # No public way to fail what is left; the accumulator's own fail_all is what aiokafka's
        # sender calls when it dies.
        spoiled._message_accumulator.fail_all(ProducerClosed())
