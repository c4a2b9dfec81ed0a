"""Approvals: the book's decisions without Kafka, then deciding on the real broker (an agent's
ApprovalRequest records on billing.approvals, the decisions read back from billing.decisions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streams.config import Settings
from streams.contracts.catalog import parse_catalog
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.headers import new_request_id
from streams.contracts.schemas import SchemaStore
from streams.errors import (
    AlreadyDecided,
    ApprovalError,
    ApprovalExpired,
    ConfigError,
    UnknownApproval,
    UnknownCall,
)
from streams.ingress import ApprovalBook, Approvals
from streams.ingress.approvals import moment
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.runtime.project import Project
from tests.streams.asking import (
    APPROVALS,
    DECISIONS,
    agent_decides,
    approvals_project,
    ask,
    asked,
    decisions_of,
)

AT = 1_800_000_000_000  # a fixed "now" for the book


def request(call_id: str, request_id: str = "r1", expires_ms: int = AT + 60_000) -> dict[str, Any]:
    return {**asked(request_id, call_id), "expires_ms": expires_ms, "at_ms": AT - 1000}


def decision(
    call_id: str, approved: bool = True, by: str = "ana", at_ms: int = AT - 500, **more: Any
) -> dict[str, Any]:
    return {
        "request_id": "r1",
        "call_id": call_id,
        "approved": approved,
        "reason": "",
        "by": by,
        "at_ms": at_ms,
        **more,
    }


def test_pending_is_asked_not_decided_not_expired() -> None:
    book = ApprovalBook()
    book.asked(APPROVALS, request("c1"))
    book.asked(APPROVALS, request("c2"))
    book.asked(APPROVALS, request("c3", expires_ms=AT - 1))
    book.decided(DECISIONS, decision("c2"))
    assert [a.call_id for a in book.pending(AT)] == ["c1"]
    assert {a.call_id: a.state(AT) for a in book.approvals()} == {
        "c1": "pending",
        "c2": "approved",
        "c3": "expired",
    }
    assert book.pending(AT + 60_000) == []  # c1's time ran out too


def test_the_first_decision_counts_on_the_topic_the_request_names_in_either_order() -> None:
    book = ApprovalBook()
    book.decided(DECISIONS, decision("c1", approved=False, by="bo"))  # read before its request
    book.decided(DECISIONS, decision("c1", approved=True, by="ana"))  # later: the agent ignores it
    book.decided("other.decisions", decision("c2"))  # not where the request wants its answer
    book.asked(APPROVALS, request("c1"))
    book.asked(APPROVALS, request("c2"))
    book.asked(APPROVALS, {**request("c1"), "summary": "asked again after a restart"})
    first = book.approval("r1", "c1")
    assert first is not None and first.decision is not None
    assert (first.decision.by, first.decision.approved, first.summary) == (
        "bo",
        False,
        "refund $20 on in_42 (c1)",
    )
    assert [a.call_id for a in book.pending(AT)] == ["c2"]


def test_deciding_names_what_stands_in_the_way() -> None:
    book = ApprovalBook()
    with pytest.raises(UnknownApproval, match="no approval was asked for request r1"):
        book.open_calls("r1", None, AT)
    book.asked(APPROVALS, request("c1"))
    book.asked(APPROVALS, request("c2"))
    with pytest.raises(UnknownCall, match="request r1 asked no approval for call c9: name one of c1, c2"):
        book.open_calls("r1", "c9", AT)
    book.decided(DECISIONS, decision("c1", approved=False, by="bo", reason="too much"))
    assert [a.call_id for a in book.open_calls("r1", None, AT)] == ["c2"]  # only the one still waiting
    with pytest.raises(AlreadyDecided) as decided:
        book.open_calls("r1", "c1", AT)
    assert f"r1 was denied by bo at {moment(AT - 500)} (too much)" in str(decided.value)

    book.decided(DECISIONS, decision("c2", approved=False, by="timeout"))  # the agent's own denial
    with pytest.raises(AlreadyDecided) as both:
        book.open_calls("r1", None, AT)
    assert f"r1 (call c1) was denied by bo at {moment(AT - 500)}" in str(both.value)
    assert f"r1 (call c2) timed out at {moment(AT + 60_000)}: the agent denied it" in str(both.value)
    with pytest.raises(ApprovalExpired, match=r"r1 timed out at .*: the agent denied it"):
        book.open_calls("r1", "c2", AT)


def test_expired_without_the_agents_denial_yet_is_expired() -> None:
    book = ApprovalBook()
    book.asked(APPROVALS, request("c1", expires_ms=AT))
    with pytest.raises(ApprovalExpired, match=f"r1 timed out at {moment(AT)}: the agent denied it"):
        book.open_calls("r1", None, AT)
    assert book.open_calls("r1", None, AT - 1)[0].call_id == "c1"


@pytest.fixture(scope="module")
async def project(broker_settings: Settings, cluster: Cluster) -> Project:
    return await approvals_project(broker_settings, cluster)


@pytest.fixture
async def desk(project: Project) -> AsyncIterator[Approvals]:
    async with (
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as publisher,
        Approvals(
            cluster=project.cluster(), catalog=project.catalog, codec=project.codec, publisher=publisher
        ) as desk,
    ):
        yield desk


async def test_approving_a_request_decides_each_waiting_call_once(project: Project, desk: Approvals) -> None:
    rid = new_request_id()
    await ask(project, asked(rid, "c1"), asked(rid, "c2", action="close_account"))
    waiting = [a for a in await desk.pending() if a.request_id == rid]
    assert [(a.call_id, a.action, a.pipeline) for a in waiting] == [
        ("c1", "issue_refund", "billing"),
        ("c2", "close_account", "billing"),
    ]

    decided = await desk.decide(rid, True, reason="customer is right", by="ana")
    assert [(a.call_id, a.action, a.arguments) for a in decided] == [
        ("c1", "issue_refund", '{"invoice": "in_42", "amount_usd": 20}'),
        ("c2", "close_account", '{"invoice": "in_42", "amount_usd": 20}'),
    ]
    on_topic = await decisions_of(project, rid)
    assert [key for key, _ in on_topic] == [rid, rid]
    assert [(d["call_id"], d["approved"], d["reason"], d["by"]) for _, d in on_topic] == [
        ("c1", True, "customer is right", "ana"),
        ("c2", True, "customer is right", "ana"),
    ]
    assert [d["at_ms"] for _, d in on_topic] == [a.decision.at_ms for a in decided if a.decision]
    assert all(a.request_id != rid for a in await desk.pending())

    with pytest.raises(AlreadyDecided) as again:
        await desk.decide(rid, False, by="bo")
    first = decided[0].decision
    assert first is not None
    assert f"{rid} (call c1) was approved by ana at {moment(first.at_ms)} (customer is right)" in str(
        again.value
    )
    assert len(await decisions_of(project, rid)) == 2  # nothing more was published


async def test_denying_one_call_with_a_reason_leaves_the_other_waiting(
    project: Project, desk: Approvals
) -> None:
    rid = new_request_id()
    await ask(project, asked(rid, "c1"), asked(rid, "c2"))
    denied = await desk.decide(rid, False, reason="refunds over $10 need a manager", by="bo", call_id="c2")
    assert [(a.call_id, a.decision and a.decision.approved) for a in denied] == [("c2", False)]
    assert [a.call_id for a in await desk.pending() if a.request_id == rid] == ["c1"]
    approved = await desk.decide(rid, True, by="ana")  # the one still waiting
    assert [a.call_id for a in approved] == ["c1"]
    on_topic = [
        (d["call_id"], d["approved"], d["reason"], d["by"]) for _, d in await decisions_of(project, rid)
    ]
    assert on_topic == [("c2", False, "refunds over $10 need a manager", "bo"), ("c1", True, "", "ana")]


async def test_expired_unknown_and_reserved_are_refused_with_nothing_published(
    project: Project, desk: Approvals
) -> None:
    late, timed_out, rid = new_request_id(), new_request_id(), new_request_id()
    await ask(project, asked(late, "c1", expires_in_s=-1), asked(timed_out, "c1"), asked(rid, "c1"))
    await agent_decides(project, timed_out, "c1")  # the agent's own denial, signed timeout
    with pytest.raises(
        ApprovalExpired, match=f"{late} timed out at .*: the agent denied it; ask the agent again"
    ):
        await desk.decide(late, True, by="ana")
    with pytest.raises(ApprovalExpired, match=f"{timed_out} timed out at"):
        await desk.decide(timed_out, True, by="ana")
    with pytest.raises(UnknownApproval, match="no approval was asked for request nope"):
        await desk.decide("nope", True, by="ana")
    with pytest.raises(UnknownCall, match=f"request {rid} asked no approval for call c7: name one of c1"):
        await desk.decide(rid, True, by="ana", call_id="c7")
    with pytest.raises(ApprovalError, match="'timeout' signs the agent's own denials"):
        await desk.decide(rid, True, by="timeout")
    with pytest.raises(ApprovalError, match="the reason is 2001 characters long; at most 2000"):
        await desk.decide(rid, True, by="ana", reason="x" * 2001)
    assert len(await decisions_of(project, late)) == 0
    assert len(await decisions_of(project, rid)) == 0


async def test_an_open_desk_follows_requests_and_decisions_made_elsewhere(
    project: Project, desk: Approvals
) -> None:
    # serve's case: the desk was open before the request was asked and another replica decides.
    rid, other = new_request_id(), new_request_id()
    await ask(project, asked(rid, "c1"), asked(other, "c1"))
    assert {a.request_id for a in await desk.pending()} >= {rid, other}  # read up to now when asked
    await agent_decides(project, rid, "c1", approved=True, by="cy")
    with pytest.raises(AlreadyDecided, match=f"{rid} was approved by cy at"):
        await desk.decide(rid, False, by="ana")
    assert [d["by"] for _, d in await decisions_of(project, rid)] == ["cy"]


class Racing(Publisher):
    """Another replica's decision lands just before ours (between reading and publishing)."""

    async def publish(self, topic: str, record: dict[str, Any], **kwargs: Any) -> str:
        await super().publish(topic, {**record, "by": "cy", "approved": not record["approved"]}, **kwargs)
        return await super().publish(topic, record, **kwargs)


