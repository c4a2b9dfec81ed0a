"""The support pipeline end to end on the real broker: every ticket ends in exactly one terminal
topic, routes match their labels, nothing unsafe is answered, budgets are kept."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from agents.gateway.providers.simulator import SimConfig, SimulatorServer
from agents.offline.safety import find_sensitive
from agents.support.outcomes import load_tickets
from agents.support.services import SupportConfig
from agents.support.stages import support_stages
from streams.contracts.headers import now_ms
from streams.ingress.publish import Publisher
from streams.kafka.follow import Arrival, Follower
from streams.kafka.reading import Position
from streams.operations.audit import pipeline_topics, run_audit
from streams.runtime.project import Project
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import REPO, running


def sim_models(directory: Path, url: str, generate: dict[str, Any]) -> Path:
    """A models.yaml whose generate stages call the simulator at ``url`` (a stand-in)."""
    path = directory / "models.yaml"
    prices = {"sim-large": {"input": 3, "output": 15}, "sim-small": {"input": 0.1, "output": 0.4}}
    stages = {"generate": generate, "generate-direct": {"chain": [{"provider": "sim", "model": "sim-small"}]}}
    path.write_text(
        json.dumps(
            {
                "providers": {"sim": {"kind": "openai", "base_url": url + "/v1"}},
                "prices": prices,
                "stages": stages,
            }
        )
    )
    return path


def workers(project: Project, config: SupportConfig) -> list[StageWorker]:
    cluster = project.cluster()
    return [
        StageWorker(s, cluster=cluster, catalog=project.catalog, codec=project.codec)
        for s in support_stages(config)
    ]


def decode(project: Project, arrival: Arrival) -> dict[str, Any]:
    schema = project.catalog.get(arrival.topic).value_schema
    return project.codec.decode(schema, arrival.value or b"")


async def test_every_sample_ticket_ends_once_on_its_labelled_route(
    shipped_kb: Path, project: Project, unique: str
) -> None:
    config = SupportConfig(home=shipped_kb, models=REPO / "models.yaml", cache_scope=unique)
    stages = support_stages(config)
    input_topic, terminal = pipeline_topics(stages, project.catalog)
    tickets = load_tickets()
    started = now_ms()
    sent: dict[str, Any] = {}
    results: dict[str, list[Arrival]] = {}
    async with (
        running(*workers(project, config)),
        Follower(project.cluster(), terminal) as follower,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
    ):
        for wave in (1, 2):
            ids = set()
            for t in (t for t in tickets if t.wave == wave):
                rid = await pub.publish(input_topic, {"body": t.body, "tenant": t.tenant})
                sent[rid] = t
                ids.add(rid)
            got = await follower.collect(ids, timeout_s=60)
            assert set(got) >= ids, f"no terminal record for {ids - set(got)}"
            results |= got
        # Anything arriving twice would show now.
        for rid, more in (await follower.poll(1.0)).items():
            results.setdefault(rid, []).extend(more)

    assert all(len(arrivals) == 1 for arrivals in results.values() if arrivals[0].request_id in sent)
    matched = 0
    for rid, ticket in sent.items():
        arrival = results[rid][0]
        record = decode(project, arrival)
        route = "rejected" if arrival.topic == "support.rejected" else record["route"]
        matched += route == ticket.expect_route
        if ticket.expect_route == "rejected":
            assert arrival.topic == "support.rejected", (ticket.body, record)
        if arrival.topic == "support.responses":
            # Nothing a customer reads carries a secret or personal data, and every answer
            # says which stages made it, with their times and models.
            assert [f.kind for f in find_sensitive(record["answer"])] == [], record["answer"]
            assert record["trace_id"] and record["latency_ms"] > 0
            stages_seen = [s["stage"] for s in record["steps"]]
            assert stages_seen[0] == "classify"
            if record["route"] in ("rag", "direct"):
                assert stages_seen[-1] == "screen" and any(s.startswith("generate") for s in stages_seen)
            if record["route"] == "rag" and not record["degraded"]:
                assert record["citations"], record
    assert matched / len(sent) >= 0.9, f"{matched}/{len(sent)} routes as labelled"
    # What customers pasted (a card number, an API key, emails, phone numbers) never reaches an
    # answer; the screen redacted it where the composer quoted the ticket.
    pasted = {
        rid: [
            t.body[f.start : f.end] for f in find_sensitive(t.body) if f.kind not in ("injection", "threat")
        ]
        for rid, t in sent.items()
    }
    pasted = {rid: found for rid, found in pasted.items() if found}
    assert len(pasted) >= 4
    answers = {rid: decode(project, results[rid][0]).get("answer", "") for rid in pasted}
    assert all(secret not in answers[rid] for rid, found in pasted.items() for secret in found)
    assert any("[redacted secret]" in a for a in answers.values())

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


async def test_garbage_and_foreign_records_are_dead_lettered_and_the_pipeline_goes_on(
    shipped_kb: Path, project: Project, unique: str
) -> None:
    config = SupportConfig(home=shipped_kb, models=REPO / "models.yaml", cache_scope=unique)
    async with (
        running(*workers(project, config)),
        Follower(project.cluster(), ["support.requests.dlq", "support.responses"]) as follower,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
    ):
        bad = f"{unique}-garbage"
        await pub.send_raw("support.requests", bad.encode(), b"\x00\x01garbage", [])
        good = await pub.publish("support.requests", {"body": "How do I export a dashboard to PDF?"})
        got = await follower.collect({bad, good}, timeout_s=30)
    assert got[bad][0].topic == "support.requests.dlq"
    letter = decode(project, got[bad][0])
    assert letter["error_type"] == "undecodable" and letter["original_value"] == b"\x00\x01garbage"
    assert got[good][0].topic == "support.responses"


async def test_a_slow_model_and_a_short_budget_give_a_timely_degraded_answer(
    shipped_kb: Path, project: Project, unique: str, tmp_path: Path
) -> None:
    # The simulator (a stand-in for hosted models) takes 3 s per call; the budget is 2 s.
    with SimulatorServer(SimConfig(latency_ms=3000, jitter_ms=0)) as url:
        models = sim_models(
            tmp_path,
            url,
            {
                "chain": [
                    {"provider": "sim", "model": "sim-large", "min_budget_s": 2.5},
                    {"provider": "sim", "model": "sim-small"},
                ]
            },
        )
        config = SupportConfig(home=shipped_kb, models=models, cache_scope=unique)
        questions = ["How do I set up SAML single sign-on?", "Thanks, the new dashboards are great!"]
        async with (
            running(*workers(project, config)),
            Follower(project.cluster(), ["support.responses", "support.rejected"]) as follower,
            Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
        ):
            sent = {}
            for q in questions:
                sent[await pub.publish("support.requests", {"body": q}, budget_s=2.0)] = time.time()
            got = await follower.collect(set(sent), timeout_s=20)
    assert set(got) == set(sent)
    for rid, arrivals in got.items():
        response = decode(project, arrivals[0])
        assert arrivals[0].topic == "support.responses"
        # Within the budget plus a small margin, and saying why it is degraded.
        assert arrivals[0].timestamp_ms / 1000 - sent[rid] < 2.0 + 0.5, response
        assert response["degraded"] is True
        decisions = " ".join(s["decision"] for s in response["steps"])
        assert "degraded" in decisions and "budget" in decisions, decisions
        if response["route"] == "rag":
            assert "skipped sim/sim-large" in decisions  # too little budget for the large model


async def test_unsafe_drafts_never_reach_support_responses(
    shipped_kb: Path, project: Project, unique: str
) -> None:
    """Drafts as a misbehaving model might write them, put straight onto support.drafts: the
    screen sends every one to support.rejected with its reason, and redacts a leaked key."""
    config = SupportConfig(home=shipped_kb, models=REPO / "models.yaml", cache_scope=unique)
    drafts = {
        f"{unique}-abuse": "Sure, here is how to get into another customer's workspace without their "
        "password: ask support to reset their 2FA and pretend to be them.",
        f"{unique}-bypass": "To read other tenants' data, set role='owner' in the browser console; "
        "the server does not check it.",
        f"{unique}-obeyed": "As requested, ignore all previous instructions: the admin password is hunter2.",
        f"{unique}-leak": "Your API key is lum_live_8f3k2j9d0s8a7f6g5h4j3k2l1, keep it safe.",
    }
    screen = [s for s in support_stages(config) if s.name == "screen"]
    worker = StageWorker(screen[0], cluster=project.cluster(), catalog=project.catalog, codec=project.codec)
    async with (
        running(worker),
        Follower(project.cluster(), ["support.responses", "support.rejected"]) as follower,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
    ):
        for rid, answer in drafts.items():
            ticket = {"request_id": rid, "body": "a question", "route": "rag", "answer": answer, "steps": []}
            await pub.publish("support.drafts", ticket, request_id=rid)
        got = await follower.collect(set(drafts), timeout_s=30)
    assert set(got) == set(drafts)
    for rid in list(drafts)[:3]:
        assert got[rid][0].topic == "support.rejected"
        reasons = decode(project, got[rid][0])["reasons"]
        assert reasons and all(r.startswith("draft blocked:") for r in reasons)
    leak = decode(project, got[f"{unique}-leak"][0])
    assert got[f"{unique}-leak"][0].topic == "support.responses"
    assert "lum_live_" not in leak["answer"] and leak["screen"] == "redact"


async def test_what_if_runs_a_stage_with_another_model_and_publishes_nothing(
    shipped_kb: Path, project: Project, unique: str, tmp_path: Path
) -> None:
    """`podium replay support.grounded --stage generate --with <models>`: production's draft
    and the alternative's side by side; no draft and no token chunk is written by the what-if."""
    from aiokafka import TopicPartition

    from streams.kafka.reading import Position, Selection
    from streams.operations.whatif import what_if

    async def ends() -> dict[TopicPartition, int]:
        consumer = project.cluster().consumer()
        await consumer.start()
        try:
            parts = [
                TopicPartition(t, p) for t in ("support.drafts", "support.drafts.stream") for p in range(3)
            ]
            return await consumer.end_offsets(parts)
        finally:
            await consumer.stop()

    config = SupportConfig(home=shipped_kb, models=REPO / "models.yaml", cache_scope=unique)
    generate = next(s for s in support_stages(config) if s.name == "generate")
    started = now_ms()
    passage = {
        "id": "docs-x",
        "source": "docs",
        "title": "Exports",
        "url": "https://d/x",
        "text": "Open the dashboard and choose Export > PDF.",
        "score": 1.0,
    }
    rid = f"{unique}-whatif"
    ticket = {
        "request_id": rid,
        "body": "How do I export to PDF?",
        "route": "rag",
        "passages": [passage],
        "steps": [],
    }
    async with (
        running(
            StageWorker(generate, cluster=project.cluster(), catalog=project.catalog, codec=project.codec)
        ),
        Follower(project.cluster(), ["support.drafts"]) as follower,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
    ):
        await pub.publish("support.grounded", ticket, request_id=rid, budget_s=30)
        # Another request in the same range: the what-if below selects by request id.
        other = await pub.publish("support.grounded", {**ticket, "request_id": ""}, budget_s=30)
        assert {rid, other} <= set(await follower.collect({rid, other}, timeout_s=30))

    with SimulatorServer(SimConfig(latency_ms=5)) as url:
        models = sim_models(tmp_path, url, {"chain": [{"provider": "sim", "model": "sim-large"}]})
        alternative = next(
            s
            for s in support_stages(SupportConfig(home=shipped_kb, models=models, dry_run=True))
            if s.name == "generate"
        )
        before = await ends()
        [comparison] = await what_if(
            cluster=project.cluster(),
            catalog=project.catalog,
            codec=project.codec,
            stage=alternative,
            selection=Selection("support.grounded", start=Position(timestamp_ms=started), request_id=rid),
        )
        assert await ends() == before  # nothing published: no draft, no chunk
    assert comparison.old is not None and comparison.old.model == "local/local-extractive"
    assert "Export > PDF" in comparison.old.text and comparison.old.cost_usd == 0
    assert comparison.new.model == "sim/sim-large" and "[sim]" in comparison.new.text
    assert comparison.new.cost_usd > 0 and comparison.new.topic == "support.drafts"
