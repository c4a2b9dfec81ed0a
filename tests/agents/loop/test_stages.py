"""The agent loop on the real broker: model turns, tool stages, approvals and limits, with a
scripted local planner (a test's ToolModel) so every turn is known."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from agents.gateway.providers.local import LocalTurn, ToolModel
from agents.gateway.providers.protocol import ChatRequest, ToolCall
from agents.loop.agent import Agent
from agents.loop.stages import agent_stages
from agents.loop.state import Limits
from agents.loop.tools import Tool, ToolError, tool
from streams.contracts.catalog import Catalog
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.headers import now_ms
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.runtime.stage import Stage
from streams.runtime.stage_worker import StageWorker
from streams.telemetry.otel import Telemetry
from tests.streams.running import read_topic, running

TOPICS = """
topics:
  {p}.requests: {value: podium.agent.Request, consumer: {p}-agent, budget: 60s}
  {p}.results: {value: podium.agent.ToolResult, consumer: {p}-agent}
  {p}.decisions: {value: podium.ApprovalDecision, consumer: {p}-agent}
  {p}.approvals: {value: podium.ApprovalRequest}
  {p}.state: {value: podium.agent.State, cleanup: compact}
  {p}.ledger: {value: podium.agent.LedgerEntry, cleanup: compact}
  {p}.responses: {value: podium.agent.Response}
  {p}.tool.add: {value: podium.agent.ToolCall, consumer: add}
  {p}.tool.mul: {value: podium.agent.ToolCall, consumer: mul}
  {p}.tool.flaky: {value: podium.agent.ToolCall, consumer: flaky}
  {p}.tool.big: {value: podium.agent.ToolCall, consumer: big}
  {p}.tool.pay: {value: podium.agent.ToolCall, consumer: pay}
"""

MODELS = """
providers:
  local: {kind: local}
prices:
  scripted: {input: 0, output: 0}
stages:
  scripted-agent:
    chain:
      - {provider: local, model: scripted}
    timeout_s: 5
    max_retries: 0
"""

PAID: dict[str, int] = {}  # idempotency key -> times the payment ran


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def mul(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@tool
def flaky(reason: str) -> str:
    """Always fails, saying why."""
    raise ToolError(f"flaky is down: {reason}")


@tool
def big() -> str:
    """Returns 5 MB of text."""
    return "x" * (5 * 1024 * 1024)


@tool(side_effect=True, requires_approval=True)
def pay(amount: int, idempotency_key: str) -> str:
    """Pay out an amount (a side effect a person approves)."""
    PAID[idempotency_key] = PAID.get(idempotency_key, 0) + 1
    return f"paid {amount}"


TOOLS: tuple[Tool, ...] = (add, mul, flaky, big, pay)  # type: ignore[assignment]


def _results(request: ChatRequest) -> list[dict[str, Any]]:
    return [m for m in request.messages if m["role"] == "tool"]


def _calls(turn: int, *calls: tuple[str, dict[str, Any] | str]) -> LocalTurn:
    return LocalTurn(
        tool_calls=tuple(
            ToolCall(f"s{turn}-{i}", name, args if isinstance(args, str) else json.dumps(args))
            for i, (name, args) in enumerate(calls)
        )
    )


def _turns(request: ChatRequest) -> int:
    return sum(1 for m in request.messages if m["role"] == "assistant")


Planner = Callable[[ChatRequest], LocalTurn]


async def _ask(
    tmp_path: Path,
    make_topics: Callable[[str, str], Awaitable[Catalog]],
    schema_store: SchemaStore,
    cluster: Cluster,
    unique: str,
    planner: Planner,
    bodies: list[str],
    *,
    limits: Limits | None = None,
    decide: Callable[[dict[str, Any], str], tuple[bool, str] | None] | None = None,
    alter: Callable[[Stage[Any]], Stage[Any]] = lambda stage: stage,
    telemetry: Telemetry | None = None,
    models_text: str = MODELS,
    on: str = "requests",
) -> dict[str, dict[str, Any]]:
    """Run the agent on ``bodies``, the responses by body; ``decide(approval request, body)``
    answers each approval request (None: no answer); ``telemetry`` traces the workers and the
    requests' publisher (none by default)."""
    catalog = await make_topics(TOPICS, unique)
    models = tmp_path / "models.yaml"
    models.write_text(models_text)
    agent = Agent(unique, "scripted-agent", "You add and multiply.", TOOLS, limits or Limits())
    codec = SingleObjectCodec(schema_store)
    stages = [alter(s) for s in agent_stages(agent, models, local_models={"scripted": ToolModel(planner)})]
    workers = [
        StageWorker(s, cluster=cluster, catalog=catalog, codec=codec, telemetry=telemetry) for s in stages
    ]
    responses: dict[str, dict[str, Any]] = {}
    async with (
        running(*workers),
        Follower(cluster, [agent.responses, agent.approvals]) as follower,
        Publisher(cluster=cluster, catalog=catalog, codec=codec, telemetry=telemetry) as publisher,
    ):
        ids = {
            await publisher.publish(f"{unique}.{on}", {"body": b, "context": {"user": "u1"}}): b
            for b in bodies
        }
        deadline = now_ms() + 60_000
        while set(responses) != set(ids) and now_ms() < deadline:
            for rid, arrivals in (await follower.poll(0.2)).items():
                for a in arrivals:
                    value = codec.decode(catalog.get(a.topic).value_schema, a.value or b"")
                    if a.topic == agent.responses:
                        responses[rid] = value
                    elif decide is not None and (verdict := decide(value, ids[rid])) is not None:
                        decision = {
                            "request_id": rid,
                            "call_id": value["call_id"],
                            "approved": verdict[0],
                            "reason": verdict[1],
                            "by": "test",
                            "at_ms": now_ms(),
                        }
                        await publisher.publish(agent.decisions, decision, request_id=rid)
    assert set(responses) == set(ids), f"no answer for {set(ids) - set(responses)}"
    return {ids[rid]: response for rid, response in responses.items()}


