import json
from pathlib import Path

import avro.schema
import pytest
from fastavro.schema import fingerprint

from streams.contracts.releases import LOCK_FILE, SchemaLock, release_problems, relock
from streams.contracts.schemas import SchemaStore
from streams.errors import SchemaError

REPO_SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def test_fingerprint_matches_the_avro_spec_vector() -> None:
    # The Java reference gives parsingFingerprint64("null") = 0x63dd24e7cc258f8a; on the wire it
    # is little-endian, which is how fastavro's hex string reads.
    assert bytes.fromhex(fingerprint('"null"', "CRC-64-AVRO")) == (0x63DD24E7CC258F8A).to_bytes(8, "little")


def test_repo_schemas_load_with_history_and_agree_with_the_official_library() -> None:
    store = SchemaStore.load(REPO_SCHEMAS)
    assert "podium.demo.Note" in store.names() and "podium.DeadLetter" in store.names()
    note = store.current("podium.demo.Note")
    assert note.version == 2
    assert [v.version for v in store.history("podium.demo.Note")] == [1]
    official = avro.schema.parse(note.path.read_text()).fingerprint("CRC-64-AVRO")
    assert official == note.fingerprint
    assert store.compatibility_problems() == []


def _write(directory: Path, name: str, fields: list[dict[str, object]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(
        json.dumps({"type": "record", "name": "Thing", "namespace": "t", "fields": fields})
    )


def test_an_incompatible_change_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "history", "thing.v1.avsc", [{"name": "a", "type": "string"}])
    # A new field without a default: the new reader cannot read old records.
    _write(tmp_path, "thing.avsc", [{"name": "a", "type": "string"}, {"name": "b", "type": "int"}])
    problems = SchemaStore.load(tmp_path).compatibility_problems()
    assert len(problems) == 1
    assert "not backward compatible" in problems[0] and "'b'" in problems[0]


def test_removing_a_field_without_default_breaks_forward(tmp_path: Path) -> None:
    _write(
        tmp_path / "history",
        "thing.v1.avsc",
        [{"name": "a", "type": "string"}, {"name": "b", "type": "int"}],
    )
    _write(tmp_path, "thing.avsc", [{"name": "a", "type": "string"}])
    problems = SchemaStore.load(tmp_path).compatibility_problems()
    assert any("not forward compatible" in p and "b" in p for p in problems)


def test_broken_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.avsc").write_text("{ not json")
    with pytest.raises(SchemaError, match=r"bad\.avsc"):
        SchemaStore.load(tmp_path)


def test_history_without_current_is_rejected(tmp_path: Path) -> None:
    _write(tmp_path / "history", "gone.v1.avsc", [{"name": "a", "type": "string"}])
    with pytest.raises(SchemaError, match=r"gone\.avsc is missing"):
        SchemaStore.load(tmp_path)


# -- the lock of released versions ------------------------------------------------------------
def _released(directory: Path, fields: list[dict[str, object]]) -> SchemaStore:
    """thing.avsc with ``fields``, released: the lock records it as it is."""
    _write(directory, "thing.avsc", fields)
    store = SchemaStore.load(directory)
    assert relock(store, directory) == []
    return store


def _lock_problems(directory: Path) -> list[str]:
    return release_problems(SchemaStore.load(directory), directory)


def test_the_repo_lock_releases_exactly_the_repo_schemas() -> None:
    assert release_problems(SchemaStore.load(REPO_SCHEMAS), REPO_SCHEMAS) == []


def test_an_in_place_type_change_names_the_schema_the_field_and_the_history_file(tmp_path: Path) -> None:
    _released(tmp_path, [{"name": "key", "type": "string"}, {"name": "answer", "type": "string"}])
    _write(tmp_path, "thing.avsc", [{"name": "key", "type": "string"}, {"name": "answer", "type": "int"}])
    store = SchemaStore.load(tmp_path)
    assert store.compatibility_problems() == []  # no history: compatibility alone sees nothing
    assert release_problems(store, tmp_path) == [
        f"{tmp_path / 'thing.avsc'} changed field 'answer' from string to int without keeping the "
        f"released version in {tmp_path / 'history'}/: copy the released version (recorded under "
        f"'thing' in {tmp_path / 'schemas.lock'}) to {tmp_path / 'history' / 'thing.v1.avsc'} and make "
        "the change compatible"
    ]


def test_added_removed_nested_and_renamed_changes_are_each_named(tmp_path: Path) -> None:
    inner = {"type": "record", "name": "Inner", "fields": [{"name": "count", "type": "int"}]}
    _released(tmp_path, [{"name": "a", "type": "string"}, {"name": "meta", "type": inner}])
    changed = {**inner, "fields": [{"name": "count", "type": "long"}]}
    (tmp_path / "thing.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "Renamed",
                "namespace": "t",
                "fields": [{"name": "meta", "type": changed}, {"name": "b", "type": ["null", "int"]}],
            }
        )
    )
    [problem] = _lock_problems(tmp_path)
    assert "renamed record t.Thing to record t.Renamed" in problem
    assert "removed field 'a' (string)" in problem
    assert "added field 'b' ([null, int])" in problem
    assert "changed field 'meta.count' from int to long" in problem


