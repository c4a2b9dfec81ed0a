"""`podium serve`'s HTTP gateway on the real broker: validation, request-reply across replicas,
approvals decided once, and a 503 (not a hang) when Kafka goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from agents.support.services import SupportConfig
from agents.support.stages import support_stages
from streams.config import Settings
from streams.ingress.auth import Authenticator
from streams.ingress.http import Entry, create_app, model_for_schema
from streams.ingress.keys import KeyFile, KeyRing
from streams.kafka.admin import TopicAdmin
from streams.kafka.broker import LocalBroker
from streams.kafka.connection import Cluster
from streams.operations.audit import pipeline_topics
from streams.runtime.project import Project
from streams.runtime.stage_worker import StageWorker
from tests.conftest import _free_port
from tests.streams.asking import APPROVALS, DECISIONS, approvals_project, ask, asked, decisions_of
from tests.streams.running import REPO, running


def test_the_request_model_mirrors_the_avro_schema(schema_store) -> None:  # type: ignore[no-untyped-def]
    model = model_for_schema(schema_store.current("podium.support.Request").raw, skip=("request_id",))
    assert list(model.model_fields) == ["body", "subject", "tenant", "customer", "channel"]
    assert model.model_fields["body"].is_required() and not model.model_fields["tenant"].is_required()
    assert model(body="hi").model_dump() == {
        "body": "hi",
        "subject": None,
        "tenant": None,
        "customer": None,
        "channel": "api",
    }


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
        if task.done():
            await task
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def keyed(folder: Path, tenant: str, **options: object) -> tuple[Authenticator, dict[str, str]]:
    """A gateway's authenticator over a keys file of one key for ``tenant``, and the header
    that presents the key (``podium keys create`` does the same)."""
    path = folder / "keys.json"
    _, key = KeyFile(path).create(tenant, **options)  # type: ignore[arg-type]
    return Authenticator(KeyRing(path)), {"X-API-Key": key.get_secret_value()}


def support_entry(project: Project) -> Entry:
    stages = support_stages(SupportConfig(models=REPO / "models.yaml"))  # for its topics only
    input_topic, terminal = pipeline_topics(stages, project.catalog)
    return Entry("support", input_topic, tuple(terminal), "support.drafts.stream")


async def test_two_replicas_answer_200_concurrent_requests_each_with_its_own_result(
    shipped_kb: Path, broker_settings: Settings, cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": cluster.bootstrap}))
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog)
    workers = [
        StageWorker(s, cluster=cluster, catalog=project.catalog, codec=project.codec)
        for s in support_stages(
            SupportConfig(home=shipped_kb, models=REPO / "models.yaml", cache_scope=unique)
        )
    ]
    entry = support_entry(project)
    auth, key = keyed(tmp_path, unique)
    replicas = [create_app(project, [entry], cluster=cluster, auth=auth) for _ in range(2)]
    async with (
        running(*workers),
        serving(replicas[0]) as first,
        serving(replicas[1]) as second,
        httpx.AsyncClient(timeout=60, headers=key) as client,
    ):
        invalid = await client.post(f"{first}/v1/support/requests", json={"subject": "no body"})
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"] == ["body", "body"]

        async def ask(i: int) -> tuple[int, httpx.Response]:
            url = first if i % 2 else second
            body = {"body": f"How do I export dashboard number {i} to PDF?", "tenant": unique}
            return i, await client.post(f"{url}/v1/support/requests", json=body, params={"wait_s": 30})

        answers = await asyncio.gather(*(ask(i) for i in range(200)))
        for i, response in answers:
            assert response.status_code == 200, response.text
            got = response.json()
            assert got["status"] == "done" and got["topic"] == "support.responses"
            assert got["result"]["request_id"] == got["request_id"]
            assert f"dashboard number {i} to PDF" in got["result"]["answer"]  # its own answer
        assert len({r.json()["request_id"] for _, r in answers}) == 200

        # Either replica knows how a request sent through the other one ended.
        rid = answers[0][1].json()["request_id"]  # sent through the second replica
        status = await client.get(f"{first}/v1/requests/{rid}")
        assert status.status_code == 200 and status.json()["status"] == "done"
        assert (await client.get(f"{first}/v1/requests/nope")).status_code == 404
        spec = (await client.get(f"{first}/openapi.json")).json()
        assert "/v1/support/requests" in spec["paths"]

        # Streaming: the draft's tokens as they are written, then the screened result.
        body = {"body": "How do I reset my password? (streamed)"}
        events: list[tuple[str, dict[str, object]]] = []
        async with client.stream(
            "POST", f"{second}/v1/support/requests", json=body, params={"stream": "true"}
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[len("event: ") :]
                elif line.startswith("data: "):
                    events.append((event, json.loads(line[len("data: ") :])))
        names = [name for name, _ in events]
        assert names[0] == "accepted" and names[-1] == "final" and "draft_done" in names
        assert "token" in names and names.index("token") < names.index("draft_done")
        text = ""
        for name, data in events:
            if name == "reset":
                text = ""
            elif name == "token":
                text += str(data["text"])
        final = events[-1][1]
        assert final["topic"] == "support.responses"
        assert text == final["result"]["answer"]  # type: ignore[index]  # nothing redacted: draft == answer


async def test_a_broker_outage_is_a_503_not_a_hang(
    broker_settings: Settings, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # A broker of this test's own, so stopping it disturbs nobody else.
    settings = broker_settings.model_copy(
        update={"home": tmp_path_factory.mktemp("outage"), "broker_port": _free_port(), "broker_heap": "512m"}
    )
    broker = LocalBroker(settings)
    state = await broker.start(timeout_s=120)
    try:
        project = Project(settings)
        async with TopicAdmin(Cluster(state.bootstrap)) as admin:
            await admin.apply(
                project.catalog.select(
                    ["support.requests", "support.responses", "support.rejected", APPROVALS, DECISIONS]
                )
            )
        await ask(project, asked("waiting", "c1"), tenant="umbrella")
        entry = Entry("support", "support.requests", ("support.responses", "support.rejected"))
        auth, key = keyed(tmp_path, "umbrella")
        app = create_app(project, [entry], cluster=Cluster(state.bootstrap), auth=auth, publish_timeout_s=3.0)
        async with serving(app) as url, httpx.AsyncClient(timeout=30, headers=key) as client:
            accepted = await client.post(
                f"{url}/v1/support/requests", json={"body": "hello"}, params={"wait_s": 0}
            )
            assert accepted.status_code == 202 and accepted.json()["status"] == "pending"
            rid = accepted.json()["request_id"]
            assert (await client.get(f"{url}/v1/requests/{rid}")).json()["status"] == "pending"
            await asyncio.to_thread(broker.stop)
            started = asyncio.get_running_loop().time()
            down = await client.post(f"{url}/v1/support/requests", json={"body": "hello"})
            assert down.status_code == 503 and "could not accept" in down.json()["detail"]
            assert asyncio.get_running_loop().time() - started < 3.0 + 2.0
            started = asyncio.get_running_loop().time()
            undecided = await client.post(f"{url}/v1/approvals/waiting", json={"approved": True})
            assert undecided.status_code == 503 and "within 3s" in undecided.json()["detail"]
            assert asyncio.get_running_loop().time() - started < 3.0 + 2.0
    finally:
        broker.stop()


async def test_approvals_are_listed_and_decided_once_over_http(
    broker_settings: Settings, cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    project = await approvals_project(broker_settings, cluster)
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog.select(["support.requests", "support.responses"]))
    rid, late, single = f"{unique}-r", f"{unique}-late", f"{unique}-one"
    await ask(
        project,
        asked(rid, "c1"),
        asked(rid, "c2"),
        asked(late, "c1", expires_in_s=-1),
        asked(single, "c1"),
        tenant=unique,
    )
    auth, key = keyed(tmp_path, unique)
    app = create_app(
        project,
        [Entry("support", "support.requests", ("support.responses",))],
        cluster=cluster,
        auth=auth,
    )
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30, headers=key) as client:
        pending = [
            a for a in (await client.get("/v1/approvals")).json() if a["request_id"].startswith(unique)
        ]
        assert sorted((a["request_id"], a["call_id"], a["state"], a["action"]) for a in pending) == sorted(
            [
                (rid, "c1", "pending", "issue_refund"),
                (rid, "c2", "pending", "issue_refund"),
                (single, "c1", "pending", "issue_refund"),
            ]
        )
        assert all(290 < a["left_s"] <= 300 and a["decision"] is None for a in pending)
        every = {a["request_id"]: a["state"] for a in (await client.get("/v1/approvals?all=true")).json()}
        assert every[late] == "expired"

        for body, field in (
            ({"approved": "yes"}, "approved"),  # no guessing what a string means
            ({"approved": True, "note": "hi"}, "note"),
            ({"approved": True, "reason": "x" * 2001}, "reason"),
            ({"approved": True, "by": "timeout"}, "by"),
            ({"reason": "no decision"}, "approved"),
        ):
            refused = await client.post(f"/v1/approvals/{rid}", json=body)
            assert refused.status_code == 422, body
            assert refused.json()["detail"][0]["loc"] == ["body", field]
        assert await decisions_of(project, rid) == []

        # The gateway signs a decision with the key that made it (the body's name is a label).
        signed = f"(key:{key['X-API-Key'].split('_')[1]})"
        ana, bo = f"ana {signed}", f"bo {signed}"
        one = await client.post(f"/v1/approvals/{rid}", json={"approved": True, "by": "ana", "call_id": "c2"})
        assert one.status_code == 202, one.text
        assert [(d["call_id"], d["state"], d["decision"]["by"]) for d in one.json()["decisions"]] == [
            ("c2", "approved", ana)
        ]
        rest = await client.post(f"/v1/approvals/{rid}", json={"approved": False, "reason": "no", "by": "bo"})
        assert rest.status_code == 202, rest.text
        assert [(d["call_id"], d["state"], d["decision"]["reason"]) for d in rest.json()["decisions"]] == [
            ("c1", "denied", "no")
        ]
        on_topic = await decisions_of(project, rid)
        assert [(key, d["call_id"], d["approved"], d["reason"], d["by"]) for key, d in on_topic] == [
            (rid, "c2", True, "", ana),
            (rid, "c1", False, "no", bo),
        ]

        again = await client.post(f"/v1/approvals/{rid}", json={"approved": True, "by": "cy"})
        assert again.status_code == 409
        assert f"{rid} (call c1) was denied by {bo} at" in again.json()["detail"]
        assert f"{rid} (call c2) was approved by {ana} at" in again.json()["detail"]
        expired = await client.post(f"/v1/approvals/{late}", json={"approved": True})
        assert expired.status_code == 409 and "timed out at" in expired.json()["detail"]
        unknown = await client.post(f"/v1/approvals/{unique}-nope", json={"approved": True})
        assert unknown.status_code == 404
        assert f"no approval was asked for request {unique}-nope" in unknown.json()["detail"]
        wrong_call = await client.post(f"/v1/approvals/{single}", json={"approved": True, "call_id": "c9"})
        assert wrong_call.status_code == 404 and "name one of c1" in wrong_call.json()["detail"]
        assert len(await decisions_of(project, rid)) == 2 and await decisions_of(project, single) == []

        spec = (await client.get("/openapi.json")).json()
        assert set(spec["paths"]["/v1/approvals/{request_id}"]["post"]["responses"]) >= {
            "202",
            "404",
            "409",
            "503",
        }
        assert "get" in spec["paths"]["/v1/approvals"]
        body_schema = spec["components"]["schemas"]["DecisionBody"]
        assert body_schema["additionalProperties"] is False
        assert body_schema["properties"]["reason"]["maxLength"] == 2000