async def test_parallel_tool_calls_then_the_answer_from_their_results(  # type: ignore[no-untyped-def]
    tmp_path: Path, make_topics, schema_store: SchemaStore, cluster: Cluster, unique: str
) -> None:
    def planner(request: ChatRequest) -> LocalTurn:
        if _turns(request) == 0:
            assert request.messages[0]["content"] == "what are 2+3 and 4*5?\n\nContext: user=u1"
            assert {t.name for t in request.tools} == {"add", "mul", "flaky", "big", "pay"}
            return _calls(1, ("add", {"a": 2, "b": 3}), ("mul", {"a": 4, "b": 5}))
        return LocalTurn(text=" and ".join(m["content"] for m in _results(request)))

    responses = await _ask(
        tmp_path, make_topics, schema_store, cluster, unique, planner, ["what are 2+3 and 4*5?"]
    )
    (response,) = responses.values()
    assert (response["status"], response["answer"], response["turns"]) == ("answered", "5 and 20", 2)
    kinds = [s["kind"] for s in response["steps"]]
    assert kinds.count("tool_call") == 2 and kinds.count("tool_result") == 2 and kinds[-1] == "answer"
    assert {s["name"] for s in response["steps"] if s["kind"] == "tool_result"} == {"add", "mul"}


async def test_max_steps_and_consecutive_failures_end_the_request_with_the_reason(  # type: ignore[no-untyped-def]
    tmp_path: Path, make_topics, schema_store: SchemaStore, cluster: Cluster, unique: str
) -> None:
    def planner(request: ChatRequest) -> LocalTurn:
        n = _turns(request) + 1
        if "loop" in request.messages[0]["content"]:
            return _calls(n, ("add", {"a": n, "b": 1}))
        return _calls(n, ("flaky", {"reason": f"try {n}"}))

    limits = Limits(max_steps=3, max_consecutive_tool_failures=2)
    responses = await _ask(
        tmp_path,
        make_topics,
        schema_store,
        cluster,
        unique,
        planner,
        ["loop forever", "fail"],
        limits=limits,
    )
    looped, failed = responses["loop forever"], responses["fail"]
    assert looped["reason"].startswith("max_steps") and failed["reason"].startswith(
        "consecutive_tool_failures"
    )
    assert looped["status"] == "degraded" and looped["turns"] == 3
    assert looped["answer"].startswith("I could not finish this request (max steps).")
    assert "- add: 4" in looped["answer"]  # what the tools found is kept
    assert failed["turns"] == 2 and "flaky is down: try 2" in json.dumps(failed["steps"])


