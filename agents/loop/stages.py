"""An agent as stages: the agent stage takes model turns, one stage per tool runs its calls.

::

    <agent>.requests --+                      +--> <agent>.tool.<t>  --> tool stage <t> --+
    <agent>.results  --+--> agent stage ------+--> <agent>.approvals (a person decides)   |
    <agent>.decisions -+   (model turns)      +--> <agent>.responses                       |
          ^                                   +--> <agent>.state (every turn, written)     |
          +------------------- <agent>.results <--- <agent>.ledger (every call's outcome) <-+

The agent stage reads the request's state (:mod:`agents.loop.state` decides what an event does),
makes the next model turn when nothing is pending, and emits the new state together with the
tool calls, approval requests or the answer, so that the state is acknowledged before the event
is committed: a worker killed anywhere resumes from the last written step. It consumes its three
topics keyed by request id with one worker per partition number (the runtime's keyed
assignment) and one lane per key, so one request's events are taken one after another, and no
worker is held while tools run or a person decides.

A tool stage looks a call up in the ledger first: a call that returned is never run again (its
kept result is sent instead). A tool with side effects is marked ``started`` in the ledger, and
that acknowledged, before it runs: a call found ``started`` ran, or may have, when its worker
died, so it is not run again and the model hears that its outcome is unknown. At most once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from agents.gateway.errors import BudgetSpent, CostCapReached, GatewayError
from agents.gateway.policy import CostCap
from agents.gateway.providers.local import LocalModel, ToolModel
from agents.gateway.providers.protocol import ChatRequest
from agents.gateway.resource import GatewayResource
from agents.loop.agent import Agent
from agents.loop.records import (
    arguments_preview,
    conversation,
    cut_result,
    response_of,
    tool_error_result,
    unknown_outcome,
)
from agents.loop.services import AgentServices
from agents.loop.state import (
    Ask,
    Turn,
    UnknownCall,
    absorb_decision,
    absorb_result,
    apply_turn,
    finish,
    limit_reached,
    resend,
    start,
    waiting,
)
from agents.loop.tools import Tool, ToolOutcome
from streams.contracts import dlq_topic, now_ms, retry_topic
from streams.errors import CodecError, PermanentError
from streams.runtime import Emit, Record, Stage, StageContext
from streams.telemetry import current_trace_headers, extract_context, new_span_id, span_with_id

__all__ = ["agent_stages"]

TOOL_CALL = "podium.agent.ToolCall"
_TURN_MARGIN_S = 2.0  # the gateway gives up in time for the stage to answer within its own limit


class AgentStage:
    def __init__(self, services: AgentServices) -> None:
        self.services = services
        self.agent = services.agent
        self._tool_dlqs = frozenset(_tool_dlqs(services.agent))
        self._request_retries = retry_topic(services.agent.requests)

    async def think(self, record: Record, ctx: StageContext) -> list[Emit]:
        agent, services = self.agent, self.services
        now = now_ms()
        if ctx.topic in self._tool_dlqs:
            return [await self._dead_tool_call(record, now)]
        # The record's own request id: a header may be anything a producer wrote.
        rid = str(record["request_id"] or ctx.request_id)
        topic = agent.requests if ctx.topic == self._request_retries else ctx.topic
        state = await services.state_of(rid)
        event = _event_id(topic, record, agent)
        if state is None:
            if topic != agent.requests:
                raise UnknownCall(
                    f"a {ctx.topic} record for request {rid}, which {agent.name} has no state for"
                )
            started = start(record, agent.name, now, ctx.headers.deadline_ms or 0, *_agent_span())
            return await self._advance(started, ctx, [], event, now)
        if event in state["absorbed"] or state["status"] == "done":
            return self._again(state, event, now)
        emits: list[Emit] = []
        if topic == agent.results:
            taken = absorb_result(state, record, agent.limits, now)
        elif topic == agent.decisions:
            decided = absorb_decision(state, record, services.infos(), agent.limits, now)
            taken, sends = decided if decided is not None else (None, ())
            emits += [self._call(taken or state, s.topic, s.call_id, s.tool, s.arguments, now) for s in sends]
        else:
            # Not reached: a request's own event is absorbed from its start (a request id used
            # again stands as the first one).
            return self._again(state, event, now)
        if taken is None:
            return self._again(state, event, now)
        return await self._advance(taken, ctx, emits, event, now)

    def _again(self, state: Record, event: str, now: int) -> list[Emit]:
        """An event delivered again (or one that comes too late): what it set off is sent again
        in case its worker died before all of it was acknowledged; nothing is paid or run twice."""
        agent = self.agent
        if state["status"] == "done":
            if event in state["absorbed"]:  # the event that ended the request: its response
                return [Emit(agent.state, state), Emit(agent.responses, response_of(state, now))]
            return [Emit(agent.state, state)]
        sends, asks = resend(state, self.services.infos())
        calls = [self._call(state, s.topic, s.call_id, s.tool, s.arguments, now) for s in sends]
        return [Emit(agent.state, state), *calls, *(self._approval(state, ask, now) for ask in asks)]

    async def _advance(
        self, state: Record, ctx: StageContext, emits: list[Emit], event: str, now: int
    ) -> list[Emit]:
        """Wait for what is pending, or end the request, or take the next model turn."""
        agent = self.agent
        if waiting(state):
            return self._written(state, emits)
        if (reason := limit_reached(state, agent.limits, now)) is not None:
            return self._finished(state, None, reason, emits, event, now)
        try:
            turn = await self._model_turn(state, ctx)
        except (GatewayError, CostCapReached, BudgetSpent) as exc:
            spent = sum(a.cost_usd for a in getattr(exc, "attempts", ()))
            ctx.add_cost(spent)
            state = {**state, "cost_usd": state["cost_usd"] + spent}
            # The gateway wraps a cap reached on every route in a GatewayError that carries its reason.
            if getattr(exc, "dead_letter_reason", "") in ("cost_cap", "budget_exhausted"):
                kind = "budget_exhausted"
            else:
                kind = "deadline" if isinstance(exc, BudgetSpent) else "model_failed"
            return self._finished(state, None, f"{kind}: {exc}", emits, event, now_ms())
        now = now_ms()
        outcome = apply_turn(state, turn, self.services.infos(), agent.limits, now)
        state = outcome.state
        if outcome.answer is not None:
            return self._finished(state, outcome.answer, "", emits, event, now)
        emits += [self._call(state, s.topic, s.call_id, s.tool, s.arguments, now) for s in outcome.sends]
        emits += [self._approval(state, ask, now) for ask in outcome.asks]
        emits += [Emit(agent.results, reply) for reply in outcome.replies]
        return self._written(state, emits)

    async def _model_turn(self, state: Record, ctx: StageContext) -> Turn:
        agent, services = self.agent, self.services
        request = ChatRequest(
            model="",
            messages=conversation(state),
            max_tokens=agent.max_tokens,
            system=agent.system,
            tools=services.specs(),
            # The last turn the limits allow must answer: calls it made could never be read.
            tool_choice="none" if state["turn"] + 1 >= agent.limits.max_steps else None,
        )
        limit = agent.turn_timeout_s - _TURN_MARGIN_S
        if state["deadline_ms"]:
            limit = min(limit, (state["deadline_ms"] - now_ms()) / 1000)
        cap = None
        if agent.limits.max_cost_usd is not None:
            cap = CostCap(agent.limits.max_cost_usd, state["cost_usd"])
        started = time.perf_counter()
        # The turn's chat span hangs from the request's invoke_agent span, whichever worker makes it.
        token = otel_context.attach(extract_context(state["traceparent"] or None, None))
        try:
            result = await services.gateway.complete(
                request, services.policy, time.monotonic() + limit, cap, tenant=ctx.headers.tenant
            )
        finally:
            otel_context.detach(token)
        ctx.add_cost(result.cost_usd)
        usage = result.completion.usage
        return Turn(
            text=result.completion.text,
            tool_calls=result.completion.tool_calls,
            model=f"{result.route.provider}/{result.route.model}",
            tokens_in=usage.input_tokens,
            tokens_out=usage.output_tokens,
            cost_usd=result.cost_usd,
            ms=(time.perf_counter() - started) * 1000,
        )

    def _call(self, state: Record, topic: str, call_id: str, tool: str, arguments: str, now: int) -> Emit:
        expires = next((p["expires_ms"] for p in state["pending"] if p["call_id"] == call_id), 0)
        value = {
            "request_id": state["request_id"],
            "agent": self.agent.name,
            "call_id": call_id,
            "tool": tool,
            "arguments": arguments,
            "turn": state["turn"],
            "results_topic": self.agent.results,
            "traceparent": state["traceparent"],
            "expires_ms": expires,
            "at_ms": now,
        }
        return Emit(topic, value, key=call_id)

    def _approval(self, state: Record, ask: Ask, now: int) -> Emit:
        agent = self.agent
        value = {
            "request_id": state["request_id"],
            "call_id": ask.call_id,
            "pipeline": agent.name,
            "action": ask.tool,
            "arguments": ask.arguments,
            "summary": f"{agent.name} asks to run {ask.tool}({arguments_preview(ask.arguments)})",
            "decisions_topic": agent.decisions,
            "expires_ms": ask.expires_ms,
            "at_ms": now,
        }
        return Emit(agent.approvals, value)

    def _written(self, state: Record, emits: list[Emit]) -> list[Emit]:
        # Not put in the local table: the next event reads it fresh, once Kafka has it (a write
        # whose outputs failed never becomes the state this process goes on from).
        return [Emit(self.agent.state, state), *emits]

    def _finished(
        self, state: Record, answer: str | None, reason: str, emits: list[Emit], event: str, now: int
    ) -> list[Emit]:
        done, response = finish(state, answer, reason, now, event)
        self._record_agent_span(state, response)
        return [*self._written(done, emits), Emit(self.agent.responses, response)]

    def _record_agent_span(self, state: Record, response: Record) -> None:
        """The request's ``invoke_agent`` span, from its first record to now, with the id every
        step's spans were given as their parent."""
        if not state["traceparent"]:
            return
        assert self.services.env is not None
        tracer = self.services.env.telemetry.tracer("podium.agent")
        span_id = int(state["traceparent"].split("-")[2], 16)
        with span_with_id(
            tracer,
            f"invoke_agent {self.agent.name}",
            span_id,
            parent=extract_context(state["agent_span_parent"] or None, None),
            start_time_ns=state["started_ms"] * 1_000_000,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": self.agent.name,
                "podium.request_id": state["request_id"],
                "podium.agent.turns": state["turn"],
                "podium.agent.status": response["status"],
                "podium.cost_usd": response["cost_usd"],
            },
        ) as span:
            if response["reason"]:
                span.set_attribute("podium.agent.reason", response["reason"][:200])
                span.set_status(Status(StatusCode.ERROR, response["reason"][:200]))

    async def _dead_tool_call(self, letter: Record, now: int) -> Emit:
        """A tool record its stage could not process becomes an error result the agent counts
        (re-keyed by request id, so the worker that owns the request takes it in); a side effect
        the ledger shows started may have happened, and is reported so."""
        try:
            call = self.services.states.codec.decode(TOOL_CALL, letter["original_value"] or b"")
        except CodecError as exc:  # nobody to tell but the DLQ
            raise PermanentError(
                f"a dead tool record that is not a tool call ({exc}); the call it was, if any, times out"
            ) from exc
        reason = (
            f"the tool stage {letter['stage']} dead-lettered the call: "
            f"{letter['error_type']}: {letter['error_message'][:300]}"
        )
        result = tool_error_result(call, "dead_letter", reason, "dead_letter", now)
        entry = await self.services.ledger_entry(call["call_id"])
        if entry is not None and entry["status"] == "started":
            unknown = unknown_outcome(reason)
            result = {**result, "content": unknown.content, "error_type": unknown.error_type}
        return Emit(self.agent.results, result, key=call["request_id"])


