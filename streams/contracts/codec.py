"""Avro values on Kafka: single-object encoding by default, Confluent framing optionally.

Single-object encoding (Avro spec): ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint
of the writer schema's canonical form + the binary datum. Any Avro library decodes it with the
``.avsc`` file alone; no registry server is needed.

Confluent wire format: ``00`` + 4-byte big-endian schema id + the binary datum; the id is
resolved through a schema registry (:mod:`streams.contracts.registry`).

Decoding always resolves the writer schema to the *current* reader schema of the record type
the topic carries, and rejects a record of another type. Every failure is a
:class:`~streams.errors.CodecError`, which the runtime turns into a dead-letter record; a record
that cannot be encoded is an :class:`~streams.errors.UnencodableRecord` naming the field.

``encode(..., strict=True)`` also refuses what fastavro would write changed without a word (an
int beyond 32 bits, 5.5 for an int, 3 for a boolean): for records that come from outside podium.
"""

from __future__ import annotations

import io
from typing import Any, Protocol

import fastavro

from streams.contracts.encodable import find_unencodable
from streams.contracts.schemas import SchemaStore, SchemaVersion
from streams.errors import CodecError, SchemaError, UnencodableRecord, UnknownSchema

__all__ = ["CONFLUENT_MAGIC", "SINGLE_OBJECT_MAGIC", "Codec", "ConfluentCodec", "SingleObjectCodec"]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"

Record = dict[str, Any]


class Codec(Protocol):
    def encode(self, schema_name: str, record: Record, *, strict: bool = False) -> bytes: ...

    def decode(self, schema_name: str, data: bytes) -> Record: ...

    def field_names(self, schema_name: str) -> list[str]: ...


class SchemaIdResolver(Protocol):
    def id_for(self, version: SchemaVersion) -> int: ...

    def schema_for(self, schema_id: int) -> dict[str, Any]: ...


def _write(version: SchemaVersion, record: Record, prefix: bytes, strict: bool) -> bytes:
    if strict and (problem := find_unencodable(version.parsed, record)) is not None:
        raise UnencodableRecord(version.full_name, problem.path, problem.reason)
    buf = io.BytesIO()
    buf.write(prefix)
    try:
        fastavro.schemaless_writer(buf, version.parsed, record, strict_allow_default=True)
    # fastavro's writer reports a value it cannot write through many built-in exception types
    # (ValueError, TypeError, KeyError, UnicodeEncodeError, OverflowError for a long beyond 64
    # bits...), none naming the field: every one means "this record does not fit its schema",
    # and the check finds which field, so the one who sent it knows what to fix.
    except Exception as exc:
        problem = find_unencodable(version.parsed, record)
        if problem is None:
            raise UnencodableRecord(version.full_name, (), f"{type(exc).__name__}: {exc}") from exc
        raise UnencodableRecord(version.full_name, problem.path, problem.reason) from exc
    return buf.getvalue()


def _read(data: bytes, start: int, writer: Any, reader: SchemaVersion) -> Record:
    buf = io.BytesIO(data)
    buf.seek(start)
    try:
        record = fastavro.schemaless_reader(buf, writer, reader.parsed)
    # fastavro reports malformed input through many built-in exception types (EOFError,
    # IndexError, UnicodeDecodeError, MemoryError on absurd lengths, ...): every one of them
    # means "these bytes are not a record", which is exactly one typed error for the runtime.
    except Exception as exc:
        raise CodecError(f"bytes do not decode as {reader.full_name}: {type(exc).__name__}: {exc}") from exc
    if buf.tell() != len(data):
        raise CodecError(f"{len(data) - buf.tell()} trailing bytes after a {reader.full_name} record")
    if not isinstance(record, dict):
        raise CodecError(f"decoded a {type(record).__name__}, expected a record")
    return record


class SingleObjectCodec:
    """The default: self-describing values, writer schemas found by fingerprint in the repo."""

    def __init__(self, store: SchemaStore) -> None:
        self._store = store

    def encode(self, schema_name: str, record: Record, *, strict: bool = False) -> bytes:
        version = self._store.current(schema_name)
        return _write(version, record, SINGLE_OBJECT_MAGIC + version.fingerprint, strict)

    def field_names(self, schema_name: str) -> list[str]:
        return [f["name"] for f in self._store.current(schema_name).raw["fields"]]

    def decode(self, schema_name: str, data: bytes) -> Record:
        try:
            reader = self._store.current(schema_name)
        except SchemaError as exc:
            raise UnknownSchema(str(exc)) from exc
        if len(data) < 10 or data[:2] != SINGLE_OBJECT_MAGIC:
            raise CodecError(
                f"not Avro single-object encoded (expected C3 01 header, got {data[:2].hex() or 'empty'})"
            )
        writer = self._store.by_fingerprint(data[2:10])
        if writer is None:
            raise UnknownSchema(
                f"unknown writer schema fingerprint {data[2:10].hex()}; it is not any version in "
                "schemas/ (was the record written with a schema not committed here?)"
            )
        if writer.full_name != reader.full_name:
            raise CodecError(f"schema mismatch: expected {reader.full_name}, record is {writer.full_name}")
        return _read(data, 10, writer.parsed, reader)


class ConfluentCodec:
    """Confluent wire format through a schema registry; resolves to the repo's current schema."""

    def __init__(self, store: SchemaStore, resolver: SchemaIdResolver) -> None:
        self._store = store
        self._resolver = resolver
        self._writers: dict[int, tuple[str, Any]] = {}

    def encode(self, schema_name: str, record: Record, *, strict: bool = False) -> bytes:
        version = self._store.current(schema_name)
        schema_id = self._resolver.id_for(version)
        return _write(version, record, CONFLUENT_MAGIC + schema_id.to_bytes(4, "big"), strict)

    def field_names(self, schema_name: str) -> list[str]:
        return [f["name"] for f in self._store.current(schema_name).raw["fields"]]

    def decode(self, schema_name: str, data: bytes) -> Record:
        try:
            reader = self._store.current(schema_name)
        except SchemaError as exc:
            raise UnknownSchema(str(exc)) from exc
        if len(data) < 5 or data[:1] != CONFLUENT_MAGIC:
            raise CodecError(f"not Confluent-framed (expected 00 magic, got {data[:1].hex()})")
        schema_id = int.from_bytes(data[1:5], "big")
        name, writer = self._writer(schema_id)
        if name != reader.full_name:
            raise CodecError(f"schema mismatch: expected {reader.full_name}, record is {name}")
        return _read(data, 5, writer, reader)

    def _writer(self, schema_id: int) -> tuple[str, Any]:
        if schema_id not in self._writers:
            raw = self._resolver.schema_for(schema_id)
            try:
                parsed = fastavro.parse_schema(raw, _write_hint=False)
            except (ValueError, fastavro.schema.SchemaParseException) as exc:
                raise UnknownSchema(f"registry schema id {schema_id} does not parse: {exc}") from exc
            self._writers[schema_id] = (str(parsed["name"]), parsed)  # type: ignore[call-overload,index]
        return self._writers[schema_id]
