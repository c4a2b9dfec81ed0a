"""The gateway's errors tell the truth, on the real broker: a body the topic's schema cannot
carry is a 422 naming the field, a record larger than its topic allows is a 413 before anything
is published, and 503 is left to a Kafka that does not acknowledge."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    NotLeaderForPartitionError,
    PolicyViolationError,
    ProducerClosed,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from streams.config import Settings
from streams.contracts.catalog import parse_catalog
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.errors import (
    AlreadyDecided,
    ApprovalError,
    ApprovalExpired,
    BrokerError,
    CatalogError,
    CodecError,
    ConfigError,
    PayloadTooLarge,
    PodiumError,
    PublishRefused,
    SchemaError,
    UnencodableRecord,
    UnknownApproval,
    UnknownCall,
    UnknownSchema,
)
from streams.ingress.auth import Authenticator
from streams.ingress.http import Entry, _problem, create_app, status_for
from streams.ingress.publish import Publisher, refusal
from streams.kafka.admin import TopicAdmin
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.runtime.project import Project
from tests.streams.asking import approvals_project, ask, asked, decisions_of
from tests.streams.ingress.test_http import serving

REQUESTS = "support.requests"
ENDS = ("support.responses", "support.rejected")


@pytest.fixture
async def gateway(broker_settings: Settings, cluster: Cluster) -> AsyncIterator[str]:
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": cluster.bootstrap}))
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog.select([REQUESTS, *ENDS]))
    app = create_app(project, [Entry("support", REQUESTS, ENDS)], cluster=cluster, auth=Authenticator.open())
    async with serving(app) as url:
        yield url


async def published(cluster: Cluster) -> int:
    """How many records support.requests holds, all partitions."""
    async with Follower(cluster, [REQUESTS]) as follower:
        return sum((await follower.ends()).values())


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    """POST as JSON text with non-ASCII escaped (httpx's json= would fail to encode a lone
    surrogate itself: escaped, it is valid JSON that no UTF-8 encoder can write)."""
    return await client.post(
        "/v1/support/requests",
        content=json.dumps(body),
        headers={"content-type": "application/json"},
        params={"wait_s": 0},
    )


async def test_a_lone_surrogate_is_a_422_naming_the_field(gateway: str, cluster: Cluster) -> None:
    before = await published(cluster)
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        refused = await post(client, {"body": "a\ud800c"})
        assert refused.status_code == 422, refused.text
        [problem] = refused.json()["detail"]
        assert problem["loc"] == ["body", "body"]
        assert "surrogate" in problem["msg"]
        also = await post(client, {"body": "fine", "subject": "x\udfffy"})
        assert also.status_code == 422, also.text
        assert also.json()["detail"][0]["loc"] == ["body", "subject"]
        # FastAPI's 422 echoes the input: a lone surrogate in it must not make it a 500.
        unknown = await post(client, {"body": "fine", "colour": "\ud800"})
        assert unknown.status_code == 422, unknown.text
        assert unknown.json()["detail"][0]["loc"] == ["body", "colour"]
        fine = await post(client, {"body": "a\u00e9c \U0001f600"})
        assert fine.status_code == 202, fine.text
        responses = (await client.get("/openapi.json")).json()["paths"]["/v1/support/requests"]["post"]
        assert {"413", "422", "503"} <= set(responses["responses"])
    assert await published(cluster) == before + 1


async def test_a_record_over_its_topics_limit_is_a_413_and_nothing_is_published(
    gateway: str, cluster: Cluster
) -> None:
    before = await published(cluster)
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
        # 10 MB: under the producer's 16 MiB request limit, over support.requests' 8 MiB.
        refused = await post(client, {"body": "x" * 10_000_000})
        assert refused.status_code == 413, refused.text[:500]
        assert "support.requests" in refused.json()["detail"]
    assert await published(cluster) == before


NOTES = """
topics:
  {p}.notes:
    value: podium.demo.Note
    partitions: 1
    max_message_bytes: %s
