"""The HTTP gateway's API keys: issued by ``podium keys create``, kept hashed in one file, checked
on every request.

A key reads ``pdm_<id>_<secret>``. The ``id`` (12 hex characters) names its entry in the file, so
a request finds the one hash to check by a dictionary lookup instead of trying every entry; the
``secret`` (32 random bytes) is what proves it. The file (``PODIUM_API_KEYS_FILE``, else
``PODIUM_HOME/keys.json``, mode 0600) holds an argon2id hash of each key, its tenant, the
pipelines it may call, its limits, when it was made and when revoked: never the key itself,
which is printed once when it is made.

:class:`KeyFile` edits the file (create, list, revoke; a lock file serialises two commands and a
rename makes each write whole). :class:`KeyRing` checks presented keys against it for
``podium serve``: it rereads the file when it changed (one ``stat`` per request, so a revoke
counts from the next request) and remembers a key it verified, so argon2 runs once per key and
process rather than once per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from streams.contracts.headers import is_tenant, now_ms
from streams.errors import ConfigError, Throttled, Unauthenticated

__all__ = ["NO_LIMITS", "PREFIX", "ApiKey", "KeyFile", "KeyRing", "Limits", "parse_rate"]

log = logging.getLogger(__name__)

PREFIX = "pdm_"
_KEY = re.compile(r"^pdm_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_PIPELINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION = 1
# OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane), not argon2-cffi's default (64 MiB,
# 3 passes, 4 lanes: 0.6 s per check on a busy 2-core machine). A key's secret is 256 random
# bits, so no dictionary helps whoever steals the file and a slower hash buys nothing; what the
# hash keeps out is a stolen file working as a list of keys. The parameters are written into
# each hash, so raising them later leaves the existing keys valid.
_TIME_COST, _MEMORY_KIB, _LANES = 2, 19 * 1024, 1


@dataclass(frozen=True)
class Limits:
    """What one key may spend: ``rate_per_s`` requests a second on average with bursts of up to
    ``burst``, and ``concurrency`` requests in flight at once. None: no such limit."""

    rate_per_s: float | None = None
    burst: int | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        if self.rate_per_s is not None and not self.rate_per_s > 0:
            raise ConfigError(f"a rate limit must be above zero, not {self.rate_per_s}")
        if self.burst is not None and self.burst < 1:
            raise ConfigError(f"a burst must be at least 1, not {self.burst}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigError(f"a concurrency limit must be at least 1, not {self.concurrency}")

    @property
    def capacity(self) -> float:
        """The bucket's size: ``burst``, else one second's worth (at least one request)."""
        if self.burst is not None:
            return float(self.burst)
        return max(1.0, self.rate_per_s or 1.0)


NO_LIMITS = Limits()


_PER = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_rate(text: str) -> float:
    """``10/s``, ``300/min``, ``1000/h`` (or a bare number: per second) as requests per second."""
    count, _, per = text.strip().partition("/")
    try:
        n = float(count)
    except ValueError:
        n = -1.0
    if n <= 0 or (per and per not in _PER):
        raise ConfigError(f"a rate reads N/s, N/min or N/h (N above zero), not {text!r}")
    return n / _PER[per or "s"]


@dataclass(frozen=True)
class ApiKey:
    """One entry of the keys file (the hash, never the key; left out of its repr)."""

    id: str
    tenant: str
    pipelines: tuple[str, ...] | None  # None: every pipeline the gateway fronts
    limits: Limits
    created_ms: int
    revoked_ms: int | None = None
    hash: str = field(default="", repr=False)

    def may_call(self, pipeline: str) -> bool:
        return self.pipelines is None or pipeline in self.pipelines

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "pipelines": list(self.pipelines) if self.pipelines is not None else None}

    @classmethod
    def from_json(cls, raw: Any, where: str) -> ApiKey:
        try:
            pipelines = raw["pipelines"]
            key = cls(
                id=str(raw["id"]),
                tenant=str(raw["tenant"]),
                pipelines=None if pipelines is None else tuple(str(p) for p in pipelines),
                limits=Limits(**raw.get("limits") or {}),
                created_ms=int(raw["created_ms"]),
                revoked_ms=None if raw.get("revoked_ms") is None else int(raw["revoked_ms"]),
                hash=str(raw["hash"]),
            )
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ConfigError(f"{where}: not a key entry ({type(exc).__name__}: {exc})") from exc
        if not re.fullmatch(r"[0-9a-f]{12}", key.id) or not key.hash.startswith("$argon2"):
            raise ConfigError(f"{where}: not a key entry (id or hash malformed)")
        return key


def _hasher() -> Any:
    # argon2-cffi costs 0.1 s to import (cffi): only the commands that hash load it.
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=_TIME_COST, memory_cost=_MEMORY_KIB, parallelism=_LANES)


def _read(path: Path) -> list[ApiKey]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"cannot read the API keys file {path}: {exc}") from exc
    try:
        raw = json.loads(text)
        entries = raw["keys"]
        if not isinstance(entries, list):
            raise TypeError("keys is not a list")
        version = raw.get("version", _VERSION)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"the API keys file {path} is not podium's ({exc}); edit it with `podium keys`, not by hand"
        ) from exc
    if version != _VERSION:
        raise ConfigError(f"the API keys file {path} is version {version!r}; this podium reads {_VERSION}")
    keys = [ApiKey.from_json(e, f"{path}, key {i + 1}") for i, e in enumerate(entries)]
    ids = [k.id for k in keys]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: a key id appears twice")
    return keys


class KeyFile:
    """Create, list and revoke the keys of one file (the ``podium keys`` commands)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def keys(self) -> list[ApiKey]:
        return _read(self.path)

    def create(
        self, tenant: str, pipelines: Sequence[str] | None = None, limits: Limits | None = None
    ) -> tuple[ApiKey, SecretStr]:
        """A new key: its entry (written to the file) and the key itself, shown only now."""
        if not is_tenant(tenant):
            raise ConfigError(
                f"tenant {tenant!r}: 1 to 128 characters among letters, digits and . _ : @ - "
                "(what the podium-tenant header carries)"
            )
        chosen = None if pipelines is None else tuple(dict.fromkeys(pipelines))
        for name in chosen or ():
            if not _PIPELINE.fullmatch(name):
                raise ConfigError(f"{name!r} is not a pipeline name")
        if chosen == ():
            raise ConfigError("--pipelines names none: name at least one, or leave it out for all")
        with self._locked():
            keys = _read(self.path)
            taken = {k.id for k in keys}
            key_id = secrets.token_hex(6)
            while key_id in taken:
                key_id = secrets.token_hex(6)
            secret = secrets.token_urlsafe(32)  # 43 characters of 256 random bits
            text = f"{PREFIX}{key_id}_{secret}"
            entry = ApiKey(key_id, tenant, chosen, limits or Limits(), now_ms(), hash=_hasher().hash(text))
            self._write([*keys, entry])
        return entry, SecretStr(text)

    def revoke(self, key_id: str) -> ApiKey:
        """``key_id``: the id, or the key itself (its id is in it)."""
        if (whole := _KEY.fullmatch(key_id)) is not None:
            key_id = whole.group(1)
        with self._locked():
            keys = _read(self.path)
            found = next((k for k in keys if k.id == key_id), None)
            if found is None:
                raise ConfigError(f"no key {key_id!r} in {self.path}: `podium keys list` shows the ids")
            if found.revoked_ms is not None:
                return found
            revoked = replace(found, revoked_ms=now_ms())
            self._write([revoked if k.id == key_id else k for k in keys])
        return revoked

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: read, change and rename under a lock beside the file."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the API keys file {self.path} ({exc.strerror}): run `podium keys` where "
                "it can be written (a read-only mount is for `podium serve` to read)"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _write(self, keys: list[ApiKey]) -> None:
        text = json.dumps({"version": _VERSION, "keys": [k.as_json() for k in keys]}, indent=2) + "\n"
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)  # a stale one would keep its own mode, not 0600
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)  # readers see the old file or the new one, never half


