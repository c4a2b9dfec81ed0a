"""The CLI on the real broker: topics apply is idempotent, grows, reconfigures, never deletes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from streams.cli import app
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from tests.streams.running import REPO, podium


def test_topics_apply_creates_then_changes_nothing_then_grows_and_reconfigures(
    cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    catalog = tmp_path / "topics.yaml"
    env = {"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap, "PODIUM_TOPICS": str(catalog), "COLUMNS": "200"}
    catalog.write_text(f"topics:\n  {unique}.a: {{value: podium.demo.Note, consumer: s, partitions: 1}}\n")
    first = podium("topics", "apply", env=env)
    assert first.returncode == 0, first.stderr
    for name in (f"{unique}.a", f"{unique}.a.retry", f"{unique}.a.dlq"):
        assert f"create    {name}" in first.stdout
    again = podium("topics", "apply", env=env)
    assert again.returncode == 0 and "0 change(s)" in again.stdout

    catalog.write_text(
        f"topics:\n  {unique}.a: {{value: podium.demo.Note, consumer: s, partitions: 2, retention: 1d}}\n"
    )
    dry = podium("topics", "apply", "--dry-run", env=env)
    assert f"would grow      {unique}.a  1 -> 2 partitions" in dry.stdout
    changed = podium("topics", "apply", env=env)
    assert f"grow      {unique}.a  1 -> 2 partitions" in changed.stdout
    assert f"configure {unique}.a  retention.ms: 604800000 -> 86400000" in changed.stdout
    described = podium("topics", "describe", f"{unique}.a", env=env)
    assert "2 partitions" in described.stdout and "retention.ms = 86400000" in described.stdout

    # Removing a topic from the catalog never deletes it.
    catalog.write_text(f"topics:\n  {unique}.b: {{value: podium.demo.Note}}\n")
    podium("topics", "apply", env=env)
    catalog.write_text(
        f"topics:\n  {unique}.a: {{value: podium.demo.Note, consumer: s, partitions: 2, retention: 1d}}\n"
    )
    assert "0 change(s)" in podium("topics", "apply", env=env).stdout


def test_an_invalid_catalog_is_rejected_with_file_line_and_field(tmp_path: Path) -> None:
    catalog = tmp_path / "topics.yaml"
    catalog.write_text(
        "topics:\n  ok: {value: podium.demo.Note}\n  bad:\n    value: podium.demo.Note\n    partitions: -3\n"
    )
    result = podium(
        "topics",
        "apply",
        env={"PODIUM_TOPICS": str(catalog), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "300"},
    )
    assert result.returncode == 2
    assert f"{catalog}:5: field 'partitions' must be an integer >= 1" in result.stderr.replace("\n", "")


def test_schemas_check_passes_on_the_repo_and_names_the_field_when_broken(tmp_path: Path) -> None:
    ok = podium("schemas", "check", env={})
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "history").mkdir()
    (tmp_path / "history" / "thing.v1.avsc").write_text(
        '{"type":"record","name":"Thing","fields":[{"name":"a","type":"string"}]}'
    )
    (tmp_path / "thing.avsc").write_text(
        '{"type":"record","name":"Thing","fields":[{"name":"a","type":"int"}]}'
    )
    bad = podium(
        "schemas",
        "check",
        env={"PODIUM_SCHEMAS": str(tmp_path), "PODIUM_TOPICS": str(REPO / "topics.yaml"), "COLUMNS": "300"},
    )
    assert bad.returncode != 0
    assert "not backward compatible" in bad.stderr and "'a'" in bad.stderr


def test_schemas_check_fails_on_an_in_place_change_until_kept_in_history_and_relocked(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (tmp_path / "topics.yaml").write_text("topics:\n  demo.answers: {value: podium.Answer}\n")
    env = {"PODIUM_SCHEMAS": str(schemas), "PODIUM_TOPICS": str(tmp_path / "topics.yaml"), "COLUMNS": "400"}
    released = (
        '{"type":"record","name":"Answer","namespace":"podium","fields":[{"name":"answer","type":"string"}]}'
    )
    (schemas / "answer.avsc").write_text(released)
    runner = CliRunner()

    def podium_in_process(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    missing = podium_in_process("schemas", "check")
    assert missing.exit_code == 1 and "schemas.lock is missing" in missing.stderr
    locked = podium_in_process("schemas", "lock")
    assert locked.exit_code == 0, locked.output
    assert (schemas / "schemas.lock").is_file() and podium_in_process("schemas", "check").exit_code == 0

    (schemas / "answer.avsc").write_text(released.replace('"string"', '"int"'))
    changed = podium_in_process("schemas", "check")
    assert changed.exit_code == 1
    assert (
        f"{schemas / 'answer.avsc'} changed field 'answer' from string to int without keeping the released "
        f"version in {schemas / 'history'}/" in changed.stderr
    )
    assert f"to {schemas / 'history' / 'answer.v1.avsc'} and make the change compatible" in changed.stderr

    # Kept in history, the int change is the incompatibility it is, and lock refuses to record it.
    (schemas / "history").mkdir()
    (schemas / "history" / "answer.v1.avsc").write_text(released)
    kept = podium_in_process("schemas", "check")
    assert kept.exit_code == 1 and "not backward compatible" in kept.stderr and "'answer'" in kept.stderr
    assert podium_in_process("schemas", "lock").exit_code != 0

    # A compatible change is released with `podium schemas lock`.
    (schemas / "answer.avsc").write_text(
        released.replace("}]}", '},{"name":"score","type":"int","default":0}]}')
    )
    unlocked = podium_in_process("schemas", "check")
    assert unlocked.exit_code == 1 and "v2 is not released" in unlocked.stderr
    assert podium_in_process("schemas", "lock").exit_code == 0
    assert podium_in_process("schemas", "check").exit_code == 0


async def test_tail_shows_a_record_published_after_it_started(  # type: ignore[no-untyped-def]
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore, tmp_path: Path
) -> None:
    text = "topics:\n  {p}.seen: {value: podium.demo.Note}\n"
    catalog = await make_topics(text, unique)
    topics_file = tmp_path / "topics.yaml"
    await asyncio.to_thread(topics_file.write_text, text.replace("{p}", unique))
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap, "PODIUM_TOPICS": str(topics_file)}
    tail = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agents.cli",
        "tail",
        f"{unique}.seen",
        "--json",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert tail.stderr is not None and tail.stdout is not None
        ready = await asyncio.wait_for(tail.stderr.readline(), 30)
        assert b"following" in ready
        await asyncio.sleep(1.0)  # the reader has positioned itself at the end
        async with Publisher(
            cluster=cluster, catalog=catalog, codec=SingleObjectCodec(schema_store)
        ) as publisher:
            rid = await publisher.publish(f"{unique}.seen", {"request_id": "", "text": "live"}, budget_s=5)
        line = json.loads(await asyncio.wait_for(tail.stdout.readline(), 30))
    finally:
        tail.send_signal(signal.SIGINT)
        await asyncio.wait_for(tail.wait(), 30)
    assert line["request_id"] == rid and line["value"]["text"] == "live"
    assert line["trace_id"] and line["deadline_ms"] and line["attempt"] == 0
    assert tail.returncode == 0
