import pytest
from aiokafka.structs import ConsumerRecord

from streams.contracts.headers import RequestHeaders
from streams.errors import ConfigError
from streams.kafka.connection import Cluster
from streams.kafka.reading import Position, Selection, parse_position

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_positions_are_offsets_ages_or_times() -> None:
    assert parse_position("1200") == Position(offset=1200)
    assert parse_position("1795626000000") == Position(timestamp_ms=1_795_626_000_000)
    assert parse_position("15m", at_ms=1_000_000) == Position(timestamp_ms=100_000)
    assert parse_position("2026-11-25T17:00:00Z") == Position(timestamp_ms=1_795_626_000_000)
    with pytest.raises(ConfigError, match="use an offset"):
        parse_position("yesterday")


def record(headers: RequestHeaders, key: bytes | None = None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", 0, 0, 0, 0, key, b"", None, 0, 0, headers.to_kafka())


def test_selection_by_request_or_trace_id() -> None:
    with_ids = record(RequestHeaders(request_id="r1", traceparent=TP))
    assert Selection("t").matches(with_ids)
    assert Selection("t", request_id="r1").matches(with_ids)
    assert not Selection("t", request_id="r2").matches(with_ids)
    assert Selection("t", trace_id="4bf92f3577b34da6a3ce929d0e0e4736").matches(with_ids)
    assert not Selection("t", trace_id="0" * 31 + "1").matches(with_ids)
    # Without the header, the key is the request id.
    assert Selection("t", request_id="k9").matches(record(RequestHeaders(), key=b"k9"))


async def test_a_groups_lag_is_what_it_has_not_committed(cluster: Cluster, make_topics, unique: str) -> None:  # type: ignore[no-untyped-def]
    from aiokafka import TopicPartition

    from streams.kafka import TopicReader

    await make_topics("topics:\n  {p}.lagged:\n    value: podium.demo.Note\n    partitions: 2\n", unique)
    topic, group = f"{unique}.lagged", f"{unique}-group"
    producer = cluster.producer()
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, b"x", key=b"k", partition=i % 2)
    finally:
        await producer.stop()
    async with TopicReader(cluster) as reader:
        assert await reader.lag(group, topic) == 5  # never committed: the whole topic is ahead
        consumer = cluster.consumer(group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            await consumer.commit({TopicPartition(topic, 0): 2})  # partition 0 holds 3: one left
        finally:
            await consumer.stop()
        assert await reader.lag(group, topic) == 1 + 2


async def test_a_compacted_topic_keeps_its_tombstones_as_long_as_the_catalog_says(
    cluster: Cluster,
    make_topics,  # type: ignore[no-untyped-def]
    unique: str,
) -> None:
    from streams.kafka import TopicAdmin

    catalog = await make_topics(
        "topics:\n  {p}.docs:\n    value: podium.demo.Note\n    cleanup: compact\n"
        "    tombstone_retention: 30d\n",
        unique,
    )
    async with TopicAdmin(cluster) as admin:
        have = (await admin.existing([f"{unique}.docs"]))[f"{unique}.docs"]
        assert have.configs["delete.retention.ms"] == str(30 * 86_400_000)
        assert await admin.apply(catalog) == []  # applied once: nothing left to change