"""


async def test_the_publisher_refuses_a_record_over_the_catalogs_limit_before_sending_it(
    make_topics: Any, cluster: Cluster, schema_store: SchemaStore, unique: str
) -> None:
    on_broker = await make_topics(NOTES % "4MiB", unique)  # the broker takes up to 4 MiB
    stricter = parse_catalog((NOTES % "1MiB").replace("{p}", unique), Path("t.yaml"), schema_store.names())
    topic = f"{unique}.notes"
    note = {"request_id": "r", "text": "x" * 2_000_000}
    codec = SingleObjectCodec(schema_store)
    async with Publisher(cluster=cluster, catalog=stricter, codec=codec) as publisher:
        with pytest.raises(PayloadTooLarge, match=f"{topic} accepts at most 1,048,064 "):
            await publisher.publish(topic, note)
    async with Follower(cluster, [topic]) as follower:
        assert sum((await follower.ends()).values()) == 0  # never sent, though the broker would take it
    async with Publisher(cluster=cluster, catalog=on_broker, codec=codec) as publisher:
        await publisher.publish(topic, note)  # the same record, under the broker's own limit


async def test_a_broker_limit_lower_than_the_catalogs_is_still_a_payload_too_large(
    make_topics: Any, cluster: Cluster, schema_store: SchemaStore, unique: str
) -> None:
    await make_topics(NOTES % "1MiB", unique)  # the broker's topic: 1 MiB
    laxer = parse_catalog((NOTES % "4MiB").replace("{p}", unique), Path("t.yaml"), schema_store.names())
    async with Publisher(cluster=cluster, catalog=laxer, codec=SingleObjectCodec(schema_store)) as publisher:
        with pytest.raises(PayloadTooLarge, match="podium topics apply"):
            await publisher.publish(f"{unique}.notes", {"request_id": "r", "text": "x" * 2_000_000})


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        (MessageSizeTooLargeError(), PayloadTooLarge, 413),
        (RecordListTooLargeError(), PayloadTooLarge, 413),
        (TopicAuthorizationFailedError(), PublishRefused, 500),
        (ClusterAuthorizationFailedError(), PublishRefused, 500),
        (PolicyViolationError(), PublishRefused, 500),
        (KafkaTimeoutError(), BrokerError, 503),
        (KafkaConnectionError(), BrokerError, 503),
        (NotLeaderForPartitionError(), BrokerError, 503),
        (NotEnoughReplicasError(), BrokerError, 503),
        (UnknownTopicOrPartitionError(), BrokerError, 503),
        (ProducerClosed(), BrokerError, 503),
    ],
)
def test_what_kafka_answered_becomes_one_error_and_one_status(
    error: KafkaError, kind: type[PodiumError], status: int
) -> None:
    translated = refusal("support.requests", error)
    assert type(translated) is kind
    assert "support.requests" in str(translated)
    assert status_for(translated) == status


def test_a_refused_write_says_what_to_grant() -> None:
    assert "grant this client's principal WRITE" in str(refusal("t", TopicAuthorizationFailedError()))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UnencodableRecord("s", ("body",), "a lone surrogate"), 422),
        (PayloadTooLarge("big"), 413),
        (UnknownSchema("schema registry unreachable"), 502),
        (CodecError("bytes do not decode"), 500),  # a result the gateway cannot read: its fault
        (CatalogError("no topic"), 500),
        (SchemaError("no schema"), 500),
        (ConfigError("bad"), 500),
        (PublishRefused("not authorised"), 500),
        (BrokerError("not acknowledged"), 503),
        (UnknownApproval("none"), 404),
        (UnknownCall("none"), 404),
        (AlreadyDecided("by ana"), 409),
        (ApprovalExpired("timed out"), 409),
        (ApprovalError("too long"), 422),
    ],
)
def test_only_kafka_not_acknowledging_is_a_503(error: PodiumError, status: int) -> None:
    assert status_for(error) == status


async def test_a_decision_that_cannot_be_encoded_is_a_422_naming_the_field(
    broker_settings: Settings, cluster: Cluster, unique: str
) -> None:
    project = await approvals_project(broker_settings, cluster)
    async with TopicAdmin(cluster) as admin:
        await admin.apply(project.catalog.select([REQUESTS, "support.responses"]))
    rid = f"{unique}-r"
    await ask(project, asked(rid, "c1"))
    app = create_app(
        project,
        [Entry("support", REQUESTS, ("support.responses",))],
        cluster=cluster,
        auth=Authenticator.open(),
    )
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        refused = await client.post(
            f"/v1/approvals/{rid}",
            content=json.dumps({"approved": True, "reason": "fine\ud800", "by": "ana"}),
            headers={"content-type": "application/json"},
        )
        assert refused.status_code == 422, refused.text  # was a 500
        assert refused.json()["detail"][0]["loc"] == ["body", "reason"]
        assert await decisions_of(project, rid) == []
        decided = await client.post(f"/v1/approvals/{rid}", json={"approved": True, "by": "ana"})
        assert decided.status_code == 202, decided.text


def test_a_field_path_holding_a_lone_surrogate_still_renders_as_a_422() -> None:
    response = _problem(UnencodableRecord("s", ("tags", "k\ud800"), "the key: a lone surrogate"))
    assert response.status_code == 422
    assert json.loads(response.body)["detail"][0]["loc"] == ["body", "tags", "k\ud800"]


def test_a_500_gives_the_caller_an_error_id_and_the_operator_the_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json as _json
    import logging

    cause = "Kafka refused the write: grant User:podium-serve WRITE on support.requests"
    with caplog.at_level(logging.ERROR, logger="streams.ingress.http"):
        response = _problem(PublishRefused(cause))
    detail = _json.loads(bytes(response.body))["detail"]
    assert response.status_code == 500
    assert "User:podium-serve" not in detail and "grant" not in detail
    error_id = detail.split("(error ")[1].split(")")[0]
    assert any(cause in r.getMessage() and error_id in r.getMessage() for r in caplog.records)