async def test_bad_calls_are_told_to_the_model_a_huge_result_is_cut_and_a_dead_tool_record_is_a_failure(  # type: ignore[no-untyped-def]
    tmp_path: Path, make_topics, schema_store: SchemaStore, cluster: Cluster, unique: str
) -> None:
    seen: list[dict[str, Any]] = []

    def planner(request: ChatRequest) -> LocalTurn:
        if _turns(request) == 0:
            huge = {"a": 1, "b": 2, "pad": "x" * 100_000}
            return _calls(
                1,
                ("add", '{"a": 1, "b": '),
                ("mul", {"a": "x", "b": 2}),
                ("nope", {}),
                ("big", {}),
                ("flaky", {"reason": "its stage takes records of 100 bytes at most"}),
                ("mul", huge),
            )
        seen.extend(_results(request))
        return LocalTurn(text="done")

    def small_flaky(stage: Stage[Any]) -> Stage[Any]:
        return replace(stage, max_value_bytes=100) if stage.name == "flaky" else stage

    (response,) = (
        await _ask(tmp_path, make_topics, schema_store, cluster, unique, planner, ["bad"], alter=small_flaky)
    ).values()
    assert response["status"] == "answered"
    by_tool = {m["name"]: m for m in seen}
    huge = seen[-1]  # the last call: mul with 100,000 characters of arguments
    assert (
        huge["is_error"] and "arguments of 100,0" in huge["content"] and "at most 64,000" in huge["content"]
    )
    assert by_tool["add"]["is_error"] and "JSON" in by_tool["add"]["content"]
    mul = next(m for m in seen if m["name"] == "mul")
    assert mul["is_error"] and "a" in mul["content"]
    assert by_tool["nope"]["is_error"] and "unknown tool 'nope'" in by_tool["nope"]["content"]
    assert not by_tool["big"]["is_error"] and len(by_tool["big"]["content"]) < 20_000
    assert "the tool returned 5,242,880 characters" in by_tool["big"]["content"]
    # Dead-lettered by its stage, the call comes back to the model as an error, with the reason.
    assert (
        by_tool["flaky"]["is_error"]
        and "dead-lettered the call: payload_too_large" in by_tool["flaky"]["content"]
    )


async def test_an_approved_payment_runs_once_a_denied_one_never_and_silence_is_a_denial(  # type: ignore[no-untyped-def]
    tmp_path: Path, make_topics, schema_store: SchemaStore, cluster: Cluster, unique: str
) -> None:
    def planner(request: ChatRequest) -> LocalTurn:
        if _turns(request) == 0:
            return _calls(1, ("pay", {"amount": 7}))
        return LocalTurn(text=_results(request)[-1]["content"])

    asked: list[str] = []

    def decide(ask: dict[str, Any], body: str) -> tuple[bool, str] | None:
        assert ask["action"] == "pay" and ask["summary"].endswith("asks to run pay(amount=7)")
        asked.append(body)
        return {"approve": (True, ""), "deny": (False, "not today")}.get(body)

    PAID.clear()
    responses = await _ask(
        tmp_path,
        make_topics,
        schema_store,
        cluster,
        unique,
        planner,
        ["approve", "deny", "ignore"],
        limits=Limits(approval_timeout_s=2.0),
        decide=decide,
    )
    assert responses["approve"]["answer"] == "paid 7"
    assert responses["deny"]["answer"] == "denied by test: not today; the action was not taken"
    assert responses["ignore"]["answer"].startswith("denied by timeout: no decision within")
    assert sorted(asked) == ["approve", "deny", "ignore"]
    approved = next(s for s in responses["approve"]["steps"] if s["kind"] == "approval")
    assert approved["detail"] == "approved by test"
    (key,) = PAID  # the approved call ran once; the others never
    assert PAID[key] == 1 and key.endswith(".1.0")


