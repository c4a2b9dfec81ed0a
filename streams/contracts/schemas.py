"""The Avro contracts kept in ``schemas/``: current versions and every previous one.

Layout: ``schemas/<stem>.avsc`` is the current version of one record type;
``schemas/history/<stem>.v<N>.avsc`` are its earlier versions. Records on Kafka name their
writer schema by its CRC-64-AVRO fingerprint, so a record written with any version kept here
decodes, resolved to the current version (Avro schema resolution). What was released, and must
stay decodable, is
:mod:`streams.contracts.releases`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import avro.compatibility
import avro.errors
import avro.schema
import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streams.errors import SchemaError

__all__ = ["SchemaStore", "SchemaVersion"]

_HISTORY_NAME = re.compile(r"^(?P<stem>[a-z0-9_]+)\.v(?P<version>\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    full_name: str
    version: int  # 1.. for history files; the current version is one more than the newest
    path: Path
    raw: dict[str, Any]
    parsed: Any  # fastavro's parsed schema
    # CRC-64-AVRO of the parsing canonical form, as the 8 little-endian bytes that follow
    # C3 01 in single-object encoding (the Avro spec's own test vector is checked in tests).
    fingerprint: bytes


def _load(path: Path, version: int) -> SchemaVersion:
    try:
        raw = json.loads(path.read_text())
        parsed = fastavro.parse_schema(raw, _write_hint=False)
        canonical = to_parsing_canonical_form(raw)
    except (OSError, ValueError, fastavro.schema.SchemaParseException) as exc:
        raise SchemaError(f"{path}: does not parse as an Avro schema: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise SchemaError(f"{path}: top level must be a record schema")
    # A record schema parses to a dict; fastavro's annotations are looser than that.
    full_name = str(parsed["name"])  # type: ignore[call-overload,index]
    return SchemaVersion(
        full_name=full_name,
        version=version,
        path=path,
        raw=raw,
        parsed=parsed,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
    )


class SchemaStore:
    """Every schema version in a directory, looked up by full name or by fingerprint."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        self._current: dict[str, SchemaVersion] = {}
        self._history: dict[str, list[SchemaVersion]] = {}
        for v in versions:
            self._by_fingerprint.setdefault(v.fingerprint, v)
        for v in sorted(versions, key=lambda v: v.version):
            self._current[v.full_name] = v  # the highest version wins
        for v in versions:
            if self._current[v.full_name] is not v:
                self._history.setdefault(v.full_name, []).append(v)

    @classmethod
    def load(cls, directory: Path) -> SchemaStore:
        if not directory.is_dir():
            raise SchemaError(f"{directory}: schema directory not found (set PODIUM_SCHEMAS)")
        history: dict[str, list[tuple[int, Path]]] = {}
        history_dir = directory / "history"
        if history_dir.is_dir():
            for path in sorted(history_dir.glob("*.avsc")):
                match = _HISTORY_NAME.match(path.name)
                if match is None:
                    raise SchemaError(f"{path}: history files are named <stem>.v<N>.avsc, e.g. note.v1.avsc")
                history.setdefault(match["stem"], []).append((int(match["version"]), path))
        versions: list[SchemaVersion] = []
        names: dict[str, Path] = {}
        for path in sorted(directory.glob("*.avsc")):
            older = sorted(history.pop(path.stem, []))
            old_versions = [_load(p, n) for n, p in older]
            current = _load(path, (older[-1][0] + 1) if older else 1)
            if current.full_name in names:
                raise SchemaError(
                    f"{path}: {current.full_name} is already defined in {names[current.full_name]}"
                )
            names[current.full_name] = path
            for old in old_versions:
                if old.full_name != current.full_name:
                    raise SchemaError(
                        f"{old.path}: names {old.full_name} but {path} names "
                        f"{current.full_name}; a history file keeps its record's name"
                    )
            versions.extend([*old_versions, current])
        for stem, orphans in history.items():
            raise SchemaError(f"{orphans[0][1]}: history of '{stem}' but {stem}.avsc is missing")
        return cls(versions)

    def names(self) -> list[str]:
        return sorted(self._current)

    def current(self, full_name: str) -> SchemaVersion:
        try:
            return self._current[full_name]
        except KeyError:
            raise SchemaError(f"no schema named {full_name}; known: {', '.join(self.names())}") from None

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(fp)

    def history(self, full_name: str) -> list[SchemaVersion]:
        return list(self._history.get(full_name, []))

    def versions(self, full_name: str) -> list[SchemaVersion]:
        """History then the current version, oldest first."""
        return [*self.history(full_name), self.current(full_name)]

    def compatibility_problems(self) -> list[str]:
        """Backward and forward compatibility of each current schema with every older version.

        Backward: the current version reads what an older one wrote. Forward: an older
        version reads what the current one writes. Both matter because producers and
        consumers of a topic are upgraded at different times.
        """
        problems: list[str] = []
        checker = avro.compatibility.ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
        for name, current in sorted(self._current.items()):
            new = avro.schema.parse(json.dumps(current.raw))
            for old_version in self._history.get(name, []):
                old = avro.schema.parse(json.dumps(old_version.raw))
                for direction, reader, writer, reader_raw in (
                    ("backward", new, old, current.raw),
                    ("forward", old, new, old_version.raw),
                ):
                    result = checker.get_compatibility(reader, writer)
                    if result.compatibility is not avro.compatibility.SchemaCompatibilityType.compatible:
                        details = "; ".join(
                            f"field {_field_at(reader_raw, loc)}: {kind.name.replace('_', ' ')}: {msg}"
                            for kind, msg, loc in zip(
                                result.incompatibilities,
                                result.messages,
                                result.locations,
                                strict=False,
                            )
                        )
                        problems.append(
                            f"{current.path}: not {direction} compatible with "
                            f"{old_version.path.name}: {details}"
                        )
        return problems


def _field_at(schema: Any, location: str) -> str:
    """Turn a checker location like ``/fields/1/type`` into the field's dotted name."""
    names: list[str] = []
    node = schema
    parts = [p for p in location.split("/") if p]
    try:
        i = 0
        while i < len(parts):
            part = parts[i]
            if part == "fields" and i + 1 < len(parts):
                node = node["fields"][int(parts[i + 1])]
                names.append(str(node["name"]))
                i += 2
                continue
            if part in ("type", "items", "values"):
                node = node[part] if isinstance(node, dict) else node
            elif part.isdigit() and isinstance(node, list):
                node = node[int(part)]
            i += 1
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    return f"'{'.'.join(names)}' ({location})" if names else location