def test_a_reorder_is_named_and_a_doc_or_default_edit_is_not_a_change(tmp_path: Path) -> None:
    _released(tmp_path, [{"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0}])
    _write(
        tmp_path,
        "thing.avsc",
        [
            {"name": "a", "type": "string", "doc": "now documented"},
            {"name": "b", "type": "int", "default": 7},
        ],
    )
    assert _lock_problems(tmp_path) == []  # the fingerprint, and so every record, is unchanged
    _write(tmp_path, "thing.avsc", [{"name": "b", "type": "int"}, {"name": "a", "type": "string"}])
    [problem] = _lock_problems(tmp_path)
    assert "reordered fields (a, b) to (b, a)" in problem


def test_keeping_the_released_version_leaves_compatibility_and_the_lock_to_update(tmp_path: Path) -> None:
    released = [{"name": "a", "type": "string"}]
    _released(tmp_path, released)
    _write(tmp_path / "history", "thing.v1.avsc", released)
    _write(tmp_path, "thing.avsc", [{"name": "a", "type": "int"}])
    store = SchemaStore.load(tmp_path)
    assert any("not backward compatible" in p and "'a'" in p for p in store.compatibility_problems())
    with pytest.raises(SchemaError, match="make the changes compatible first"):
        relock(store, tmp_path)
    # A compatible change: a new field with a default.
    _write(tmp_path, "thing.avsc", [*released, {"name": "b", "type": "int", "default": 0}])
    store = SchemaStore.load(tmp_path)
    assert store.compatibility_problems() == []
    [problem] = release_problems(store, tmp_path)
    assert f"{tmp_path / 'thing.avsc'}: v2 is not released" in problem and "podium schemas lock" in problem
    assert relock(store, tmp_path) == []
    assert _lock_problems(tmp_path) == []
    lock = SchemaLock.read(tmp_path / LOCK_FILE)
    assert lock is not None and sorted(lock.released["thing"].fingerprints) == [1, 2]


def test_a_history_copy_that_is_not_the_released_text_is_named(tmp_path: Path) -> None:
    _released(tmp_path, [{"name": "a", "type": "string"}])
    _write(tmp_path / "history", "thing.v1.avsc", [{"name": "a", "type": "bytes"}])
    _write(
        tmp_path, "thing.avsc", [{"name": "a", "type": "bytes"}, {"name": "b", "type": "int", "default": 0}]
    )
    [problem] = _lock_problems(tmp_path)
    assert problem.startswith(f"{tmp_path / 'history' / 'thing.v1.avsc'} is not the released v1")
    assert "changed field 'a' from string to bytes" in problem


def test_an_edited_or_removed_older_release_is_named(tmp_path: Path) -> None:
    v1 = [{"name": "a", "type": "string"}]
    _write(tmp_path / "history", "thing.v1.avsc", v1)
    _released(tmp_path, [*v1, {"name": "b", "type": "int", "default": 0}])
    _write(tmp_path / "history", "thing.v1.avsc", [{"name": "a", "type": "string", "default": "x"}])
    assert _lock_problems(tmp_path) == []  # a default is not part of the fingerprint
    _write(tmp_path / "history", "thing.v1.avsc", [{"name": "a", "type": "bytes"}])
    [problem] = _lock_problems(tmp_path)
    assert problem.startswith(f"{tmp_path / 'history' / 'thing.v1.avsc'}: no longer holds the released v1")
    (tmp_path / "history" / "thing.v1.avsc").unlink()
    problems = _lock_problems(tmp_path)
    assert any("no longer holds the released v1" in p for p in problems)


def test_new_and_vanished_schemas_and_a_missing_lock_are_problems(tmp_path: Path) -> None:
    _write(tmp_path, "thing.avsc", [{"name": "a", "type": "string"}])
    assert _lock_problems(tmp_path) == [
        f"{tmp_path / LOCK_FILE} is missing: `podium schemas lock` records the released versions"
    ]
    relock(SchemaStore.load(tmp_path), tmp_path)
    (tmp_path / "other.avsc").write_text(
        json.dumps({"type": "record", "name": "Other", "namespace": "t", "fields": []})
    )
    assert _lock_problems(tmp_path) == [
        f"{tmp_path / 'other.avsc'}: new schema, not in {tmp_path / LOCK_FILE}: "
        "release it with `podium schemas lock`"
    ]
    (tmp_path / "thing.avsc").unlink()
    problems = _lock_problems(tmp_path)
    assert any(
        p.startswith(f"{tmp_path / LOCK_FILE}: t.Thing was released as") and "which is gone" in p
        for p in problems
    )


def test_relock_names_the_released_versions_it_drops(tmp_path: Path) -> None:
    store = _released(tmp_path, [{"name": "a", "type": "string"}])
    released = store.current("t.Thing").fingerprint.hex()
    _write(tmp_path, "thing.avsc", [{"name": "a", "type": "int"}])
    assert relock(SchemaStore.load(tmp_path), tmp_path) == [
        f"no longer released: t.Thing v1 (thing, fingerprint {released}): "
        "records written with it will not decode"
    ]
    assert _lock_problems(tmp_path) == []


def test_the_lock_round_trips_and_an_unreadable_one_names_its_file(tmp_path: Path) -> None:
    store = SchemaStore.load(REPO_SCHEMAS)
    lock = SchemaLock.of(store)
    lock.write(tmp_path / LOCK_FILE)
    assert SchemaLock.read(tmp_path / LOCK_FILE) == lock
    assert SchemaLock.read(tmp_path / "absent.lock") is None
    (tmp_path / LOCK_FILE).write_text("<<<<<<< HEAD\n{}")
    with pytest.raises(SchemaError, match=r"schemas\.lock: not a schema lock"):
        SchemaLock.read(tmp_path / LOCK_FILE)
    warnings = relock(store, tmp_path)
    assert len(warnings) == 1 and "rewrote an unreadable lock" in warnings[0]
    assert SchemaLock.read(tmp_path / LOCK_FILE) == lock
