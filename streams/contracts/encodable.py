"""What an Avro schema can carry: the first value of a record that its schema cannot encode.

fastavro's writer fails on some values with messages that do not name the field (a lone
surrogate: "'utf-8' codec can't encode character '\\ud800'"; a long beyond 64 bits: an
OverflowError) and silently changes others: an int beyond 32 bits is written as a long that
other Avro readers refuse, 5.5 for an int is written as 5, 3 for a boolean as true, a finite
number beyond a float's range as infinity. :func:`find_unencodable` walks a record along its
parsed schema and names the first value that cannot be carried as it is, with its path, so the
one who sent it can be told which field to fix.

Pure: no I/O. The schema is fastavro's parsed form: names are full names, and a named type is
spelled out where it first appears and referred to by name after that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Unencodable", "find_unencodable"]

_INT = (-(2**31), 2**31 - 1)
_LONG = (-(2**63), 2**63 - 1)
_FLOAT_MAX = 3.4028234663852886e38  # the largest finite IEEE 754 single


@dataclass(frozen=True)
class Unencodable:
    """Where (``("items", 3, "name")``: field names and array indexes) and why."""

    path: tuple[str | int, ...]
    reason: str


def find_unencodable(schema: Any, datum: Any) -> Unencodable | None:
    """The first value of ``datum`` that ``schema`` (parsed by fastavro) cannot carry as it is."""
    named: dict[str, Any] = {}
    _collect_named(schema, named)
    try:
        return _check(schema, datum, (), named)
    except RecursionError:
        return Unencodable((), "nested too deeply to check")


def _collect_named(schema: Any, named: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_named(branch, named)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "error", "enum", "fixed") and "name" in schema:
            named[schema["name"]] = schema
        for field in schema.get("fields", ()):
            _collect_named(field["type"], named)
        for inner in ("items", "values"):
            if inner in schema:
                _collect_named(schema[inner], named)
        if isinstance(schema.get("type"), dict | list):
            _collect_named(schema["type"], named)


def _kind(datum: Any) -> str:
    return "null" if datum is None else type(datum).__name__


def _check(
    schema: Any, datum: Any, path: tuple[str | int, ...], named: Mapping[str, Any]
) -> Unencodable | None:
    if isinstance(schema, list):
        return _union(schema, datum, path, named)
    if isinstance(schema, str):
        if schema in named:
            return _check(named[schema], datum, path, named)
        return _primitive(schema, datum, path)
    if "logicalType" in schema:
        # fastavro converts these itself (a date, a Decimal, a UUID...): its writer decides.
        return None
    kind = schema["type"]
    if kind in ("record", "error"):
        return _record(schema, datum, path, named)
    if kind == "enum":
        if isinstance(datum, str) and datum in schema["symbols"]:
            return None
        return Unencodable(path, f"{datum!r} is not one of {', '.join(schema['symbols'])}")
    if kind == "array":
        if not isinstance(datum, list | tuple):
            return Unencodable(path, f"an array is expected, got {_kind(datum)}")
        for i, item in enumerate(datum):
            if (problem := _check(schema["items"], item, (*path, i), named)) is not None:
                return problem
        return None
    if kind == "map":
        if not isinstance(datum, Mapping):
            return Unencodable(path, f"an object is expected, got {_kind(datum)}")
        for key, value in datum.items():
            if (problem := _primitive("string", key, (*path, str(key)))) is not None:
                return Unencodable(problem.path, f"the key: {problem.reason}")
            if (problem := _check(schema["values"], value, (*path, key), named)) is not None:
                return problem
        return None
    if kind == "fixed":
        if isinstance(datum, bytes | bytearray) and len(datum) == schema["size"]:
            return None
        return Unencodable(path, f"{schema['size']} bytes are expected, got {_kind(datum)}")
    return _check(kind, datum, path, named)  # {"type": "string"} and the like


def _record(
    schema: Mapping[str, Any], datum: Any, path: tuple[str | int, ...], named: Mapping[str, Any]
) -> Unencodable | None:
    if not isinstance(datum, Mapping):
        return Unencodable(path, f"an object is expected, got {_kind(datum)}")
    fields = {f["name"]: f for f in schema["fields"]}
    for key in datum:
        if key not in fields:
            # fastavro would drop it without a word: the sender meant something by it.
            return Unencodable((*path, key), f"{schema['name']} has no such field")
    for name, field in fields.items():
        if name not in datum:
            if "default" in field:
                continue
            return Unencodable((*path, name), "required, and missing")
        if (problem := _check(field["type"], datum[name], (*path, name), named)) is not None:
            return problem
    return None


def _union(
    branches: list[Any], datum: Any, path: tuple[str | int, ...], named: Mapping[str, Any]
) -> Unencodable | None:
    problems = []
    for branch in branches:
        problem = _check(branch, datum, path, named)
        if problem is None:
            return None
        problems.append((branch, problem))
    others = [(b, p) for b, p in problems if b != "null"]
    if datum is not None and len(others) == 1:
        return others[0][1]  # ["null", "string"]: the string's own reason says more
    names = ", ".join(b if isinstance(b, str) else str(b.get("name", b.get("type"))) for b in branches)
    return Unencodable(path, f"{_kind(datum)} is none of {names}")


def _primitive(kind: str, datum: Any, path: tuple[str | int, ...]) -> Unencodable | None:
    # bool is an int in Python: a JSON true is not a number, so it is checked first.
    if kind == "null":
        return None if datum is None else Unencodable(path, f"null is expected, got {_kind(datum)}")
    if kind == "boolean":
        return None if isinstance(datum, bool) else Unencodable(path, f"true or false, got {_kind(datum)}")
    if kind in ("int", "long"):
        low, high = _INT if kind == "int" else _LONG
        if isinstance(datum, bool) or not isinstance(datum, int):
            return Unencodable(path, f"a whole number is expected, got {_kind(datum)}")
        if not low <= datum <= high:
            bits = 32 if kind == "int" else 64
            return Unencodable(path, f"{datum} is beyond a {bits}-bit {kind} ({low} to {high})")
        return None
    if kind in ("float", "double"):
        if isinstance(datum, bool) or not isinstance(datum, int | float):
            return Unencodable(path, f"a number is expected, got {_kind(datum)}")
        try:
            value = float(datum)
        except OverflowError:
            return Unencodable(path, f"a {len(str(datum))}-digit number is beyond a {kind}'s range")
        if kind == "float" and math.isfinite(value) and abs(value) > _FLOAT_MAX:
            return Unencodable(path, f"{datum} is beyond a float's range (about 3.4e38)")
        return None
    if kind == "string":
        if not isinstance(datum, str):
            return Unencodable(path, f"a string is expected, got {_kind(datum)}")
        if datum.isascii():  # the common case, without a copy
            return None
        try:
            datum.encode("utf-8")
        except UnicodeEncodeError as exc:
            char = datum[exc.start]
            return Unencodable(
                path,
                f"a lone surrogate (U+{ord(char):04X}) at character {exc.start}: UTF-8 cannot encode "
                "it (send the pair's two halves together, or a valid character)",
            )
        return None
    if kind == "bytes":
        if isinstance(datum, bytes | bytearray):
            return None
        return Unencodable(path, f"bytes are expected, got {_kind(datum)}")
    return Unencodable(path, f"no such Avro type {kind!r}")
