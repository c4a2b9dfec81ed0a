"""The gateway's API keys without a broker: hashed in a 0600 file, verified once per key, a revoke
counted from the next check, and a file that is not podium's refused with its name."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from streams.errors import ConfigError, Throttled, Unauthenticated
from streams.ingress import keys as keys_module
from streams.ingress.keys import PREFIX, KeyFile, KeyRing, Limits, parse_rate


def test_a_key_is_shown_once_and_the_file_keeps_only_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "home" / "keys.json"
    entry, secret = KeyFile(path).create("umbrella", ["support"], Limits(rate_per_s=5, concurrency=2))
    key = secret.get_secret_value()
    assert key.startswith(f"{PREFIX}{entry.id}_") and len(key) == len(PREFIX) + 12 + 1 + 43
    assert key not in repr(secret) and key not in repr(entry)
    text = path.read_text()
    assert key not in text and key.split("_", 2)[2] not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(text)["keys"][0]
    assert stored["hash"].startswith("$argon2id$") and stored["tenant"] == "umbrella"
    assert stored["pipelines"] == ["support"] and stored["limits"]["concurrency"] == 2
    assert KeyFile(path).keys() == [entry]


async def test_a_valid_key_is_its_entry_and_anything_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    entry, secret = KeyFile(path).create("umbrella")
    other, _ = KeyFile(path).create("acme")
    ring = KeyRing(path)
    key = secret.get_secret_value()
    assert await ring.verify(key) == entry and entry.pipelines is None and entry.may_call("content")
    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    wrong_id = key.replace(entry.id, other.id)  # another entry's id with this key's secret
    for bad in (wrong_secret, wrong_id, "", "pdm_", key + "x", f"{PREFIX}{'0' * 12}_{'a' * 43}"):
        with pytest.raises(Unauthenticated) as refused:
            await ring.verify(bad)
        assert key not in str(refused.value)


async def test_argon2_runs_once_per_key_not_once_per_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    _, secret = KeyFile(path).create("umbrella")
    ring = KeyRing(path)
    checks: list[str] = []
    real = keys_module._hasher

    class Counting:
        def __init__(self) -> None:
            self._real = real()

        def verify(self, hashed: str, presented: str) -> bool:
            checks.append(presented)
            return bool(self._real.verify(hashed, presented))

    monkeypatch.setattr(keys_module, "_hasher", Counting)
    key = secret.get_secret_value()
    for _ in range(5):
        await ring.verify(key)
    assert len(checks) == 1
    with pytest.raises(Unauthenticated):
        await ring.verify(key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert len(checks) == 2  # a wrong key is checked, not answered from memory


async def test_a_revoke_counts_from_the_next_check_even_for_a_remembered_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys = KeyFile(path)
    entry, secret = keys.create("umbrella")
    ring = KeyRing(path)
    assert await ring.verify(secret.get_secret_value()) == entry
    revoked = keys.revoke(entry.id)
    assert revoked.revoked_ms is not None and keys.revoke(entry.id) == revoked  # twice is once
    with pytest.raises(Unauthenticated, match=f"API key {entry.id} was revoked"):
        await ring.verify(secret.get_secret_value())
    assert ring.active() == [] and ring.keys() == [revoked]
    second, again = keys.create("umbrella")
    assert keys.revoke(again.get_secret_value()).id == second.id  # the key itself names its id
    path.unlink()
    with pytest.raises(Unauthenticated):
        await ring.verify(secret.get_secret_value())
    with pytest.raises(ConfigError, match="podium keys list"):
        keys.revoke("nope")


def test_what_a_key_is_made_with_is_checked(tmp_path: Path) -> None:
    keys = KeyFile(tmp_path / "keys.json")
    for tenant in ("", "a b", "x" * 129, "é"):
        with pytest.raises(ConfigError, match="podium-tenant"):
            keys.create(tenant)
    with pytest.raises(ConfigError, match="name at least one"):
        keys.create("umbrella", [])
    with pytest.raises(ConfigError, match="not a pipeline name"):
        keys.create("umbrella", ["sup port"])
    for bad in ({"rate_per_s": 0}, {"burst": 0}, {"concurrency": 0}):
        with pytest.raises(ConfigError):
            Limits(**bad)  # type: ignore[arg-type]
    assert not (tmp_path / "keys.json").exists()


def test_rates_read_per_second_minute_or_hour() -> None:
    assert parse_rate("10/s") == 10 and parse_rate("120/min") == 2 and parse_rate("3600/h") == 1
    assert parse_rate("2.5") == 2.5
    for bad in ("0/s", "-1/s", "ten/s", "5/day", "", "/s"):
        with pytest.raises(ConfigError, match="N/s, N/min or N/h"):
            parse_rate(bad)
    assert Limits(rate_per_s=0.5).capacity == 1 and Limits(rate_per_s=20).capacity == 20
    assert Limits(rate_per_s=20, burst=3).capacity == 3


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"keys": 1}',
        '{"keys": [{"id": "x"}]}',
        '{"keys": [{"id": "abcdefabcdef", "tenant": "t", '
        '"pipelines": null, "created_ms": 1, "hash": "plain"}]}',
    ],
)
async def test_a_file_that_is_not_podiums_is_refused_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=str(path)):
        KeyFile(path).keys()
    with pytest.raises(ConfigError, match=str(path)):
        await KeyRing(path).verify(f"{PREFIX}{'a' * 12}_{'a' * 43}")


async def test_a_burst_of_first_requests_shares_one_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    path = tmp_path / "keys.json"
    entry, secret = KeyFile(path).create("umbrella")
    ring = KeyRing(path)
    checks: list[str] = []
    real = keys_module._hasher

    class Counting:
        def __init__(self) -> None:
            self._real = real()

        def verify(self, hashed: str, presented: str) -> bool:
            checks.append(presented)
            return bool(self._real.verify(hashed, presented))

    monkeypatch.setattr(keys_module, "_hasher", Counting)
    found = await asyncio.gather(*(ring.verify(secret.get_secret_value()) for _ in range(20)))
    assert found == [entry] * 20 and len(checks) == 1


async def test_a_key_never_reaches_a_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    path = tmp_path / "keys.json"
    entry, secret = KeyFile(path).create("umbrella")
    key = secret.get_secret_value()
    ring = KeyRing(path)
    await ring.verify(key)
    for bad in (key[:-1] + ("A" if key[-1] != "A" else "B"), key + "x"):
        with pytest.raises(Unauthenticated):
            await ring.verify(bad)
    path.chmod(0o644)  # warned about, naming the file, not its keys
    KeyFile(path).revoke(entry.id)
    path.chmod(0o644)
    with pytest.raises(Unauthenticated):
        await ring.verify(key)
    assert "chmod 600" in caplog.text
    assert key[len(PREFIX) + 13 :] not in caplog.text + repr(ring.keys())


def test_a_newer_file_and_a_read_only_place_are_refused_saying_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"version": 2, "keys": []}')
    with pytest.raises(ConfigError, match="is version 2; this podium reads 1"):
        KeyFile(path).keys()
    not_a_folder = tmp_path / "a-file"  # fails for root too, unlike a chmod
    not_a_folder.write_text("")
    with pytest.raises(ConfigError, match="cannot write the API keys file"):
        KeyFile(not_a_folder / "keys.json").create("umbrella")


async def test_a_flood_of_wrong_secrets_is_capped_and_the_right_key_still_gets_in(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "keys.json"
    entry, secret = KeyFile(path).create("umbrella")
    ring = KeyRing(path, hashing=1, pending=4)
    right = secret.get_secret_value()
    key_id = right.split("_")[1]
    wrong = [f"{PREFIX}{key_id}_{'x' * 40}{n:03d}" for n in range(12)]
    outcomes = await asyncio.gather(*(ring.verify(w) for w in wrong), return_exceptions=True)
    throttled = [o for o in outcomes if isinstance(o, Throttled)]
    # Four checks were let in (all wrong), the other eight answered 429 without hashing.
    assert len(throttled) == 8 and all(o.retry_after_s > 0 for o in throttled)
    assert sum(isinstance(o, Unauthenticated) for o in outcomes) == 4
    assert await ring.verify(right) == entry  # the queue is empty again
