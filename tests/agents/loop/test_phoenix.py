"""An agent request's trace as Arize Phoenix shows it: the loop on the real broker exports
OTLP/HTTP to a real `phoenix serve` (tests/phoenix.py), and the spans are read back from its
REST API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agents.gateway.providers.local import LocalTurn
from agents.gateway.providers.protocol import ChatRequest
from streams.contracts.schemas import SchemaStore
from streams.kafka.connection import Cluster
from streams.telemetry.otel import Telemetry
from tests.agents.loop.test_stages import _ask, _calls, _results, _turns
from tests.phoenix import Phoenix


def _planner(request: ChatRequest) -> LocalTurn:
    """(2+3) + (4*5): two calls in parallel, then one on their results, then the answer."""
    turn = _turns(request)
    if turn == 0:
        return _calls(1, ("add", {"a": 2, "b": 3}), ("mul", {"a": 4, "b": 5}))
    if turn == 1:
        a, b = (int(m["content"]) for m in _results(request))
        return _calls(2, ("add", {"a": a, "b": b}))
    return LocalTurn(text=_results(request)[-1]["content"])


def _ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    chain: list[str] = []
    parent = span["parent_id"]
    while parent is not None and parent in by_id and parent not in chain:
        chain.append(parent)
        parent = by_id[parent]["parent_id"]
    return chain


async def test_an_agent_request_shows_in_phoenix_as_one_trace_of_agent_llm_and_tool_spans(  # type: ignore[no-untyped-def]
    tmp_path: Path,
    make_topics,
    schema_store: SchemaStore,
    cluster: Cluster,
    unique: str,
    phoenix: Phoenix,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As a user points podium at Phoenix (README): PODIUM_OTEL_EXPORTER=otlp and the standard
    # variables; the project is this test's own, so everything in it came from this request.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix.url)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={unique}")
    # Spans only (OTEL_METRICS_EXPORTER=none in the README): Phoenix answers metrics with 405.
    telemetry = Telemetry.configure("otlp", "podium-agent-test", otlp_metrics=False)
    try:
        responses = await _ask(
            tmp_path,
            make_topics,
            schema_store,
            cluster,
            unique,
            _planner,
            ["(2+3) + (4*5)?"],
            telemetry=telemetry,
        )
        assert telemetry.tracer_provider.force_flush(10_000)
    finally:
        await asyncio.to_thread(telemetry.shutdown)
    (response,) = responses.values()
    assert (response["status"], response["answer"], response["turns"]) == ("answered", "25", 3)
    calls = {(s["name"], s["call_id"]) for s in response["steps"] if s["kind"] == "tool_call"}
    assert len(calls) == 3

    # The agent span is written last, when the request ends: once it is in, so is the rest.
    (agent,) = await phoenix.wait_for_spans(unique, 1, name=f"invoke_agent {unique}")
    trace_id, agent_id = agent["context"]["trace_id"], agent["context"]["span_id"]
    spans = await phoenix.spans(unique, trace_id=trace_id)
    by_id = {s["context"]["span_id"]: s for s in spans}
    chats = [s for s in spans if s["name"] == "chat scripted"]
    tools = [s for s in spans if s["name"].startswith("execute_tool ")]
    assert len(chats) == 3 and len(tools) == 3, sorted(s["name"] for s in spans)

    # Phoenix's own classification, from gen_ai.operation.name alone: podium sets no
    # openinference.* attribute. Both what it answers per span and what it filters by.
    assert (agent["span_kind"], agent["attributes"]["gen_ai.operation.name"]) == ("AGENT", "invoke_agent")
    assert {s["span_kind"] for s in chats} == {"LLM"} and {s["span_kind"] for s in tools} == {"TOOL"}
    for kind, expected in (("AGENT", [agent]), ("LLM", chats), ("TOOL", tools)):
        found = await phoenix.spans(unique, trace_id=trace_id, span_kind=kind)
        assert sorted(s["context"]["span_id"] for s in found) == sorted(
            s["context"]["span_id"] for s in expected
        ), kind
    assert not any(key.startswith("openinference.") for s in spans for key in s["attributes"])

    # Every model turn and tool call hangs from the request's agent span, across the hops.
    astray = [s["name"] for s in chats + tools if agent_id not in _ancestors(s, by_id)]
    assert not astray, f"not under invoke_agent: {astray}"
    assert all(s["parent_id"] == agent_id for s in chats + tools)  # directly, as the loop parents them
    # ... which hangs from the processing of the request's record, under its publisher's send.
    first = by_id[agent["parent_id"]]
    assert first["name"] == f"process {unique}.requests"
    assert by_id[first["parent_id"]]["name"] == f"send {unique}.requests"

    # The tool spans name their tool and call as Phoenix shows them (tool.name, tool.id), mapped
    # from gen_ai.tool.name and gen_ai.tool.call.id; the chat spans their model and tokens.
    assert {(s["attributes"]["tool.name"], s["attributes"]["tool.id"]) for s in tools} == calls
    assert {
        (s["attributes"]["gen_ai.tool.name"], s["attributes"]["gen_ai.tool.call.id"]) for s in tools
    } == calls
    assert {s["attributes"]["llm.model_name"] for s in chats} == {"scripted"}
    assert all("llm.token_count.total" in s["attributes"] for s in chats)
