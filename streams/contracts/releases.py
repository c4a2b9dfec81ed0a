"""What was released: ``schemas/schemas.lock`` records, for each stem, the fingerprint of every
version and the full text of the newest one. A version whose fingerprint is in the lock may
have records on Kafka, so it must stay in the directory (as the current file or in history/).
An in-place edit of a released file is caught by its fingerprint leaving the lock, and named
field by field against the released text. The lock works from the files alone (no git), so an
installed package and a fresh clone check the same way; ``podium schemas lock`` rewrites it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.contracts.schemas import SchemaStore, SchemaVersion
from streams.errors import SchemaError

__all__ = ["LOCK_FILE", "ReleasedSchema", "SchemaLock", "release_problems", "relock"]

LOCK_FILE = "schemas.lock"  # in the schema directory, beside the .avsc files


@dataclass(frozen=True)
class ReleasedSchema:
    """One stem as the lock records it: every released version and the newest one's text."""

    stem: str
    full_name: str
    fingerprints: dict[int, bytes]  # version -> fingerprint, the same numbering as SchemaVersion
    raw: dict[str, Any]  # the newest released version, as its file read then

    @property
    def latest(self) -> int:
        return max(self.fingerprints)


@dataclass(frozen=True)
class SchemaLock:
    """``schemas/schemas.lock``: what was released, compared with what the directory holds now."""

    released: dict[str, ReleasedSchema]  # by stem

    @classmethod
    def of(cls, store: SchemaStore) -> SchemaLock:
        """The lock that releases every version in ``store`` as it is now."""
        released: dict[str, ReleasedSchema] = {}
        for name in store.names():
            current = store.current(name)
            released[current.path.stem] = ReleasedSchema(
                stem=current.path.stem,
                full_name=name,
                fingerprints={v.version: v.fingerprint for v in store.versions(name)},
                raw=current.raw,
            )
        return cls(released)

    @classmethod
    def read(cls, path: Path) -> SchemaLock | None:
        """The lock in ``path``; None when there is no such file."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SchemaError(f"{path}: cannot be read: {exc}") from exc
        try:
            doc = json.loads(text)
            released = {
                stem: ReleasedSchema(
                    stem=stem,
                    full_name=str(entry["name"]),
                    fingerprints={int(n): bytes.fromhex(fp) for n, fp in entry["fingerprints"].items()},
                    raw=dict(entry["released"]),
                )
                for stem, entry in doc["schemas"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SchemaError(
                f"{path}: not a schema lock ({type(exc).__name__}: {exc}); "
                "`podium schemas lock` writes it again from the schema files"
            ) from exc
        if any(not r.fingerprints for r in released.values()):
            raise SchemaError(f"{path}: every schema in the lock needs at least one fingerprint")
        return cls(released)

    def text(self) -> str:
        """The lock as JSON laid out like the .avsc files: one line per field, stems sorted."""
        about = (
            "Released Avro schemas: the fingerprint of every version and the text of the newest. "
            "Written by `podium schemas lock`; `podium schemas check` fails when a released "
            "version is no longer kept in schemas/ or schemas/history/."
        )
        entries = []
        for stem, r in sorted(self.released.items()):
            fingerprints = {str(n): fp.hex() for n, fp in sorted(r.fingerprints.items())}
            entries.append(
                f"    {json.dumps(stem)}: {{\n"
                f'      "name": {json.dumps(r.full_name)},\n'
                f'      "fingerprints": {json.dumps(fingerprints)},\n'
                f'      "released": {_record_json(r.raw, "      ")}\n'
                "    }"
            )
        return f'{{\n  "about": {json.dumps(about)},\n  "schemas": {{\n' + ",\n".join(entries) + "\n  }\n}\n"

    def write(self, path: Path) -> None:
        try:
            path.write_text(self.text())
        except OSError as exc:
            raise SchemaError(f"{path}: cannot be written: {exc}") from exc

    def problems(self, store: SchemaStore, directory: Path) -> list[str]:
        """Released versions the directory no longer keeps, and versions not released yet.

        1. A stem in the directory but not in the lock is a new schema: it is released with
           ``podium schemas lock``.
        2. A stem in the lock but not in the directory lost its released versions.
        3. Every released fingerprint must be one of the stem's versions now. The newest one
           missing means the current file was edited in place (or its history copy differs):
           the message names the fields that changed against the released text.
        4. With nothing missing, a version the lock does not know yet is a new release waiting
           for ``podium schemas lock``.
        """
        lock_path = directory / LOCK_FILE
        problems: list[str] = []
        in_store = {store.current(name).path.stem: name for name in store.names()}
        for stem in sorted(set(in_store) | set(self.released)):
            released = self.released.get(stem)
            if released is None:
                problems.append(
                    f"{directory / f'{stem}.avsc'}: new schema, not in {lock_path}: "
                    "release it with `podium schemas lock`"
                )
                continue
            if stem not in in_store:
                problems.append(
                    f"{lock_path}: {released.full_name} was released as {directory / f'{stem}.avsc'}, "
                    "which is gone: records written with it no longer decode; restore it (or run "
                    "`podium schemas lock` if no record was ever written with it)"
                )
                continue
            problems.extend(_release_problems(released, store.versions(in_store[stem]), directory))
        return problems

    def dropped_by(self, new: SchemaLock) -> list[str]:
        """Released versions that ``new`` no longer keeps: their records would stop decoding."""
        dropped: list[str] = []
        for stem, released in sorted(self.released.items()):
            kept = set(new.released[stem].fingerprints.values()) if stem in new.released else set()
            dropped.extend(
                f"{released.full_name} v{n} ({stem}, fingerprint {fp.hex()})"
                for n, fp in sorted(released.fingerprints.items())
                if fp not in kept
            )
        return dropped


def release_problems(store: SchemaStore, directory: Path) -> list[str]:
    """What ``podium schemas check`` adds to compatibility: the lock in ``directory`` against ``store``."""
    lock_path = directory / LOCK_FILE
    lock = SchemaLock.read(lock_path)
    if lock is None:
        return [f"{lock_path} is missing: `podium schemas lock` records the released versions"]
    return lock.problems(store, directory)


def relock(store: SchemaStore, directory: Path) -> list[str]:
    """Write the lock that releases ``store`` as it is; return warnings about what it dropped.

    Refuses (SchemaError) while a change is incompatible: a release is a compatible step. An
    unreadable lock (a merge conflict, say) is rewritten from the schema files.
    """
    problems = store.compatibility_problems()
    if problems:
        raise SchemaError("not locked; make the changes compatible first: " + "; ".join(problems))
    lock_path = directory / LOCK_FILE
    warnings: list[str] = []
    try:
        old = SchemaLock.read(lock_path)
    except SchemaError as exc:
        warnings.append(f"rewrote an unreadable lock: {exc}")
        old = None
    new = SchemaLock.of(store)
    if old is not None:
        warnings.extend(
            f"no longer released: {dropped}: records written with it will not decode"
            for dropped in old.dropped_by(new)
        )
    new.write(lock_path)
    return warnings


def _record_json(raw: dict[str, Any], indent: str) -> str:
    """A record schema as JSON with each attribute, and each field, on a line of its own."""
    lines = []
    for key, value in raw.items():
        if key == "fields" and isinstance(value, list) and value:
            fields = ",\n".join(f"{indent}    {json.dumps(f)}" for f in value)
            lines.append(f'{indent}  "fields": [\n{fields}\n{indent}  ]')
        else:
            lines.append(f"{indent}  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + f"\n{indent}}}"


def _release_problems(released: ReleasedSchema, versions: list[SchemaVersion], directory: Path) -> list[str]:
    """Rules 3 and 4 of :meth:`SchemaLock.problems` for one stem."""
    lock_path = directory / LOCK_FILE
    current = versions[-1]
    by_fingerprint = {v.fingerprint: v for v in versions}
    by_number = {v.version: v for v in versions}
    problems: list[str] = []
    for n, fp in sorted(released.fingerprints.items()):
        if fp in by_fingerprint:
            continue
        kept_as = directory / "history" / f"{released.stem}.v{n}.avsc"
        recorded = f"recorded under '{released.stem}' in {lock_path}"
        there = by_number.get(n)
        if n != released.latest:
            problems.append(
                f"{kept_as}: no longer holds the released v{n} of {current.path} (fingerprint "
                f"{fp.hex()}): records written with it no longer decode; restore the released file"
            )
        elif there is current:
            problems.append(
                f"{current.path} {_changes(released.raw, current.raw)} without keeping the "
                f"released version in {directory / 'history'}/: copy the released version ({recorded}) "
                f"to {kept_as} and make the change compatible"
            )
        elif there is not None:
            problems.append(
                f"{there.path} is not the released v{n} of {current.path} (since the release it "
                f"{_changes(released.raw, there.raw)}): it must hold the released text ({recorded})"
            )
        else:
            problems.append(
                f"{current.path}: the released v{n} (fingerprint {fp.hex()}) is not kept: copy it "
                f"({recorded}) to {kept_as}"
            )
    if not problems:
        known = set(released.fingerprints.values())
        problems.extend(
            f"{v.path}: v{v.version} is not released in {lock_path}: once `podium schemas check` "
            "finds it compatible, record it with `podium schemas lock`"
            for v in versions
            if v.fingerprint not in known
        )
    return problems


_IGNORED_KEYS = frozenset({"doc", "aliases", "default", "order"})  # not in the parsing canonical form


def _shape(node: Any) -> Any:
    """A schema node without the attributes that leave the fingerprint alone."""
    if isinstance(node, dict):
        return {k: _shape(v) for k, v in node.items() if k not in _IGNORED_KEYS}
    if isinstance(node, list):
        return [_shape(v) for v in node]
    return node


def _type_name(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "[" + ", ".join(_type_name(t) for t in node) + "]"
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "array":
            return f"array of {_type_name(node.get('items'))}"
        if kind == "map":
            return f"map of {_type_name(node.get('values'))}"
        if kind in ("record", "enum", "fixed", "error"):
            name, namespace = str(node.get("name")), node.get("namespace")
            return f"{kind} {namespace}.{name}" if namespace and "." not in name else f"{kind} {name}"
        return _type_name(kind) + (f" ({node['logicalType']})" if "logicalType" in node else "")
    return json.dumps(node)


def _record_changes(old: dict[str, Any], new: dict[str, Any], prefix: str) -> list[str]:
    changes: list[str] = []
    if old.get("name") != new.get("name") or old.get("namespace") != new.get("namespace"):
        changes.append(f"renamed {_type_name(old)} to {_type_name(new)}")
    old_fields = {str(f["name"]): f["type"] for f in old.get("fields", [])}
    new_fields = {str(f["name"]): f["type"] for f in new.get("fields", [])}
    for name, kind in old_fields.items():
        if name not in new_fields:
            changes.append(f"removed field '{prefix}{name}' ({_type_name(kind)})")
    for name, kind in new_fields.items():
        if name not in old_fields:
            changes.append(f"added field '{prefix}{name}' ({_type_name(kind)})")
            continue
        before = old_fields[name]
        if _shape(before) == _shape(kind):
            continue
        if (
            isinstance(before, dict)
            and isinstance(kind, dict)
            and before.get("type") == kind.get("type") == "record"
        ):
            changes.extend(_record_changes(before, kind, f"{prefix}{name}."))
            continue
        was, now = _type_name(before), _type_name(kind)
        if was == now:  # same name, other shape (enum symbols, fixed size, nested array items)
            was, now = json.dumps(_shape(before)), json.dumps(_shape(kind))
        changes.append(f"changed field '{prefix}{name}' from {was} to {now}")
    before_order = [n for n in old_fields if n in new_fields]
    after_order = [n for n in new_fields if n in old_fields]
    if not changes and before_order != after_order:
        changes.append(f"reordered fields ({', '.join(before_order)}) to ({', '.join(after_order)})")
    return changes


def _changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What an edit did to the fingerprinted shape of a record, e.g. changed field 'a' from string to int."""
    return ", ".join(_record_changes(old, new, "")) or "changed its Avro shape"
