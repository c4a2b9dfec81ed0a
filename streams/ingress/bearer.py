"""Bearer JWTs from an identity provider, for teams that have one (``PODIUM_JWT_JWKS``).

A token is accepted when, in this order: its header names an algorithm of
``PODIUM_JWT_ALGORITHMS`` (``none`` and the shared-secret ``HS*`` never are: a JWKS publishes
public keys), its ``kid`` is a key of the JWKS (a file, reread when it changes, or an ``https://``
URL, fetched through PyJWT's client, which caches the set and refetches it at most every 30 s
for a ``kid`` it does not know), the signature verifies with that key and that key's own
algorithm, it has not expired (30 s of leeway for clocks), and its ``iss`` and ``aud`` are the
configured ones. The tenant is the claim ``PODIUM_JWT_TENANT_CLAIM`` names, the pipelines the
one ``PODIUM_JWT_PIPELINES_CLAIM`` names (a list, or names separated by spaces like OAuth
scopes; absent: every pipeline, as a key made without ``--pipelines``). A claim name is taken
whole, dots and slashes included (``https://example.com/tenant``, as Auth0 names them).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt

from streams.config import Settings
from streams.contracts.headers import is_tenant
from streams.errors import ConfigError, Forbidden, Unauthenticated
from streams.ingress.keys import NO_LIMITS, Limits, parse_rate

__all__ = ["BearerSettings", "BearerVerifier", "Identity"]

LEEWAY_S = 30
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
FETCH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class BearerSettings:
    jwks: str
    issuer: str
    audience: str
    tenant_claim: str = "tenant"
    pipelines_claim: str = "pipelines"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    limits: Limits = NO_LIMITS  # each subject's (PODIUM_JWT_RATE, PODIUM_JWT_CONCURRENCY)

    @classmethod
    def from_settings(cls, settings: Settings) -> BearerSettings | None:
        """None without ``PODIUM_JWT_JWKS``; a ConfigError naming what is missing or refused."""
        if not settings.jwt_jwks:
            return None
        needed = (("PODIUM_JWT_ISSUER", settings.jwt_issuer), ("PODIUM_JWT_AUDIENCE", settings.jwt_audience))
        missing = [name for name, value in needed if not value]
        if missing:
            raise ConfigError(
                f"PODIUM_JWT_JWKS is set, so set {' and '.join(missing)} too: a token is only "
                "accepted from the issuer and for the audience they name"
            )
        algorithms = tuple(a.strip() for a in settings.jwt_algorithms.split(",") if a.strip())
        refused = [a for a in algorithms if a.lower() == "none" or a.upper().startswith("HS")]
        if refused or not algorithms:
            raise ConfigError(
                f"PODIUM_JWT_ALGORITHMS={settings.jwt_algorithms!r}: name public-key algorithms "
                "(RS256, ES256, PS256, EdDSA...); none and HS* are never accepted"
            )
        unknown = [a for a in algorithms if a not in jwt.algorithms.get_default_algorithms()]
        if unknown:
            raise ConfigError(f"PODIUM_JWT_ALGORITHMS: PyJWT knows no {', '.join(unknown)}")
        if settings.jwt_jwks.startswith("http://") and urlsplit(settings.jwt_jwks).hostname not in _LOOPBACK:
            raise ConfigError(
                f"PODIUM_JWT_JWKS={settings.jwt_jwks}: fetch the keys over https:// (plain http lets "
                "anyone on the way swap them for their own; it is accepted on loopback only)"
            )
        assert settings.jwt_issuer is not None and settings.jwt_audience is not None
        return cls(
            jwks=settings.jwt_jwks,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            tenant_claim=settings.jwt_tenant_claim,
            pipelines_claim=settings.jwt_pipelines_claim,
            algorithms=algorithms,
            limits=Limits(
                rate_per_s=None if settings.jwt_rate is None else _rate(settings.jwt_rate),
                concurrency=settings.jwt_concurrency,
            ),
        )


@dataclass(frozen=True)
class Identity:
    """Who a valid token says is calling."""

    subject: str
    tenant: str
    pipelines: tuple[str, ...] | None


class BearerVerifier:
    """Checks bearer JWTs against one JWKS (see the module docstring for the order)."""

    def __init__(self, settings: BearerSettings) -> None:
        self.settings = settings
        self._remote = settings.jwks.startswith(("https://", "http://"))
        self._client = (
            jwt.PyJWKClient(settings.jwks, cache_jwk_set=True, lifespan=300, timeout=FETCH_TIMEOUT_S)
            if self._remote
            else None
        )
        self._seen: tuple[int, int, int] | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        if not self._remote:
            self._reload()  # a missing or broken file fails at start, naming it

    def _reload(self) -> None:
        path = Path(self.settings.jwks)
        try:
            st = os.stat(path)
            if (st.st_ino, st.st_mtime_ns, st.st_size) == self._seen:
                return
            jwk_set = jwt.PyJWKSet.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, jwt.PyJWKSetError) as exc:
            raise ConfigError(f"PODIUM_JWT_JWKS={path}: not a readable JWKS ({exc})") from exc
        self._keys = {k.key_id: k for k in jwk_set.keys}
        self._seen = (st.st_ino, st.st_mtime_ns, st.st_size)

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        where = self.settings.jwks
        if self._client is not None:
            if kid is None:
                raise Unauthenticated("the token names no key (kid): this gateway's JWKS needs one")
            try:
                return await asyncio.to_thread(self._client.get_signing_key, kid)
            except jwt.PyJWKClientConnectionError as exc:
                raise ConfigError(f"cannot fetch the JWKS at {where}: {exc}") from exc
            except jwt.PyJWKClientError as exc:
                raise Unauthenticated(f"the token's key {kid!r} is not in the JWKS at {where}") from exc
        self._reload()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated(f"the token's key {kid!r} is not in the JWKS of this gateway")
        return key

    async def verify(self, token: str) -> Identity:
        """The caller a valid token names; :class:`Unauthenticated` for a token that is not valid,
        :class:`Forbidden` for a valid one without a usable tenant."""
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"not a JWT ({exc})") from exc
        alg = header.get("alg")
        if alg not in s.algorithms:
            raise Unauthenticated(
                f"tokens signed with {alg!r} are not accepted here (accepted: {', '.join(s.algorithms)})"
            )
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else None)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=s.audience,
                issuer=s.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the token has expired: get a new one from your identity provider") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated(f"the token is not for this gateway (audience {s.audience!r})") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated(f"the token is not from the issuer trusted here ({s.issuer!r})") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        tenant = claims.get(s.tenant_claim)
        if not isinstance(tenant, str) or not is_tenant(tenant):
            raise Forbidden(
                f"the token carries no usable {s.tenant_claim!r} claim (a tenant: 1 to 128 letters, "
                "digits or . _ : @ -): ask your identity provider to add it"
            )
        return Identity(str(claims.get("sub") or tenant), tenant, _pipelines(claims.get(s.pipelines_claim)))


def _rate(text: str) -> float:
    try:
        return parse_rate(text)
    except ConfigError as exc:
        raise ConfigError(f"PODIUM_JWT_RATE: {exc}") from exc


def _pipelines(claim: Any) -> tuple[str, ...] | None:
    if claim is None:
        return None
    if isinstance(claim, str):
        return tuple(claim.split())
    if isinstance(claim, list) and all(isinstance(p, str) for p in claim):
        return tuple(claim)
    raise Forbidden("the token's pipelines claim is neither a list of names nor names separated by spaces")
