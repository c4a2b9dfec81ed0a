"""`podium keys create | list | revoke` as a user runs them: the key on stdout once, never again."""

from __future__ import annotations

import json
from pathlib import Path

from tests.streams.running import podium


def test_keys_are_created_listed_without_the_key_and_revoked(tmp_path: Path) -> None:
    env = {"PODIUM_HOME": str(tmp_path / "home"), "PODIUM_API_KEYS_FILE": str(tmp_path / "secret" / "k.json")}
    made = podium(
        "keys",
        "create",
        "--tenant",
        "umbrella",
        "--pipelines",
        "support,billing",
        "--rate",
        "120/min",
        "--concurrency",
        "4",
        env=env,
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("pdm_") and "\n" not in key  # only the key on stdout
    assert "tenant umbrella" in made.stderr and str(tmp_path / "secret" / "k.json") in made.stderr
    assert not (tmp_path / "home" / "keys.json").exists()  # PODIUM_API_KEYS_FILE chose the file

    listed = podium("keys", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    (shown,) = [json.loads(line) for line in listed.stdout.splitlines()]
    key_id = key.split("_")[1]
    assert shown["id"] == key_id and shown["tenant"] == "umbrella"
    assert shown["pipelines"] == ["support", "billing"] and shown["revoked_ms"] is None
    assert shown["limits"] == {"rate_per_s": 2.0, "burst": None, "concurrency": 4}
    assert "hash" not in shown
    table = podium("keys", "list", env=env)
    assert key_id in table.stdout and key not in table.stdout + listed.stdout

    revoked = podium("keys", "revoke", key_id, env=env)
    assert revoked.returncode == 0 and f"key {key_id} of tenant umbrella revoked" in revoked.stdout
    (after,) = [json.loads(line) for line in podium("keys", "list", "--json", env=env).stdout.splitlines()]
    assert after["revoked_ms"] is not None


def test_bad_input_is_refused_with_what_to_do(tmp_path: Path) -> None:
    env = {"PODIUM_HOME": str(tmp_path)}
    for args, says in (
        (["--tenant", "a b"], "podium-tenant"),
        (["--tenant", "t", "--pipelines", "nope"], "--pipelines names"),
        (["--tenant", "t", "--rate", "5/day"], "N/s, N/min or N/h"),
        (["--tenant", "t", "--concurrency", "0"], "at least 1"),
    ):
        refused = podium("keys", "create", *args, env=env)
        assert refused.returncode == 2 and says in refused.stderr, (args, refused.stderr)
    assert not (tmp_path / "keys.json").exists()
    unknown = podium("keys", "revoke", "abcdefabcdef", env=env)
    assert unknown.returncode == 2 and "podium keys list" in unknown.stderr
