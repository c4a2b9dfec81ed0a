"""How a worker's outputs reach its producer: a sender round as one produce batch per partition.

``producer.send()`` per record paid a coroutine, a serialisation check, the partitioner and a
future for every record (aiokafka's send path was a third of a stage's samples in py-spy).
:func:`produce_round` appends a round's outputs to one ``BatchBuilder`` per partition and hands
each over with ``send_batch``: one delivery future per batch, shared by its records.

Partitions are chosen as ``send()`` chooses them (the default partitioner: murmur2 of the key,
as Java's), so one key meets one partition whichever path sent it. The broker answers a batch
as a whole, so :func:`send_alone` is the slow path's send: one record in a batch of its own,
so that a refusal is about that record only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from streams.runtime.outcome import Output

__all__ = ["produce_round", "send_alone"]

_PARTITIONER = DefaultPartitioner()
_RECORD_FRAMING = 64  # a v2 record's varints, attributes and deltas, generously

TopicPartition = tuple[str, int]


async def produce_round(
    producer: AIOKafkaProducer, outputs: list[Output], limits: Mapping[str, int]
) -> list[asyncio.Future[Any]]:
    """Each output's delivery future (shared by the outputs of one batch); what the producer
    refuses fails the outputs of its batch, or the one output it could not take.

    ``limits``: each topic's ``max.message.bytes``. The broker measures a whole batch against it,
    so a topic's batch is cut before it would pass it (the producer's own batch size is larger).
    """
    deliveries: list[asyncio.Future[Any] | None] = [None] * len(outputs)
    open_batches: dict[TopicPartition, tuple[Any, list[int]]] = {}
    partitions: dict[str, list[int]] = {}
    for index, out in enumerate(outputs):
        try:
            tp = await _partition_of(producer, out, partitions)
            batch = open_batches.get(tp)
            if batch is not None and batch[0].size() + _size(out) > limits.get(out.topic, 0):
                await _send_batch(producer, tp, *open_batches.pop(tp), deliveries)
                batch = None
            if batch is None:
                batch = open_batches[tp] = (producer.create_batch(), [])
            if batch[0].append(timestamp=None, key=out.key, value=out.value, headers=out.headers) is None:
                # Full: it goes now, and a new one takes this output (a batch takes one record
                # of any size, so the second append cannot refuse it for size).
                await _send_batch(producer, tp, *open_batches.pop(tp), deliveries)
                batch = open_batches[tp] = (producer.create_batch(), [])
                batch[0].append(timestamp=None, key=out.key, value=out.value, headers=out.headers)
            batch[1].append(index)
        except Exception as exc:  # noqa: BLE001 (the output's: its delivery fails with it)
            deliveries[index] = _failed(exc)
    for tp, (builder, indices) in open_batches.items():
        await _send_batch(producer, tp, builder, indices, deliveries)
    assert all(d is not None for d in deliveries)
    return deliveries  # type: ignore[return-value]


def _size(out: Output) -> int:
    """An upper bound of what ``out`` adds to a batch: its bytes and the record's framing."""
    headers = sum(len(k) + len(v) + 10 for k, v in out.headers)
    return len(out.key or b"") + len(out.value or b"") + headers + _RECORD_FRAMING


async def send_alone(producer: AIOKafkaProducer, out: Output) -> None:
    """Send ``out`` in a produce batch of its own and wait for the broker's answer to it."""
    tp = await _partition_of(producer, out, {})
    builder = producer.create_batch()
    builder.append(timestamp=None, key=out.key, value=out.value, headers=out.headers)
    await (await producer.send_batch(builder, tp[0], partition=tp[1]))


async def _partition_of(
    producer: AIOKafkaProducer, out: Output, known: dict[str, list[int]]
) -> TopicPartition:
    if out.topic not in known:
        known[out.topic] = sorted(await producer.partitions_for(out.topic))
    every = known[out.topic]
    return out.topic, _PARTITIONER(out.key, every, every)


async def _send_batch(
    producer: AIOKafkaProducer,
    tp: TopicPartition,
    builder: Any,
    indices: list[int],
    deliveries: list[asyncio.Future[Any] | None],
) -> None:
    try:
        delivery: asyncio.Future[Any] = await producer.send_batch(builder, tp[0], partition=tp[1])
    except Exception as exc:  # noqa: BLE001 (the batch's records': each takes the slow path)
        delivery = _failed(exc)
    for index in indices:
        deliveries[index] = delivery


def _failed(exc: BaseException) -> asyncio.Future[Any]:
    failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    failed.set_exception(exc)
    return failed
