"""The content pipeline on the real broker: fan-out and join once per brief, the revise loop's
bound, a failing or missing branch recorded by the join, and a join restart losing nothing."""

from __future__ import annotations

import json
from typing import Any

from agents.content.review import Thresholds
from agents.content.services import ContentConfig
from agents.content.stages import content_stages
from streams.contracts.headers import now_ms
from streams.ingress.publish import Publisher
from streams.kafka.follow import Arrival, Follower
from streams.kafka.reading import Position
from streams.operations.audit import pipeline_topics, run_audit
from streams.runtime.project import Project
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import REPO, read_topic, running

BRIEFS = [
    json.loads(line) for line in (REPO / "agents/data/content/briefs.jsonl").read_text().splitlines() if line
]
TERMINAL = ["content.published", "content.rejected"]


def workers(project: Project, config: ContentConfig, only: tuple[str, ...] = ()) -> list[StageWorker]:
    return [
        StageWorker(s, cluster=project.cluster(), catalog=project.catalog, codec=project.codec)
        for s in content_stages(config)
        if not only or s.name in only
    ]


def decode(project: Project, arrival: Arrival) -> dict[str, Any]:
    return project.codec.decode(project.catalog.get(arrival.topic).value_schema, arrival.value or b"")


def brief(b: dict[str, Any]) -> dict[str, Any]:
    return {k: b[k] for k in ("topic", "audience", "points", "must_include")}


async def test_each_brief_is_published_or_rejected_once_after_at_most_n_revisions(project: Project) -> None:
    config = ContentConfig(models=REPO / "models.yaml", thresholds=Thresholds(max_revisions=2))
    stages = content_stages(config)
    input_topic, terminal = pipeline_topics(stages, project.catalog)
    assert set(TERMINAL) <= set(terminal) and "content.joins" not in terminal
    assert "content.drafts.style.dlq" not in terminal  # the join reads it: not an end
    started = now_ms()
    async with (
        running(*workers(project, config)),
        Follower(project.cluster(), terminal) as follower,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
    ):
        sent = {await pub.publish(input_topic, brief(b)): b for b in BRIEFS}
        got = await follower.collect(set(sent), timeout_s=90)
        for rid, more in (await follower.poll(1.5)).items():
            got.setdefault(rid, []).extend(more)
    assert set(got) == set(sent), f"no end for {set(sent) - set(got)}"
    for rid, b in sent.items():
        [arrival] = got[rid]  # exactly one end per brief
        article = decode(project, arrival)
        joins = [d for d in article["decisions"] if d["stage"] == "join"]
        drafts = [d for d in article["decisions"] if d["stage"] == "draft"]
        # One join decision per draft: the fan-out was joined once per round, never twice.
        assert len(joins) == len(drafts) == article["round"] + 1, article["decisions"]
        assert {c["branch"] for c in article["checks"]} == {"factcheck", "style"}
        if b["expect"] == "published_first":
            assert (arrival.topic, article["round"]) == ("content.published", 0), article["decisions"]
        elif b["expect"] == "published_after_revision":
            assert arrival.topic == "content.published" and article["round"] >= 1, article["decisions"]
            assert [d["decision"] for d in joins][:-1] == ["revise"] * article["round"]
            assert any(line.startswith("factcheck:") for line in article["critique"])
        else:
            # The revise loop stops at N: 1 + max_revisions drafts, then a rejection with reasons.
            assert (arrival.topic, article["round"]) == ("content.rejected", 2), article["decisions"]
            assert [d["decision"] for d in joins] == ["revise", "revise", "reject"]
            assert any("style" in r and "<" in r for r in article["reasons"]), article["reasons"]
            assert "no revisions left after 3 draft(s)" in article["reasons"]
        if arrival.topic == "content.published":
            seo = article["seo"]
            assert (
                seo["slug"] and len(seo["title"]) <= 60 and len(seo["description"]) <= 155 and seo["keywords"]
            )
            assert all(c["passed"] for c in article["checks"])
    report = await run_audit(
        project.cluster(),
        input_topic,
        terminal,
        since=Position(timestamp_ms=started),
        now_ms=now_ms(),
        grace_ms=0,
    )
    assert not report.missing and not report.duplicated
    assert set(sent) <= set(report.ended)


