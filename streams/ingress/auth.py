"""Who calls the HTTP gateway: a FastAPI dependency every route but ``/healthz`` takes.

A caller presents one credential:

- ``X-API-Key: pdm_...`` or ``Authorization: Bearer pdm_...``: a podium key
  (:mod:`streams.ingress.keys`, made by ``podium keys create``);
- ``Authorization: Bearer <JWT>``: a token of the team's identity provider, when
  ``PODIUM_JWT_JWKS`` is set (:mod:`streams.ingress.bearer`).

What a request gets, in the order it is checked:

1. no credential, or one that is not valid: **401** with ``WWW-Authenticate: Bearer``, before
   the body is read (:meth:`Authenticator.install` adds the middleware that checks it first, so a
   caller without a credential cannot make the gateway read and parse its body);
2. a pipeline route outside the credential's pipelines: **403**;
3. over the caller's concurrency or rate (:mod:`streams.ingress.limits`): **429** with
   ``Retry-After``; an admitted request holds its slot until its response is sent, the last
   server-sent event of a stream included;
4. the tenant is the credential's: a body whose ``tenant`` differs is **403**, a body without one
   gets the credential's, and the record is published with it in ``podium-tenant``;
5. ``GET /v1/requests/{id}`` and the approvals answer about the caller's tenant (and pipelines)
   only: another tenant's request is as unknown as one never made (404), never a 403 that would
   confirm it exists.

``podium serve --insecure-no-auth`` builds an :meth:`Authenticator.open` instead, which lets
everyone in as an anonymous caller of no tenant (the gateway as it was before keys).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from streams.config import Settings
from streams.contracts.headers import parse_headers
from streams.errors import AccessError, ConfigError, Forbidden, Throttled, Unauthenticated
from streams.ingress.bearer import BearerSettings, BearerVerifier
from streams.ingress.keys import NO_LIMITS, PREFIX, KeyRing, Limits
from streams.ingress.limits import Limiter, retry_after_header

__all__ = ["ACCESS_RESPONSES", "Authenticator", "Caller", "bind_tenant", "problem", "tenant_of"]

log = logging.getLogger(__name__)

REALM = 'Bearer realm="podium"'

ACCESS_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no credential, or one that is not valid (WWW-Authenticate says how to send one)"},
    403: {"description": "the credential may not call this pipeline, or the body names another tenant"},
    429: {"description": "over the credential's rate or concurrency limit (Retry-After says when to retry)"},
}

_API_KEY = APIKeyHeader(
    name="X-API-Key",
    scheme_name="podiumKey",
    description="A podium API key (`podium keys create --tenant T`); "
    "also accepted as `Authorization: Bearer pdm_...`.",
    auto_error=False,
)
_BEARER = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="podium key (pdm_...) or JWT",
    description="A podium API key, or with PODIUM_JWT_JWKS a JWT of the identity provider "
    "(issuer, audience and expiry checked; the tenant from its claim).",
    auto_error=False,
)
_KEY_HEADER = Security(_API_KEY)
_AUTHORIZATION = Security(_BEARER)


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: ``id`` names it for its limits and logs (never the secret)."""

    id: str
    tenant: str | None  # None: the open gateway's anonymous caller, who sees every tenant
    pipelines: frozenset[str] | None  # None: every pipeline
    limits: Limits = NO_LIMITS

    def may_call(self, pipeline: str) -> bool:
        return self.pipelines is None or pipeline in self.pipelines

    def sees(self, tenant: str | None) -> bool:
        """Whether what a tenant's request did is this caller's to see."""
        return self.tenant is None or tenant == self.tenant


ANONYMOUS = Caller("anonymous", None, None)


def tenant_of(headers: list[tuple[str, bytes]]) -> str | None:
    """The ``podium-tenant`` of a record's headers (a malformed one is none)."""
    return parse_headers(headers).tenant


def bind_tenant(caller: Caller, record: dict[str, Any]) -> dict[str, Any]:
    """The record with the caller's tenant (step 4); :class:`Forbidden` when it names another."""
    if caller.tenant is None or "tenant" not in record:
        return record
    given = record["tenant"]
    if given not in (None, "") and given != caller.tenant:
        raise Forbidden(
            f"the body's tenant {given!r} is not this credential's ({caller.tenant!r}): "
            "leave tenant out (the credential's is used) or send that one"
        )
    return {**record, "tenant": caller.tenant}


def problem(exc: AccessError | ConfigError) -> HTTPException:
    """The one place an access decision becomes a status."""
    if isinstance(exc, Unauthenticated):
        return HTTPException(401, str(exc), headers={"WWW-Authenticate": REALM})
    if isinstance(exc, Forbidden):
        return HTTPException(403, str(exc))
    if isinstance(exc, Throttled):
        return HTTPException(429, str(exc), headers={"Retry-After": retry_after_header(exc.retry_after_s)})
    # The gateway's own keys file or JWKS is unreadable: the operator's to fix, said in the log.
    log.error("cannot check credentials: %s", exc)
    return HTTPException(500, "the gateway cannot check credentials now (its log says why)")