async def test_a_side_effect_call_delivered_twice_runs_once_and_a_stray_result_is_dead_lettered(  # type: ignore[no-untyped-def]
    tmp_path: Path, make_topics, schema_store: SchemaStore, cluster: Cluster, unique: str
) -> None:
    catalog = await make_topics(TOPICS, unique)
    models = tmp_path / "models.yaml"
    models.write_text(MODELS)
    agent = Agent(unique, "scripted-agent", "", TOOLS)
    codec = SingleObjectCodec(schema_store)
    stages = {
        s.name: s
        for s in agent_stages(agent, models, local_models={"scripted": ToolModel(lambda r: LocalTurn("x"))})
    }
    call = {
        "request_id": "r-dup",
        "agent": unique,
        "call_id": f"{unique}-dup.1.0",
        "tool": "pay",
        "arguments": '{"amount": 3}',
        "turn": 1,
        "results_topic": agent.results,
        "traceparent": "",
        "at_ms": now_ms(),
    }
    stray = {
        "request_id": "r-nobody",
        "call_id": "r-nobody.1.0",
        "tool": "add",
        "turn": 1,
        "content": "3",
        "is_error": False,
        "error_type": "",
        "source": "tool",
        "ms": 0.0,
        "at_ms": now_ms(),
    }
    workers = [
        StageWorker(stages[n], cluster=cluster, catalog=catalog, codec=codec) for n in (agent.stage, "pay")
    ]
    async with (
        running(*workers),
        Follower(cluster, [agent.results, f"{agent.requests}.dlq"]) as follower,
        Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher,
    ):
        for _ in range(2):
            await publisher.publish(agent.tool_topic(pay), call, request_id=call["call_id"])
        # A call its worker marked started and then died on: never run again, its outcome unknown.
        died = {**call, "call_id": f"{unique}-died.1.0"}
        mark = {
            "call_id": died["call_id"],
            "request_id": "r-dup",
            "tool": "pay",
            "status": "started",
            "content": "",
            "is_error": False,
            "error_type": "",
            "at_ms": now_ms(),
        }
        await publisher.publish(agent.ledger, mark, request_id=died["call_id"])
        await publisher.publish(agent.tool_topic(pay), died, request_id=died["call_id"])
        await publisher.publish(agent.results, stray, request_id="r-nobody")
        # Published keyed (and so identified) by call id, as the agent stage keys its calls.
        # Two each: the results of the call delivered twice; the stray result's dead letter (and
        # the agent stage's letters of this test's results: it runs no request).
        got = await follower.collect({call["call_id"], "r-nobody", died["call_id"]}, timeout_s=30, per_id=2)
    assert PAID.get(call["call_id"]) == 1 and died["call_id"] not in PAID, PAID
    (unknown,) = [
        codec.decode("podium.agent.ToolResult", a.value or b"")
        for a in got[died["call_id"]]
        if a.topic == agent.results
    ]
    assert unknown["error_type"] == "unknown_outcome" and unknown["content"].startswith("unknown_outcome:")
    results = [
        codec.decode("podium.agent.ToolResult", a.value or b"")
        for a in got[call["call_id"]]
        if a.topic == agent.results
    ]
    assert [r["source"] for r in results] == ["tool", "ledger"] and results[0]["content"] == results[1][
        "content"
    ]
    letters = [a for a in got["r-nobody"] if a.topic.endswith(".dlq")]
    assert letters, got["r-nobody"]
    letter = codec.decode("podium.DeadLetter", letters[0].value or b"")
    assert "r-nobody" in letter["error_message"] and "no state" in letter["error_message"]
    ledger = [codec.decode("podium.agent.LedgerEntry", v) for k, v in await read_topic(cluster, agent.ledger)]
    assert [e["status"] for e in ledger if e["call_id"] == call["call_id"]][:2] == ["started", "done"]


async def test_a_request_back_from_the_retry_topic_is_answered_and_a_cost_cap_ends_one_degraded(  # type: ignore[no-untyped-def]
    tmp_path: Path, make_topics, schema_store: SchemaStore, cluster: Cluster, unique: str
) -> None:
    def planner(request: ChatRequest) -> LocalTurn:
        return LocalTurn(text="answered")

    retried = await _ask(
        tmp_path, make_topics, schema_store, cluster, unique, planner, ["again"], on="requests.retry"
    )
    assert retried["again"]["answer"] == "answered"

    dear = MODELS.replace("scripted: {input: 0, output: 0}", "scripted: {input: 0, output: 1000}")
    capped = await _ask(
        tmp_path,
        make_topics,
        schema_store,
        cluster,
        unique,
        planner,
        ["dear"],
        limits=Limits(max_cost_usd=0.01),
        models_text=dear,
    )
    assert capped["dear"]["status"] == "degraded"
    assert capped["dear"]["reason"].startswith("budget_exhausted"), capped["dear"]["reason"]