async def test_a_failing_style_branch_goes_to_its_dlq_and_the_join_records_it(project: Project) -> None:
    config = ContentConfig(models=REPO / "models.yaml")
    async with (
        running(*workers(project, config)),
        Follower(project.cluster(), [*TERMINAL, "content.drafts.style.dlq"]) as follower,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
    ):
        # No points and nothing to include: the draft has a title and no body, which the style
        # check refuses as bad input (not retryable).
        rid = await pub.publish("content.briefs", {"topic": "An empty brief", "points": []})
        got = await follower.collect({rid}, timeout_s=30, per_id=2)
    by_topic = {a.topic: a for a in got[rid]}
    assert set(by_topic) == {"content.drafts.style.dlq", "content.rejected"}
    letter = decode(project, by_topic["content.drafts.style.dlq"])
    assert letter["stage"] == "style" and letter["error_type"] == "permanent"
    assert project.codec.decode("podium.content.Article", letter["original_value"])["request_id"] == rid
    rejected = decode(project, by_topic["content.rejected"])
    assert any(
        r.startswith("style failed: PermanentError: the draft has no body") for r in rejected["reasons"]
    ), rejected["reasons"]
    assert [c["branch"] for c in rejected["checks"]] == ["factcheck"]  # what did arrive is kept


async def test_a_branch_that_never_answers_is_a_recorded_failure_not_a_hang(project: Project) -> None:
    config = ContentConfig(
        models=REPO / "models.yaml", thresholds=Thresholds(join_timeout_s=2.0), sweep_every_s=0.2
    )
    async with (
        running(*workers(project, config, only=("draft", "factcheck", "join"))),  # no style worker
        Follower(project.cluster(), TERMINAL) as follower,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
    ):
        rid = await pub.publish("content.briefs", brief(BRIEFS[0]))
        got = await follower.collect({rid}, timeout_s=20)
    [arrival] = got[rid]
    rejected = decode(project, arrival)
    assert arrival.topic == "content.rejected"
    assert rejected["reasons"] == ["style: no verdict within 2s"]


async def test_a_round_whose_checks_never_answer_is_rejected_with_its_article(project: Project) -> None:
    config = ContentConfig(
        models=REPO / "models.yaml", thresholds=Thresholds(join_timeout_s=1.5), sweep_every_s=0.2
    )
    async with (
        running(*workers(project, config, only=("draft", "join"))),  # neither check runs
        Follower(project.cluster(), TERMINAL) as follower,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
    ):
        rid = await pub.publish("content.briefs", brief(BRIEFS[0]))
        got = await follower.collect({rid}, timeout_s=20)
    [arrival] = got[rid]
    rejected = decode(project, arrival)
    assert arrival.topic == "content.rejected"
    assert rejected["reasons"] == ["factcheck: no verdict within 1.5s", "style: no verdict within 1.5s"]
    assert rejected["topic"] == BRIEFS[0]["topic"] and rejected["body"]


async def test_a_join_restarted_mid_run_loses_no_pending_join(project: Project) -> None:
    config = ContentConfig(models=REPO / "models.yaml")
    ids: set[str] = set()
    async with Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub:
        # First run: the style check is down, so every join waits with one verdict of two.
        async with running(*workers(project, config, only=("draft", "factcheck", "join"))):
            ids = {await pub.publish("content.briefs", brief(b)) for b in BRIEFS[:6]}
            waiting = await _until_waiting(project, ids)
        assert waiting == ids
        # Second run, in new workers with new services: the join's table comes back from Kafka.
        async with (
            Follower(project.cluster(), TERMINAL) as follower,
            running(*workers(project, config)),
        ):
            got = await follower.collect(ids, timeout_s=60)
            for rid, more in (await follower.poll(1.5)).items():
                got.setdefault(rid, []).extend(more)
    assert set(got) == ids
    assert all(len(arrivals) == 1 for arrivals in got.values())
    for arrivals in got.values():
        article = decode(project, arrivals[0])
        assert {c["branch"] for c in article["checks"]} == {"factcheck", "style"}


async def _until_waiting(project: Project, ids: set[str], timeout_s: float = 30.0) -> set[str]:
    """Request ids whose join state on content.joins waits with the fact check's verdict in."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    waiting: set[str] = set()
    while time.monotonic() < deadline:
        rows = {}
        for _, value in await read_topic(project.cluster(), "content.joins"):
            row = project.codec.decode("podium.content.JoinState", value)
            rows[row["request_id"]] = row
        waiting = {
            rid
            for rid in ids
            if rid in rows and rows[rid]["status"] == "waiting" and "factcheck" in rows[rid]["arrived"]
        }
        if waiting == ids:
            break
        await asyncio.sleep(0.5)
    return waiting