class Authenticator:
    """The credentials a gateway accepts and the limits it keeps per caller."""

    def __init__(
        self,
        keys: KeyRing | None,
        bearer: BearerVerifier | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        secured: bool = True,
    ) -> None:
        self.keys = keys
        self.bearer = bearer
        self.secured = secured
        self._limiter = Limiter()
        self._clock = clock

    @classmethod
    def open(cls) -> Authenticator:
        """Everyone in, as :data:`ANONYMOUS` (``--insecure-no-auth``)."""
        return cls(None, None, secured=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        """The keys file of the settings, and bearer JWTs when ``PODIUM_JWT_JWKS`` is set."""
        bearer = BearerSettings.from_settings(settings)
        return cls(KeyRing(settings.keys_path), BearerVerifier(bearer) if bearer is not None else None)

    def ready(self) -> str | None:
        """Why no caller could get in (nothing to authenticate with), else None."""
        if not self.secured or self.bearer is not None:
            return None
        if self.keys is None or not self.keys.active():
            where = self.keys.path if self.keys is not None else "the keys file"
            return (
                f"no API key in {where} and no PODIUM_JWT_JWKS, so no caller could get in: "
                "make one with `podium keys create --tenant T`, or serve without authentication "
                "with --insecure-no-auth (anyone who reaches the port spends under any tenant)"
            )
        return None

    def install(self, app: FastAPI) -> None:
        """Identify the callers of ``app``'s ``/v1/`` routes before their bodies are read."""
        if self.secured:
            app.add_middleware(_IdentifyFirst, auth=self)

    async def identify(self, api_key: str | None, bearer: str | None) -> Caller:
        """The caller a credential names (step 1)."""
        if api_key and bearer and api_key != bearer:
            raise Unauthenticated("two different credentials (X-API-Key and Authorization): send one")
        presented = api_key or bearer
        if not presented:
            raise Unauthenticated(
                "this gateway needs a credential: X-API-Key: pdm_... (or Authorization: Bearer pdm_...)"
                + (", or Authorization: Bearer <JWT>" if self.bearer is not None else "")
            )
        if presented.startswith(PREFIX) or self.bearer is None:
            if self.keys is None:
                raise Unauthenticated("this gateway takes no API keys")
            key = await self.keys.verify(presented)
            pipelines = None if key.pipelines is None else frozenset(key.pipelines)
            return Caller(f"key:{key.id}", key.tenant, pipelines, key.limits)
        identity = await self.bearer.verify(presented)
        pipelines = None if identity.pipelines is None else frozenset(identity.pipelines)
        return Caller(f"jwt:{identity.subject}", identity.tenant, pipelines, self.bearer.settings.limits)

    def dependency(self, pipeline: str | None = None) -> Callable[..., AsyncIterator[Caller]]:
        """A FastAPI dependency (declare it with ``scope="request"``, so a slot is held until the
        response is sent) yielding the :class:`Caller` of a request of ``pipeline`` (None: a
        route of no single pipeline)."""
        if not self.secured:

            async def anyone() -> AsyncIterator[Caller]:
                yield ANONYMOUS

            return anyone

        # The security parameters put the schemes on the OpenAPI page; the middleware has
        # usually identified the caller already (a gateway without it identifies here).
        async def caller(
            request: Request,
            api_key: str | None = _KEY_HEADER,
            credentials: HTTPAuthorizationCredentials | None = _AUTHORIZATION,
        ) -> AsyncIterator[Caller]:
            try:
                who: Caller | None = getattr(request.state, _STATE, None)
                if who is None:
                    who = await self.identify(api_key, credentials.credentials if credentials else None)
                if pipeline is not None and not who.may_call(pipeline):
                    allowed = ", ".join(sorted(who.pipelines or ()))
                    raise Forbidden(f"this credential may call {allowed or 'no pipeline'}, not {pipeline}")
                self._limiter.admit(who.id, who.limits, self._clock())
            except (AccessError, ConfigError) as exc:
                raise problem(exc) from None
            try:
                yield who
            finally:
                self._limiter.release(who.id, who.limits)

        return caller


_STATE = "podium_caller"


def _bearer_of(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class _IdentifyFirst:
    """ASGI middleware: step 1 for the ``/v1/`` routes, before the route reads the body; the
    caller it found goes to the route's dependency in the request's state."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            caller = await self.auth.identify(
                headers.get("x-api-key"), _bearer_of(headers.get("authorization"))
            )
        except (AccessError, ConfigError) as exc:
            refused = problem(exc)
            response = JSONResponse({"detail": refused.detail}, refused.status_code, headers=refused.headers)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[_STATE] = caller
        await self.app(scope, receive, send)
