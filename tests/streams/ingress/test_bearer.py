"""Bearer JWTs against a JWKS made in the test (RSA and EC keys from cryptography): what is accepted,
every way a token is refused, a JWKS served over HTTP, and a JWT caller through the real gateway."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from streams.config import Settings, load_settings
from streams.errors import ConfigError, Forbidden, Unauthenticated
from streams.ingress.auth import Authenticator
from streams.ingress.bearer import BearerSettings, BearerVerifier, Identity
from streams.ingress.http import create_app
from streams.ingress.keys import Limits
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from tests.streams.ingress.test_http import serving
from tests.streams.ingress.test_http_auth import ENTRY, gateway_project

ISSUER, AUDIENCE = "https://id.example.com/", "podium-gateway"


class Provider:
    """An identity provider of the test's own: an RSA and an EC signing key and its JWKS."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        keys = [
            {
                **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key())),
                "kid": "r1",
                "alg": "RS256",
            },
            {
                **json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key())),
                "kid": "e1",
                "alg": "ES256",
            },
        ]
        self.jwks = {"keys": [{**k, "use": "sig"} for k in keys]}

    def token(self, kid: str = "r1", key: Any = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "exp": now + 300,
            "tenant": "umbrella",
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        signer, alg = (self.ec, "ES256") if kid == "e1" else (self.rsa, "RS256")
        return jwt.encode(body, key or signer, algorithm=alg, headers={"kid": kid})


def unsigned(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None = None) -> str:
    """A token PyJWT would not make: alg none, or HS256 keyed by a public key (key confusion)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(claims)}"
    if secret is None:
        return f"{signing_input}."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.fixture(scope="module")
def provider() -> Provider:
    return Provider()


def verifier_for(tmp_path: Path, provider: Provider, **options: Any) -> BearerVerifier:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(provider.jwks))
    return BearerVerifier(BearerSettings(str(path), ISSUER, AUDIENCE, **options))


async def test_a_valid_token_names_its_subject_tenant_and_pipelines(
    tmp_path: Path, provider: Provider
) -> None:
    verifier = verifier_for(tmp_path, provider)
    assert await verifier.verify(provider.token()) == Identity("user-1", "umbrella", None)
    assert await verifier.verify(provider.token("e1", pipelines="support billing")) == Identity(
        "user-1", "umbrella", ("support", "billing")
    )
    assert (await verifier.verify(provider.token(pipelines=["content"]))).pipelines == ("content",)
    named = verifier_for(tmp_path, provider, tenant_claim="https://example.com/org", pipelines_claim="scp")
    token = provider.token(**{"https://example.com/org": "acme", "scp": "support"})
    assert await named.verify(token) == Identity("user-1", "acme", ("support",))


async def test_every_bad_token_is_refused_saying_why(tmp_path: Path, provider: Provider) -> None:
    verifier = verifier_for(tmp_path, provider)
    now = int(time.time())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = provider.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "tenant": "umbrella"}
    for token, says in (
        (provider.token(exp=now - 3600), "expired"),
        (provider.token(aud="someone-else"), "not for this gateway"),
        (provider.token(iss="https://evil.example.com/"), "not from the issuer"),
        (provider.token(kid="r9", key=stranger), "key 'r9' is not in the JWKS"),
        (provider.token(kid="r1", key=stranger), "Signature verification failed"),
        (provider.token(exp=None), 'missing the "exp" claim'),
        (unsigned({"alg": "none", "kid": "r1"}, claims), "'none' are not accepted"),
        (unsigned({"alg": "HS256", "kid": "r1"}, claims, public_pem), "'HS256' are not accepted"),
        (unsigned({"alg": "ES256", "kid": "r1"}, claims), "does not match the key's algorithm"),
        ("not.a.jwt", "not a JWT"),
    ):
        with pytest.raises(Unauthenticated, match=says):
            await verifier.verify(token)
    for token, says in (
        (provider.token(tenant=None), "no usable 'tenant' claim"),
        (provider.token(tenant="has space"), "no usable 'tenant' claim"),
        (provider.token(pipelines={"support": True}), "pipelines claim"),
    ):
        with pytest.raises(Forbidden, match=says):
            await verifier.verify(token)


async def test_a_rotated_jwks_file_counts_from_the_next_token(tmp_path: Path, provider: Provider) -> None:
    verifier = verifier_for(tmp_path, provider)
    assert await verifier.verify(provider.token("e1"))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": provider.jwks["keys"][:1]}))  # e1 retired
    with pytest.raises(Unauthenticated, match="key 'e1' is not in the JWKS"):
        await verifier.verify(provider.token("e1"))
    assert await verifier.verify(provider.token("r1"))


def test_jwt_settings_are_checked_at_start(tmp_path: Path) -> None:
    def settings(**env: str) -> Settings:
        return load_settings(PODIUM_HOME=str(tmp_path), **env)

    assert BearerSettings.from_settings(settings()) is None
    with pytest.raises(ConfigError, match="set PODIUM_JWT_ISSUER and PODIUM_JWT_AUDIENCE too"):
        BearerSettings.from_settings(settings(PODIUM_JWT_JWKS="jwks.json"))
    base = {"PODIUM_JWT_JWKS": "jwks.json", "PODIUM_JWT_ISSUER": ISSUER, "PODIUM_JWT_AUDIENCE": AUDIENCE}
    for algorithms in ("none", "RS256,HS256", " , "):
        with pytest.raises(ConfigError, match="none and HS\\* are never accepted"):
            BearerSettings.from_settings(settings(**base, PODIUM_JWT_ALGORITHMS=algorithms))
    with pytest.raises(ConfigError, match="PyJWT knows no XX512"):
        BearerSettings.from_settings(settings(**base, PODIUM_JWT_ALGORITHMS="RS256,XX512"))
    with pytest.raises(ConfigError, match="over https://"):
        BearerSettings.from_settings(settings(**{**base, "PODIUM_JWT_JWKS": "http://id.example.com/jwks"}))
    chosen = BearerSettings.from_settings(settings(**base, PODIUM_JWT_ALGORITHMS="ES256, PS256"))
    assert chosen is not None and chosen.algorithms == ("ES256", "PS256")
    with pytest.raises(ConfigError, match="not a readable JWKS"):
        BearerVerifier(chosen)  # jwks.json does not exist
    assert chosen.limits == Limits()
    limited = BearerSettings.from_settings(
        settings(**base, PODIUM_JWT_RATE="120/min", PODIUM_JWT_CONCURRENCY="3")
    )
    assert limited is not None and limited.limits == Limits(rate_per_s=2, concurrency=3)
    with pytest.raises(ConfigError, match="PODIUM_JWT_RATE: a rate reads"):
        BearerSettings.from_settings(settings(**base, PODIUM_JWT_RATE="lots"))


async def test_a_jwt_caller_is_limited_per_subject(tmp_path: Path, provider: Provider) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(provider.jwks))
    bearer = BearerVerifier(BearerSettings(str(path), ISSUER, AUDIENCE, limits=Limits(concurrency=2)))
    caller = await Authenticator(None, bearer).identify(None, provider.token(sub="ana"))
    assert caller.id == "jwt:ana" and caller.tenant == "umbrella" and caller.limits.concurrency == 2


async def test_a_jwks_url_is_fetched_and_a_jwt_caller_publishes_for_its_tenant(
    broker_settings: Settings, cluster: Cluster, unique: str, tmp_path: Path, provider: Provider
) -> None:
    fetched: list[str] = []

    async def jwks(request: Any) -> JSONResponse:
        fetched.append(request.url.path)
        return JSONResponse(provider.jwks)

    project = await gateway_project(broker_settings, cluster)
    async with serving(Starlette(routes=[Route("/.well-known/jwks.json", jwks)])) as idp:  # type: ignore[arg-type]
        bearer = BearerVerifier(BearerSettings(f"{idp}/.well-known/jwks.json", ISSUER, AUDIENCE))
        app = create_app(project, [ENTRY], cluster=cluster, auth=Authenticator(None, bearer))
        async with (
            Follower(cluster, ["support.requests"]) as follower,
            serving(app) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):

            async def post(token: str) -> httpx.Response:
                return await client.post(
                    "/v1/support/requests",
                    json={"body": "hi"},
                    headers={"Authorization": f"Bearer {token}"},
                    params={"wait_s": 0},
                )

            accepted = await post(provider.token(tenant=unique))
            assert accepted.status_code == 202, accepted.text
            rid = accepted.json()["request_id"]
            (arrival,) = (await follower.collect({rid}, timeout_s=30))[rid]
            assert ("podium-tenant", unique.encode()) in arrival.headers
            expired = await post(provider.token(tenant=unique, exp=int(time.time()) - 3600))
            assert expired.status_code == 401 and "expired" in expired.json()["detail"]
            assert expired.headers["www-authenticate"] == 'Bearer realm="podium"'
            outside = await post(provider.token(tenant=unique, pipelines="billing"))
            assert outside.status_code == 403 and "may call billing, not support" in outside.json()["detail"]
            key_like = await post("pdm_0123456789ab_" + "a" * 43)
            assert key_like.status_code == 401 and "takes no API keys" in key_like.json()["detail"]
        assert fetched == ["/.well-known/jwks.json"]  # cached: one fetch for every token