class ToolStage:
    """Runs the calls of one tool (or of one toolbox's tools)."""

    def __init__(self, services: AgentServices, stage: str) -> None:
        self.services = services
        self.stage = stage

    async def run(self, call: Record, ctx: StageContext) -> list[Emit]:
        services, agent = self.services, self.services.agent
        started, now = time.perf_counter(), now_ms()
        entry = await services.ledger_entry(call["call_id"])
        if entry is not None and entry["status"] == "done":
            kept = ToolOutcome(entry["content"], entry["is_error"], entry["error_type"])
            return [self._result(call, kept, "ledger", 0.0, now)]
        tool = services.stage_tools(self.stage).get(call["tool"])
        if entry is not None:
            outcome = unknown_outcome(
                f"{call['tool']} was started for this call before its worker stopped; it is not run "
                "again (it has side effects)"
            )
        elif call.get("expires_ms") and now > call["expires_ms"]:
            # The agent tells the model it timed out just after this: it must then never run.
            late = (now - call["expires_ms"]) / 1000
            outcome = ToolOutcome(
                f"not run: the call expired {late:.1f}s before it reached its tool", True, "expired"
            )
        elif tool is None:
            known = ", ".join(sorted(services.stage_tools(self.stage))) or "none"
            outcome = ToolOutcome(
                f"unknown tool {call['tool']!r} on stage {self.stage} (it runs {known})", True, "unknown_tool"
            )
        elif (left := ctx.remaining_s()) is not None and left <= 0:
            outcome = ToolOutcome(
                f"not run: the request's time budget ended {-left:.1f}s ago", True, "deadline"
            )
        else:
            outcome = await self._execute(tool, call, ctx)
        ms = (time.perf_counter() - started) * 1000
        done = _ledger(call, "done", outcome, now_ms(), agent.limits.max_result_chars)
        services.ledger.put(done)
        return [
            Emit(agent.ledger, done, key=call["call_id"]),
            self._result(call, outcome, "tool", ms, now_ms()),
        ]

    async def _execute(self, tool: Tool, call: Record, ctx: StageContext) -> ToolOutcome:
        services = self.services
        if tool.side_effect:
            # Acknowledged before the effect runs: a worker killed from here on never runs it again.
            mark = _ledger(call, "started", ToolOutcome(""), now_ms())
            # Keyed (and so compacted) by call id, like the stage's own ledger writes; kept here
            # only once Kafka has it (a mark that failed to go out is no run).
            await services.publisher.publish(services.agent.ledger, mark, request_id=call["call_id"])
            services.ledger.put(mark)
        assert services.env is not None
        tracer = services.env.telemetry.tracer("podium.agent")
        with tracer.start_as_current_span(
            f"execute_tool {tool.name}",
            # Under the agent's invoke_agent span, beside the turn that asked for it.
            context=extract_context(call.get("traceparent") or None, None),
            kind=SpanKind.INTERNAL,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool.name,
                "gen_ai.tool.call.id": call["call_id"],
                "gen_ai.tool.type": "function",
                "gen_ai.agent.name": services.agent.name,
                "podium.request_id": call["request_id"],
            },
        ) as span:
            outcome = await tool.run(call["arguments"], idempotency_key=call["call_id"])
            if tool.side_effect and outcome.error_type in ("timeout", "unavailable"):
                # A sync tool goes on in its thread past its timeout; a server that vanished may
                # have acted: the effect may have happened, and the call is not to be made again.
                outcome = unknown_outcome(outcome.content)
            if outcome.is_error:
                span.set_status(Status(StatusCode.ERROR, outcome.content[:200]))
                span.set_attribute("error.type", outcome.error_type or "tool_error")
        return outcome

    def _result(self, call: Record, outcome: ToolOutcome, source: str, ms: float, now: int) -> Emit:
        # Cut here, not only in the agent: a 5 MB result would not fit the topic.
        content = cut_result(outcome.content, self.services.agent.limits.max_result_chars)
        value = {
            "request_id": call["request_id"],
            "call_id": call["call_id"],
            "tool": call["tool"],
            "turn": call["turn"],
            "content": content,
            "is_error": outcome.is_error,
            "error_type": outcome.error_type,
            "source": source,
            "ms": round(ms, 3),
            "at_ms": now,
        }
        return Emit(self.services.agent.results, value, key=call["request_id"])


