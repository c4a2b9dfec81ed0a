"""Every way a value can fail to be encoded is found, with the field's path (pure, no Kafka)."""

from __future__ import annotations

from typing import Any

import fastavro
import pytest

from streams.contracts.codec import SingleObjectCodec
from streams.contracts.encodable import find_unencodable
from streams.contracts.schemas import SchemaStore
from streams.errors import CodecError, UnencodableRecord

SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Order",
        "namespace": "t",
        "fields": [
            {"name": "text", "type": "string"},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "count", "type": "int", "default": 0},
            {"name": "total", "type": "long", "default": 0},
            {"name": "ratio", "type": "float", "default": 0.0},
            {"name": "score", "type": "double", "default": 0.0},
            {"name": "paid", "type": "boolean", "default": False},
            {"name": "blob", "type": "bytes", "default": ""},
            {
                "name": "state",
                "type": {"type": "enum", "name": "State", "symbols": ["OPEN", "SHUT"]},
                "default": "OPEN",
            },
            {"name": "again", "type": ["null", "State"], "default": None},
            {"name": "tags", "type": {"type": "map", "values": "string"}, "default": {}},
            {
                "name": "lines",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Line",
                        "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}],
                    },
                },
                "default": [],
            },
            {"name": "either", "type": ["null", "int", "string"], "default": None},
            {
                "name": "digest",
                "type": {"type": "fixed", "name": "Digest", "size": 2},
                "default": "\u0000\u0000",
            },
        ],
    },
    _write_hint=False,
)


def test_a_record_that_fits_has_no_problem() -> None:
    record = {
        "text": "caf\u00e9 \U0001f600",
        "note": None,
        "count": 2**31 - 1,
        "total": -(2**63),
        "ratio": 3.4e38,
        "score": float("inf"),
        "paid": True,
        "blob": b"\x00",
        "state": "SHUT",
        "again": "OPEN",
        "tags": {"k": "v"},
        "lines": [{"sku": "a", "qty": 1}],
        "either": "x",
        "digest": b"ab",
    }
    assert find_unencodable(SCHEMA, record) is None
    assert find_unencodable(SCHEMA, {"text": "only the required one"}) is None


@pytest.mark.parametrize(
    ("extra", "path", "reason"),
    [
        ({"text": "a\ud800c"}, ("text",), "lone surrogate (U+D800) at character 1"),
        ({"note": "\udfff"}, ("note",), "lone surrogate (U+DFFF)"),
        ({"count": 2**31}, ("count",), "beyond a 32-bit int"),
        ({"count": -(2**31) - 1}, ("count",), "beyond a 32-bit int"),
        ({"count": 5.5}, ("count",), "a whole number is expected, got float"),
        ({"count": True}, ("count",), "a whole number is expected, got bool"),
        ({"total": 2**63}, ("total",), "beyond a 64-bit long"),
        ({"ratio": 1e39}, ("ratio",), "beyond a float's range"),
        ({"score": 10**400}, ("score",), "401-digit number is beyond a double's range"),
        ({"score": "1.5"}, ("score",), "a number is expected, got str"),
        ({"paid": 3}, ("paid",), "true or false, got int"),
        ({"blob": "text"}, ("blob",), "bytes are expected, got str"),
        ({"state": "GONE"}, ("state",), "'GONE' is not one of OPEN, SHUT"),
        ({"again": "GONE"}, ("again",), "'GONE' is not one of OPEN, SHUT"),
        ({"tags": {"k": 1}}, ("tags", "k"), "a string is expected, got int"),
        ({"tags": {"k\ud800": "v"}}, ("tags", "k\ud800"), "the key: a lone surrogate"),
        ({"lines": [{"sku": "a", "qty": 1}, {"sku": "b"}]}, ("lines", 1, "qty"), "required, and missing"),
        (
            {"lines": [{"sku": "a", "qty": 1, "colour": "red"}]},
            ("lines", 0, "colour"),
            "t.Line has no such field",
        ),
        ({"lines": "a"}, ("lines",), "an array is expected, got str"),
        ({"either": 2.5}, ("either",), "float is none of null, int, string"),
        ({"digest": b"abc"}, ("digest",), "2 bytes are expected"),
        ({"surprise": 1}, ("surprise",), "t.Order has no such field"),
    ],
)
def test_each_value_its_schema_cannot_carry_is_named(
    extra: dict[str, Any], path: tuple[Any, ...], reason: str
) -> None:
    problem = find_unencodable(SCHEMA, {"text": "ok", **extra})
    assert problem is not None
    assert problem.path == path
    assert reason in problem.reason


def test_a_missing_required_field_is_named() -> None:
    problem = find_unencodable(SCHEMA, {"note": "no text"})
    assert problem is not None and problem.path == ("text",) and problem.reason == "required, and missing"


def test_the_codec_names_the_field_fastavro_fails_on(schema_store: SchemaStore) -> None:
    codec = SingleObjectCodec(schema_store)
    with pytest.raises(UnencodableRecord) as caught:
        codec.encode("podium.support.Request", {"body": "a\ud800c"})
    assert caught.value.path == ("body",)
    assert "field 'body': a lone surrogate" in str(caught.value)
    assert isinstance(caught.value, CodecError)  # the runtime dead-letters it as before
    assert caught.value.dead_letter_reason == "unencodable"


def test_strict_encoding_refuses_what_fastavro_would_change_silently(schema_store: SchemaStore) -> None:
    codec = SingleObjectCodec(schema_store)
    for priority, path, reason in (
        (2**40, ("priority",), "beyond a 32-bit int"),
        (5.5, ("priority",), "whole"),
    ):
        record = {"request_id": "r", "text": "hi", "priority": priority}
        codec.encode("podium.demo.Note", record)  # not strict: written as something else
        with pytest.raises(UnencodableRecord, match=reason) as caught:
            codec.encode("podium.demo.Note", record, strict=True)
        assert caught.value.path == path
