"""Who calls `podium serve`, through a real `create_app` on the real broker: 401 without a valid
key, 403 outside its pipelines or tenant, 429 over its limits, the tenant published in
`podium-tenant`, each tenant seeing only its own requests and approvals."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from streams.config import Settings
from streams.ingress.auth import Authenticator
from streams.ingress.http import Entry, create_app
from streams.ingress.keys import KeyFile, KeyRing, Limits
from streams.kafka.admin import TopicAdmin
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.runtime.project import Project
from tests.streams.asking import APPROVALS, DECISIONS, ask, asked
from tests.streams.ingress.test_http import serving

ENTRY = Entry(
    "support", "support.requests", ("support.responses", "support.rejected"), "support.drafts.stream"
)
TOPICS = ["support.requests", "support.responses", "support.rejected", "support.drafts.stream"]


async def gateway_project(broker_settings: Settings, cluster: Cluster) -> Project:
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": cluster.bootstrap}))
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog.select([*TOPICS, APPROVALS, DECISIONS]))
    return project


def header(key: object) -> dict[str, str]:
    return {"X-API-Key": key.get_secret_value()}  # type: ignore[attr-defined]


async def test_a_request_needs_a_valid_key_and_is_published_for_the_keys_tenant(
    broker_settings: Settings, cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    project = await gateway_project(broker_settings, cluster)
    keys = KeyFile(tmp_path / "keys.json")
    mine, key = keys.create(unique)
    _, billing_only = keys.create(unique, ["billing"])
    _, other = keys.create(f"{unique}-other")
    app = create_app(project, [ENTRY], cluster=cluster, auth=Authenticator(KeyRing(keys.path)))
    text = key.get_secret_value()
    async with (
        Follower(cluster, ["support.requests"]) as follower,
        serving(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        assert (await client.get("/healthz")).status_code == 200  # open, for load balancers
        assert (await client.get("/openapi.json")).status_code == 200

        async def post(headers: dict[str, str], **body: object) -> httpx.Response:
            return await client.post(
                "/v1/support/requests", json={"body": "hi", **body}, headers=headers, params={"wait_s": 0}
            )

        wrong = text[:-2] + ("AA" if not text.endswith("AA") else "BB")
        for headers in (
            {},
            {"X-API-Key": "nope"},
            {"X-API-Key": wrong},
            {"Authorization": f"Bearer {wrong}"},
            {"Authorization": f"Basic {text}"},
        ):
            refused = await post(headers)
            assert refused.status_code == 401, (headers, refused.text)
            assert refused.headers["www-authenticate"] == 'Bearer realm="podium"'
            assert text not in refused.text and wrong not in refused.text
        for path in ("/v1/requests/x", "/v1/approvals"):
            assert (await client.get(path)).status_code == 401
        # Refused before the body is read: no 422 tells a caller without a key about the schema.
        unread = await client.post(
            "/v1/support/requests", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert unread.status_code == 401, unread.text
        two = await post({"X-API-Key": text, "Authorization": f"Bearer {wrong}"})
        assert two.status_code == 401 and "send one" in two.json()["detail"]

        outside = await post(header(billing_only))
        assert outside.status_code == 403 and "may call billing, not support" in outside.json()["detail"]
        mismatch = await post(header(key), tenant="someone-else")
        assert mismatch.status_code == 403
        assert f"'someone-else' is not this credential's ('{unique}')" in mismatch.json()["detail"]

        filled = await post(header(key))
        same = await post({"Authorization": f"Bearer {text}"}, tenant=unique)
        assert filled.status_code == same.status_code == 202, filled.text + same.text
        published = {filled.json()["request_id"], same.json()["request_id"]}
        found = await follower.collect(published, timeout_s=30)
        assert set(found) == published
        for (arrival,) in found.values():
            assert (b"podium-tenant", unique.encode()) in [(k.encode(), v) for k, v in arrival.headers]
            value = project.codec.decode("podium.support.Request", arrival.value or b"")
            assert value["tenant"] == unique
        later = await follower.poll(1.0)
        assert set(later) <= published, "a refused request was published"

        # Its own tenant's request is pending; to another tenant it is unknown, not forbidden.
        rid = filled.json()["request_id"]
        assert (await client.get(f"/v1/requests/{rid}", headers=header(key))).json()["status"] == "pending"
        hidden = await client.get(f"/v1/requests/{rid}", headers=header(other))
        assert hidden.status_code == 404

        keys.revoke(mine.id)
        revoked = await post(header(key))
        assert revoked.status_code == 401 and f"API key {mine.id} was revoked" in revoked.json()["detail"]


async def test_each_tenant_sees_and_decides_its_own_approvals_only(
    broker_settings: Settings, cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    project = await gateway_project(broker_settings, cluster)
    ours, theirs, nobodys = f"{unique}-ours", f"{unique}-theirs", f"{unique}-nobodys"
    await ask(project, asked(ours, "c1"), tenant=unique)
    await ask(project, asked(theirs, "c1"), tenant=f"{unique}x")
    await ask(project, asked(nobodys, "c1"))
    keys = KeyFile(tmp_path / "keys.json")
    mine, key = keys.create(unique)
    _, support_only = keys.create(unique, ["support"])  # the approvals are billing's
    app = create_app(project, [ENTRY], cluster=cluster, auth=Authenticator(KeyRing(keys.path)))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def listed(headers: dict[str, str]) -> list[str]:
            answer = await client.get("/v1/approvals", params={"all": "true"}, headers=headers)
            assert answer.status_code == 200, answer.text
            return [a["request_id"] for a in answer.json() if a["request_id"].startswith(unique)]

        assert await listed(header(key)) == [ours]
        assert await listed(header(support_only)) == []
        view = (await client.get("/v1/approvals", headers=header(key))).json()
        assert [a["tenant"] for a in view if a["request_id"] == ours] == [unique]
        for rid in (theirs, nobodys):
            refused = await client.post(f"/v1/approvals/{rid}", json={"approved": True}, headers=header(key))
            assert refused.status_code == 404 and f"no approval was asked for request {rid}" in refused.text
        decided = await client.post(
            f"/v1/approvals/{ours}", json={"approved": True, "by": "ana"}, headers=header(key)
        )
        assert decided.status_code == 202, decided.text
        # Signed by the key that decided, whatever name the body gives.
        assert [d["decision"]["by"] for d in decided.json()["decisions"]] == [f"ana (key:{mine.id})"]
    everyone = create_app(project, [ENTRY], cluster=cluster, auth=Authenticator.open())
    async with serving(everyone) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        seen = [a["request_id"] for a in (await client.get("/v1/approvals?all=true")).json()]
        assert {ours, theirs, nobodys} <= set(seen)  # --insecure-no-auth: one desk for all


async def test_over_its_rate_or_concurrency_a_key_gets_429_with_retry_after(
    broker_settings: Settings, cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    project = await gateway_project(broker_settings, cluster)
    keys = KeyFile(tmp_path / "keys.json")
    _, slow = keys.create(unique, limits=Limits(rate_per_s=1 / 60, burst=2))
    _, single = keys.create(unique, limits=Limits(concurrency=1))
    auth = Authenticator(KeyRing(keys.path))
    app = create_app(project, [ENTRY], cluster=cluster, auth=auth)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def post(key: object, **params: object) -> httpx.Response:
            return await client.post(
                "/v1/support/requests",
                json={"body": "hi"},
                headers=header(key),
                params={"wait_s": 0, **params},
            )

        assert [(await post(slow)).status_code for _ in range(2)] == [202, 202]
        limited = await post(slow)
        assert limited.status_code == 429 and "rate limit" in limited.json()["detail"]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert (await client.get("/v1/requests/x", headers=header(slow))).status_code == 429  # every route
        assert (await post(single)).status_code == 202  # another key has limits of its own

        # A stream holds its slot until its last event is sent.
        async with client.stream(
            "POST",
            "/v1/support/requests",
            json={"body": "streamed"},
            headers=header(single),
            params={"stream": "true", "wait_s": 2},
        ) as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == "event: accepted"
            busy = await post(single)
            assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
            assert "its limit is 1" in busy.json()["detail"]
            rest = [line async for line in lines]
        assert "event: pending" in rest

        async def freed() -> httpx.Response:
            for _ in range(100):  # the slot is released just after the last byte: wait for it, bounded
                if (after := await post(single)).status_code != 429:
                    return after
                await asyncio.sleep(0.05)
            return after

        assert (await freed()).status_code == 202

        # A client that goes away mid-stream gives its slot back too (long before wait_s ends).
        async with client.stream(
            "POST",
            "/v1/support/requests",
            json={"body": "abandoned"},
            headers=header(single),
            params={"stream": "true", "wait_s": 30},
        ) as stream:
            assert await anext(stream.aiter_lines()) == "event: accepted"
            assert (await post(single)).status_code == 429
        assert (await freed()).status_code == 202


def test_the_openapi_page_shows_the_security_schemes(broker_settings: Settings, tmp_path: Path) -> None:
    project = Project(broker_settings)
    spec = create_app(
        project, [ENTRY], cluster=Cluster("unused:9092"), auth=Authenticator(KeyRing(tmp_path / "k.json"))
    ).openapi()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["podiumKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["podiumKey"]["description"],
    }
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    for path, method in (
        ("/v1/support/requests", "post"),
        ("/v1/requests/{request_id}", "get"),
        ("/v1/approvals", "get"),
        ("/v1/approvals/{request_id}", "post"),
    ):
        operation = spec["paths"][path][method]
        assert {"podiumKey": []} in operation["security"] and {"bearer": []} in operation["security"]
        assert {"401", "403", "429"} <= set(operation["responses"]), path
    assert "security" not in spec["paths"]["/healthz"]["get"]
    open_spec = create_app(
        project, [ENTRY], cluster=Cluster("unused:9092"), auth=Authenticator.open()
    ).openapi()
    assert "securitySchemes" not in open_spec.get("components", {})


@pytest.mark.parametrize("keys_file", [False, True])
def test_serve_refuses_to_start_with_no_way_in(tmp_path: Path, keys_file: bool) -> None:
    from tests.streams.running import podium

    env = {"PODIUM_HOME": str(tmp_path), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    if keys_file:  # a file whose only key is revoked lets nobody in either
        keys = KeyFile(tmp_path / "keys.json")
        keys.revoke(keys.create("umbrella")[0].id)
    refused = podium("serve", "support", "--port", "0", env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "podium keys create --tenant T" in refused.stderr and "--insecure-no-auth" in refused.stderr


def start_serve(port: int, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`podium serve support` in a process of its own, its output in ``log``."""
    from tests.streams.running import REPO

    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "agents.cli", "serve", "support", "--port", str(port)],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_podium_serve_takes_the_keys_podium_keys_made(
    broker_settings: Settings, cluster: Cluster, tmp_path: Path
) -> None:
    """The command as a user runs it: `podium keys create`, then `podium serve` in its own process."""
    from tests.conftest import _free_port
    from tests.streams.running import podium

    project = await gateway_project(broker_settings, cluster)
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog)  # serve follows every terminal topic, dead letters too
    env = {
        "PODIUM_HOME": str(tmp_path),
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "PODIUM_OTEL_EXPORTER": "none",
    }
    made = await asyncio.to_thread(podium, "keys", "create", "--tenant", "umbrella", env=env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    port = _free_port()
    log = tmp_path / "serve.log"
    server = start_serve(port, log, env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(600):  # bounded: the process loads the support pipeline, then listens
                assert server.poll() is None, log.read_text(errors="replace")
                try:
                    if (await client.get("/healthz")).json() == {"ok": True}:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(log.read_text(errors="replace"))
            body, params = {"body": "hi"}, {"wait_s": 0}
            refused = await client.post("/v1/support/requests", json=body, params=params)
            assert refused.status_code == 401
            accepted = await client.post(
                "/v1/support/requests", json=body, params=params, headers={"X-API-Key": key}
            )
            assert accepted.status_code == 202, accepted.text
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert key not in log.read_text(errors="replace")