class KeyRing:
    """Checks a presented key against the file for ``podium serve``.

    :meth:`verify` stats the file on every call and rereads it when it changed, so a revoked key
    fails from the next request on. A key verified once is remembered by its SHA-256 (in memory,
    with the entry's hash): argon2 takes tens of milliseconds by design, and paying that on
    every request would make the gateway's hot path the hash. A revoked or removed entry is
    checked before the memory, so remembering never outlives a revoke. Keys that fail are not
    remembered; their argon2 runs in a thread, at most ``hashing`` at once, so a flood of wrong
    keys slows only other first checks, never the event loop or keys already verified; and at
    most ``pending`` checks wait at once (more is a 429), so a flood of wrong secrets for a known
    key id holds neither memory nor a queue that real first checks would wait behind. A key id
    is not a secret (``keys list`` shows it): an unknown one is refused without hashing.
    """

    def __init__(self, path: Path, hashing: int = 2, pending: int = 64) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._keys: dict[str, ApiKey] = {}
        self._verified: dict[str, bytes] = {}  # entry hash -> SHA-256 of the key that matched it
        self._hashing = asyncio.Semaphore(hashing)
        self._pending = pending
        self._hasher: Any = None
        # Checks under way, so the many first requests of a client that starts with a burst
        # share one argon2 run instead of queueing one each.
        self._checking: dict[tuple[str, bytes], asyncio.Future[bool]] = {}

    def keys(self) -> list[ApiKey]:
        self._refresh()
        return list(self._keys.values())

    def active(self) -> list[ApiKey]:
        return [k for k in self.keys() if k.revoked_ms is None]

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._keys:
                log.warning("the API keys file %s is gone: every key is refused", self.path)
            self._seen, self._keys, self._verified = None, {}, {}
            return
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen == self._seen:
            return
        keys = {k.id: k for k in _read(self.path)}  # a ConfigError keeps nothing: refuse, loudly
        if st.st_mode & 0o077:
            log.warning("the API keys file %s can be read by others (chmod 600 it)", self.path)
        self._seen, self._keys = seen, keys
        hashes = {k.hash for k in keys.values()}
        self._verified = {h: d for h, d in self._verified.items() if h in hashes}

    async def verify(self, presented: str) -> ApiKey:
        """The entry of a valid, unrevoked key, else :class:`Unauthenticated` (never naming the key)."""
        match = _KEY.fullmatch(presented)
        if match is None:
            raise Unauthenticated("not a podium API key (they read pdm_<id>_<secret>)")
        self._refresh()
        entry = self._keys.get(match.group(1))
        if entry is None:
            raise Unauthenticated("invalid API key")
        digest = hashlib.sha256(presented.encode()).digest()
        remembered = self._verified.get(entry.hash)
        if remembered is None or not hmac.compare_digest(remembered, digest):
            if not await self._check(entry, presented, digest):
                raise Unauthenticated("invalid API key")
            self._verified[entry.hash] = digest
        if entry.revoked_ms is not None:
            raise Unauthenticated(f"API key {entry.id} was revoked; ask for a new one (`podium keys create`)")
        return entry

    async def _check(self, entry: ApiKey, presented: str, digest: bytes) -> bool:
        under_way = (entry.hash, digest)
        check = self._checking.get(under_way)
        if check is None:
            if len(self._checking) >= self._pending:
                raise Throttled("too many API keys being checked at once; try again shortly", 1.0)
            check = asyncio.ensure_future(self._matches(entry, presented))
            self._checking[under_way] = check

            def done(finished: asyncio.Future[bool]) -> None:
                self._checking.pop(under_way, None)
                if not finished.cancelled():
                    finished.exception()  # retrieved here too: every waiter may have gone

            check.add_done_callback(done)
        # Shielded: one caller giving up does not cancel the check the others wait for.
        return await asyncio.shield(check)

    async def _matches(self, entry: ApiKey, presented: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError

        if self._hasher is None:
            self._hasher = _hasher()
        async with self._hashing:
            try:
                return bool(await asyncio.to_thread(self._hasher.verify, entry.hash, presented))
            except VerificationError:
                return False
            except InvalidHashError as exc:
                raise ConfigError(f"{self.path}: the hash of key {entry.id} is not argon2") from exc