async def test_a_decision_that_came_second_is_reported_as_the_one_that_came_first(project: Project) -> None:
    rid = new_request_id()
    await ask(project, asked(rid, "c1"))
    async with (
        Racing(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as racing,
        Approvals(
            cluster=project.cluster(), catalog=project.catalog, codec=project.codec, publisher=racing
        ) as desk,
    ):
        with pytest.raises(AlreadyDecided, match=f"another came first: {rid} was denied by cy at"):
            await desk.decide(rid, True, by="ana")
    assert [(d["by"], d["approved"]) for _, d in await decisions_of(project, rid)] == [
        ("cy", False),
        ("ana", True),
    ]


async def test_two_decisions_at_once_in_one_process_publish_one(project: Project, desk: Approvals) -> None:
    rid = new_request_id()
    await ask(project, asked(rid, "c1"))
    results = await asyncio.gather(
        desk.decide(rid, True, by="ana"), desk.decide(rid, False, by="bo"), return_exceptions=True
    )
    assert sum(isinstance(r, AlreadyDecided) for r in results) == 1
    assert len(await decisions_of(project, rid)) == 1


async def test_reading_only_lists_but_does_not_decide(project: Project) -> None:
    rid = new_request_id()
    await ask(project, asked(rid, "c1"))
    async with Approvals(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as reader:
        assert rid in {a.request_id for a in await reader.pending()}
        with pytest.raises(ConfigError, match="opened to read only"):
            await reader.decide(rid, True, by="ana")


async def test_approval_topics_are_found_by_schema_and_missing_ones_skipped(  # type: ignore[no-untyped-def]
    cluster: Cluster, make_topics, schema_store: SchemaStore, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    # No pipeline name anywhere: any topic carrying podium.ApprovalRequest is read.
    applied = (
        "topics:\n"
        "  {p}.asks: {value: podium.ApprovalRequest}\n"
        "  {p}.answers: {value: podium.ApprovalDecision}\n"
    )
    await make_topics(applied, unique)
    text = (applied + "  {p}.never-applied: {value: podium.ApprovalRequest}\n").replace("{p}", unique)
    catalog = parse_catalog(text, Path("test-topics.yaml"), schema_store.names())
    codec = SingleObjectCodec(schema_store)
    rid = new_request_id()
    async with (
        Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher,
        Approvals(cluster=cluster, catalog=catalog, codec=codec, publisher=publisher) as desk,
    ):
        await publisher.publish(
            f"{unique}.asks", {**asked(rid, "c1"), "decisions_topic": f"{unique}.answers"}
        )
        assert [(a.topic, a.call_id) for a in await desk.pending()] == [(f"{unique}.asks", "c1")]
        [decided] = await desk.decide(rid, True, by="ana")
        assert decided.decisions_topic == f"{unique}.answers" and await desk.pending() == []
    assert f"not on the cluster, so not read: {unique}.never-applied" in caplog.text


def test_calls_a_decider_may_not_see_are_as_unknown_as_calls_never_asked() -> None:
    book = ApprovalBook()
    book.asked(APPROVALS, request("c1", "ours"), tenant="umbrella")
    book.asked(APPROVALS, request("c1", "theirs"), tenant="acme")
    book.asked(APPROVALS, request("c2", "theirs"), tenant="acme")
    assert {a.request_id: a.tenant for a in book.approvals()} == {"ours": "umbrella", "theirs": "acme"}

    def umbrellas(a: Any) -> bool:
        return bool(a.tenant == "umbrella")

    assert [a.call_id for a in book.open_calls("ours", None, AT, umbrellas)] == ["c1"]
    with pytest.raises(UnknownApproval, match="no approval was asked for request theirs"):
        book.open_calls("theirs", None, AT, umbrellas)
    with pytest.raises(UnknownApproval):
        book.open_calls("theirs", "c1", AT, umbrellas)  # naming the call reveals nothing either
    assert len(book.open_calls("theirs", None, AT)) == 2  # no filter: `podium approve` sees all
