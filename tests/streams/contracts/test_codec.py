import io
import json
import os
from pathlib import Path

import avro.io
import avro.schema
import httpx
import pytest

from streams.contracts.codec import ConfluentCodec, SingleObjectCodec
from streams.contracts.registry import SchemaRegistryClient
from streams.contracts.schemas import SchemaStore
from streams.errors import CodecError, UnknownSchema

NOTE = "podium.demo.Note"
REPO = Path(__file__).resolve().parents[3]


def test_round_trip_fills_defaults(schema_store: SchemaStore) -> None:
    codec = SingleObjectCodec(schema_store)
    data = codec.encode(NOTE, {"request_id": "r1", "text": "hello"})
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == schema_store.current(NOTE).fingerprint
    assert codec.decode(NOTE, data) == {
        "request_id": "r1",
        "text": "hello",
        "hops": [],
        "priority": 0,
    }


def test_official_avro_reads_it_with_the_avsc_file_alone(schema_store: SchemaStore) -> None:
    data = SingleObjectCodec(schema_store).encode(
        NOTE, {"request_id": "r", "text": "ü", "hops": ["a"], "priority": 3}
    )
    schema = avro.schema.parse((REPO / "schemas" / "note.avsc").read_text())
    assert data[2:10] == schema.fingerprint("CRC-64-AVRO")
    decoded = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    assert decoded == {"request_id": "r", "text": "ü", "hops": ["a"], "priority": 3}


def test_a_record_written_with_version_1_decodes_as_the_current_version(
    schema_store: SchemaStore,
) -> None:
    v1 = schema_store.history(NOTE)[0]
    import fastavro

    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + v1.fingerprint)
    fastavro.schemaless_writer(buf, v1.parsed, {"request_id": "old", "text": "t", "hops": ["x"]})
    decoded = SingleObjectCodec(schema_store).decode(NOTE, buf.getvalue())
    assert decoded == {"request_id": "old", "text": "t", "hops": ["x"], "priority": 0}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "single-object"),
        (os.urandom(64), "single-object"),
        (b"\xc3\x01" + b"\x00" * 8 + b"abc", "unknown writer schema fingerprint"),
    ],
)
def test_garbage_raises_one_typed_error(schema_store: SchemaStore, data: bytes, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        SingleObjectCodec(schema_store).decode(NOTE, data)


def test_truncated_and_padded_records_are_rejected(schema_store: SchemaStore) -> None:
    codec = SingleObjectCodec(schema_store)
    data = codec.encode(NOTE, {"request_id": "r", "text": "hello world"})
    with pytest.raises(CodecError, match="do not decode"):
        codec.decode(NOTE, data[:-4])
    with pytest.raises(CodecError, match="trailing bytes"):
        codec.decode(NOTE, data + b"\x00")


def test_a_valid_record_of_another_schema_is_a_mismatch(schema_store: SchemaStore) -> None:
    codec = SingleObjectCodec(schema_store)
    letter = {
        "stage": "s",
        "error_type": "e",
        "error_message": "m",
        "original_topic": "t",
        "original_partition": 0,
        "original_offset": 1,
        "original_timestamp_ms": 2,
        "attempts": 0,
        "dead_lettered_at_ms": 3,
    }
    with pytest.raises(
        CodecError, match=r"schema mismatch: expected podium\.demo\.Note, record is podium\.DeadLetter"
    ):
        codec.decode(NOTE, codec.encode("podium.DeadLetter", letter))


def test_missing_required_field_fails_at_encode(schema_store: SchemaStore) -> None:
    with pytest.raises(CodecError, match=r"podium\.demo\.Note"):
        SingleObjectCodec(schema_store).encode(NOTE, {"text": "no id"})


class FakeRegistry:
    """The registry's REST API as an httpx transport (the registry is not Kafka)."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if request.method == "POST" and request.url.path.startswith("/subjects/"):
            schema = json.loads(request.content)["schema"]
            for sid, known in self.schemas.items():
                if known == schema:
                    return httpx.Response(200, json={"id": sid})
            sid = len(self.schemas) + 100
            self.schemas[sid] = schema
            return httpx.Response(200, json={"id": sid})
        if request.method == "GET" and request.url.path.startswith("/schemas/ids/"):
            sid = int(request.url.path.rsplit("/", 1)[1])
            if sid not in self.schemas:
                return httpx.Response(404, json={"error_code": 40403, "message": "Schema not found"})
            return httpx.Response(200, json={"schema": self.schemas[sid]})
        return httpx.Response(404)


def test_confluent_framing_through_the_registry_api(schema_store: SchemaStore) -> None:
    fake = FakeRegistry()
    with SchemaRegistryClient("http://registry", transport=httpx.MockTransport(fake)) as client:
        codec = ConfluentCodec(schema_store, client)
        data = codec.encode(NOTE, {"request_id": "r", "text": "x"})
        assert data[0] == 0 and int.from_bytes(data[1:5], "big") == 100
        assert codec.decode(NOTE, data)["text"] == "x"
        codec.encode(NOTE, {"request_id": "r", "text": "y"})
        assert fake.calls == 1  # ids are cached
        # A reader that never saw id 100 fetches it from the registry once.
        fresh = ConfluentCodec(
            schema_store,
            SchemaRegistryClient("http://registry", transport=httpx.MockTransport(fake)),
        )
        assert fresh.decode(NOTE, data)["request_id"] == "r"
        with pytest.raises(UnknownSchema, match="404"):
            fresh.decode(NOTE, b"\x00" + (999).to_bytes(4, "big") + b"\x00")
