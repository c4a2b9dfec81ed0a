"""`podium serve`'s HTTP gateway on the real broker: validation, request-reply across replicas,
and a 503 (not a hang) when Kafka goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from agents.support.services import SupportConfig
from agents.support.stages import support_stages
from streams.config import Settings
from streams.ingress.http import Entry, create_app, model_for_schema
from streams.kafka.admin import TopicAdmin
from streams.kafka.broker import LocalBroker
from streams.operations.audit import pipeline_topics
from streams.runtime.project import Project
from streams.runtime.stage_worker import StageWorker
from tests.conftest import _free_port
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


def support_entry(project: Project) -> Entry:
    stages = support_stages(SupportConfig(models=REPO / "models.yaml"))
    input_topic, terminal = pipeline_topics(stages, project.catalog)
    return Entry("support", input_topic, tuple(terminal), "support.drafts.stream")


async def test_two_replicas_answer_200_concurrent_requests_each_with_its_own_result(
    broker_settings: Settings, bootstrap: str, unique: str
) -> None:
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": bootstrap}))
    async with TopicAdmin(bootstrap) as admin:
        await admin.apply(project.catalog)
    workers = [
        StageWorker(s, bootstrap=bootstrap, catalog=project.catalog, codec=project.codec)
        for s in support_stages(SupportConfig(models=REPO / "models.yaml", cache_scope=unique))
    ]
    entry = support_entry(project)
    replicas = [create_app(project, [entry], bootstrap=bootstrap) for _ in range(2)]
    async with (
        running(*workers),
        serving(replicas[0]) as first,
        serving(replicas[1]) as second,
        httpx.AsyncClient(timeout=60) as client,
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
    broker_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A broker of this test's own, so stopping it disturbs nobody else.
    settings = broker_settings.model_copy(
        update={"home": tmp_path_factory.mktemp("outage"), "broker_port": _free_port(), "broker_heap": "512m"}
    )
    broker = LocalBroker(settings)
    state = await broker.start(timeout_s=120)
    try:
        project = Project(settings)
        async with TopicAdmin(state.bootstrap) as admin:
            await admin.apply(
                project.catalog.select(["support.requests", "support.responses", "support.rejected"])
            )
        entry = Entry("support", "support.requests", ("support.responses", "support.rejected"))
        app = create_app(project, [entry], bootstrap=state.bootstrap, publish_timeout_s=3.0)
        async with serving(app) as url, httpx.AsyncClient(timeout=30) as client:
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
    finally:
        broker.stop()
