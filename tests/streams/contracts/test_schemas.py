import json
from pathlib import Path

import avro.schema
import pytest
from fastavro.schema import fingerprint

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
