import pytest
from aiokafka.structs import ConsumerRecord

from streams.contracts.headers import RequestHeaders
from streams.errors import ConfigError
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