def _ledger(call: Record, status: str, outcome: ToolOutcome, now: int, limit: int = 16_000) -> Record:
    return {
        "call_id": call["call_id"],
        "request_id": call["request_id"],
        "tool": call["tool"],
        "status": status,
        "content": cut_result(outcome.content, limit),
        "is_error": outcome.is_error,
        "error_type": outcome.error_type,
        "at_ms": now,
    }


def _event_id(topic: str, record: Record, agent: Agent) -> str:
    """What :mod:`agents.loop.state` records of an event once taken in."""
    if topic == agent.results:
        return f"result:{record['call_id']}"
    if topic == agent.decisions:
        return f"decision:{record['call_id']}"
    return "request"


def _agent_span() -> tuple[str, str]:
    """A new request's invoke_agent span (its traceparent, recorded when the request ends) and
    the span it hangs from: the record that brought the request in."""
    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        return "", ""
    chosen = f"00-{current.trace_id:032x}-{new_span_id():016x}-{int(current.trace_flags):02x}"
    return chosen, current_trace_headers()[0] or ""


def _tool_dlqs(agent: Agent) -> tuple[str, ...]:
    return tuple(dlq_topic(t) for t in agent.tool_topics())


def agent_stages(
    agent: Agent,
    models: Path,
    gateway: GatewayResource | None = None,
    local_models: Mapping[str, LocalModel | ToolModel] | None = None,
    *,
    dry_run: bool = False,
) -> list[Stage[Any]]:
    """The agent stage and one stage per tool, sharing one set of services per process."""
    services = AgentServices(agent, models, gateway, local_models, dry_run=dry_run)
    shared = (services,)
    thinker = AgentStage(services)
    stages: list[Stage[Any]] = [
        Stage(
            agent.stage,
            agent.requests,
            (agent.state, agent.responses, agent.approvals, agent.results, *agent.tool_topics()),
            thinker.think,
            resources=shared,
            # One request's events one after another: its state is read-modify-write. A lane per
            # request in flight, since each holds its lane for a whole model turn.
            ordered_by_key=True,
            max_in_flight=agent.max_in_flight,
            lanes=agent.max_in_flight,
            # A request past its budget is still answered (degraded, with the reason).
            answers_expired=True,
            handler_timeout_s=agent.turn_timeout_s,
            also_consumes=(agent.results, agent.decisions, *_tool_dlqs(agent)),
        )
    ]
    for entry in agent.tools:
        name = agent.tool_stage(entry)
        stages.append(
            Stage(
                name,
                agent.tool_topic(entry),
                (agent.ledger, agent.results),
                ToolStage(services, name).run,
                resources=shared,
                # A call past the request's budget is answered with an error, not dead-lettered.
                answers_expired=True,
                # A call delivered twice runs its deliveries one after another: the second finds
                # the first's result in the ledger instead of its `started` mark.
                ordered_by_key=True,
                # The tool's own timeout answers first; this only bounds the ledger's reads.
                handler_timeout_s=entry.timeout_s + 10.0,
            )
        )
    return stages
