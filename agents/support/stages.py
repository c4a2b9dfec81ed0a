"""The support pipeline's stages: classify, retrieve, generate, generate-direct, screen.

::

    support.requests -> classify -> support.rag    -> retrieve -> support.grounded -> generate --+
                                 -> support.direct -> generate-direct ---------------------------+
                                 -> support.responses (cached answer)                            |
                                 -> support.rejected  (input screen)                              v
                                      support.responses <- screen <- support.drafts <-------------+
                                      support.rejected  <-

Each stage appends a ``Step`` (model, time, tokens, cost, decision) to the ticket, so the
response shows what every stage did. Every stage reads the remaining latency budget: retrieve
skips optional sources, generate lets the gateway pick a faster model or answers degraded, and
a request whose budget is gone still gets an answer (``answers_expired``), never silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace

from agents.gateway.chunks import chunk_records, coalesce
from agents.gateway.gateway import BudgetSpent, GatewayError, GatewayResult
from agents.gateway.providers.protocol import ChatRequest
from agents.gateway.resource import GatewayResource
from agents.gateway.tiers import complexity_score
from agents.offline.grounded import SYSTEM, Source, grounded_prompt
from agents.offline.retriever import Passage
from agents.rag import Filters
from agents.support.routing import Budget, cited_numbers, degraded_answer, plan_retrieval, route_ticket
from agents.support.services import CachedReply, ChunkSink, SupportConfig, SupportServices
from streams.contracts import now_ms
from streams.runtime import Emit, Record, Stage, StageContext

__all__ = ["support_stages", "tenant_of"]

log = logging.getLogger(__name__)

# What generate keeps for the screen and the hand-off after it when it sets a model's deadline.
SCREEN_RESERVE_S = 0.3


def tenant_of(record: Record, ctx: StageContext) -> str | None:
    """Whose request this is, the one answer every stage of support uses (budgets, caches,
    documents): the ``podium-tenant`` header, set at ingress from the caller's key, wins over the
    record's own ``tenant`` field, so one request is never charged to two tenants."""
    return ctx.headers.tenant or record.get("tenant") or None


def _step(stage: str, started: float, decision: str, **fields: Any) -> Record:
    return {
        "stage": stage,
        "model": "",
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        "model_ms": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "cache_hit": False,
        "retries": 0,
        "fallbacks": 0,
        "tier": "",
        "cost_if_largest_usd": 0.0,
        "decision": decision,
        **fields,
    }


def _response(ticket: Record, ctx: StageContext, answer: str, **fields: Any) -> Record:
    received = ticket.get("received_ms") or ctx.timestamp_ms
    return {
        "request_id": ticket["request_id"],
        "tenant": tenant_of(ticket, ctx),
        "answer": answer,
        "citations": ticket.get("citations", []),
        "route": ticket.get("route", ""),
        "intent": ticket.get("intent", ""),
        "steps": ticket.get("steps", []),
        "degraded": ticket.get("degraded", False),
        "cost_usd": round(ctx.cost_so_far_usd, 8),
        "latency_ms": float(max(0, now_ms() - received)),
        "trace_id": ctx.headers.trace_id or "",
        **fields,
    }


def _rejected(ticket: Record, ctx: StageContext, reasons: Sequence[str]) -> Record:
    received = ticket.get("received_ms") or ctx.timestamp_ms
    return {
        "request_id": ticket["request_id"],
        "tenant": tenant_of(ticket, ctx),
        "stage": ctx.stage,
        "reasons": list(reasons),
        "route": ticket.get("route", ""),
        "intent": ticket.get("intent", ""),
        "steps": ticket.get("steps", []),
        "cost_usd": round(ctx.cost_so_far_usd, 8),
        "latency_ms": float(max(0, now_ms() - received)),
        "trace_id": ctx.headers.trace_id or "",
    }


class SupportStages:
    def __init__(self, services: SupportServices, prefix: str = "") -> None:
        self.services = services
        self.prefix = prefix

    def t(self, topic: str) -> str:
        """A topic's name under this pipeline's prefix (benchmarks run beside the real one)."""
        return self.prefix + topic

    # -- classify ------------------------------------------------------------------------
    async def classify(self, request: Record, ctx: StageContext) -> Emit:
        started = time.perf_counter()
        body: str = request["body"]
        tenant = tenant_of(request, ctx)
        ticket: Record = {
            "request_id": ctx.request_id,
            "body": body,
            "subject": request.get("subject"),
            "tenant": tenant,  # the later stages read the same (and the header, which agrees)
            "customer": request.get("customer"),
            "channel": request.get("channel") or "api",
            "received_ms": ctx.timestamp_ms,
        }
        verdict, predicted = await asyncio.gather(
            self.services.screen_ticket(body), self.services.predict_intent(body)
        )
        cached = None if verdict.blocked else self.services.cached_reply(body, tenant)
        similar, embedded_usd = "", 0.0
        stale: list[str] = []
        if cached is not None and (stale := await self.services.stale_sources(cached)):
            cached = None  # its documents changed: answer again from what they say now
        if cached is None and not verdict.blocked:
            # Exact first; then an earlier answer to the same question put another way, for
            # this tenant and intent only (a hit makes no model call; the request's embedding
            # is charged, 0 for the local model).
            cached, similar, cost = await self.services.similar_reply(
                body, tenant, predicted.intent, ctx.cost_so_far_usd
            )
            ctx.add_cost(cost)
            embedded_usd = cost
            if cached is not None and (gone := await self.services.stale_sources(cached)):
                cached, stale, similar = None, [*stale, *gone], ""
        decision = route_ticket(
            predicted.intent,
            predicted.confidence,
            blocked_because=verdict.reasons if verdict.blocked else (),
            cached=cached is not None,
            direct_at=self.services.config.direct_at,
        )
        ticket |= {"intent": predicted.intent, "confidence": predicted.confidence, "route": decision.route}
        # On the stage's span, so `podium report` can charge the trace's model calls to a route.
        trace.get_current_span().set_attribute("podium.route", decision.route)
        budget = Budget(ctx.remaining_s())
        note = f"route {decision.route}: {decision.reason}"
        if similar:
            note += f"; {similar}"
        if stale:
            note += f"; a cached answer set aside: {', '.join(sorted(set(stale)))} changed since"
        if budget.spent and decision.route in ("rag", "direct"):
            note += f"; budget spent {-(budget.remaining_s or 0):.2f}s ago: answered degraded"
            ticket |= {"degraded": True, "steps": [_step("classify", started, note, model="local/intent")]}
            return Emit(self.t("support.responses"), _response(ticket, ctx, degraded_answer([])))
        step = _step(
            "classify",
            started,
            note,
            model="local/intent",
            cache_hit=cached is not None,
            cost_usd=round(embedded_usd, 8),
        )
        ticket["steps"] = [step]
        if decision.route == "rejected":
            return Emit(self.t("support.rejected"), _rejected(ticket, ctx, verdict.reasons))
        if cached is not None:
            ticket["citations"] = cached.citations
            return Emit(self.t("support.responses"), _response(ticket, ctx, cached.answer, screen="pass"))
        return Emit(self.t(f"support.{decision.route}"), ticket)

    # -- retrieve ------------------------------------------------------------------------
    async def retrieve(self, ticket: Record, ctx: StageContext) -> Emit:
        started = time.perf_counter()
        plan = plan_retrieval(Budget(ctx.remaining_s()))
        notes = [plan.reason] if plan.reason else []
        query, k = ticket["body"], self.services.config.passages
        # A request without a tenant sees the shared documents only, never another tenant's.
        filters = Filters(tenant=tenant_of(ticket, ctx) or "")
        retriever = self.services.retriever
        try:
            async with asyncio.timeout(plan.timeout_s):
                found = await retriever.search(query, k, plan.mode, filters)
        except TimeoutError:
            # Out of time for the hybrid search (a slow embedding call): BM25 answers in process.
            found = await retriever.search(query, k, "bm25", filters)
            notes.append(f"{plan.mode} took over {plan.timeout_s:.2f}s: answered from bm25")
        ctx.add_cost(found.cost_usd)
        notes[:0] = [
            f"{len(found.passages)} passages by {found.mode} from index {found.version}",
            *found.notes,
        ]
        model = f"{found.embed_model} + local/bm25" if found.mode != "bm25" else "local/bm25"
        step = _step(
            "retrieve",
            started,
            "; ".join(notes),
            model=model,
            model_ms=found.embed_ms,
            cost_usd=found.cost_usd,
        )
        ticket = {
            **ticket,
            "passages": [p.__dict__ for p in found.passages],
            "steps": [*ticket["steps"], step],
        }
        return Emit(self.t("support.grounded"), ticket)

    # -- generate ------------------------------------------------------------------------
    async def generate(self, ticket: Record, ctx: StageContext) -> Emit:
        """Drafts the answer, streaming its tokens to ``support.drafts.stream`` as they come:
        ordered chunks, a RESET when a broken stream fails over (or when this request runs
        again), and a FINAL; every chunk is acknowledged before the draft is emitted."""
        started = time.perf_counter()
        # A re-run starts above everything an earlier run may have streamed, with a RESET.
        rerun = ctx.attempt > 1 or ctx.headers.round > 0
        sink = self.services.chunk_sink(
            self.t("support.drafts.stream"),
            ctx.request_id,
            first_seq=(ctx.headers.round * 100 + ctx.attempt - 1) * 100_000,
        )
        try:
            result = await self._generate(ticket, ctx, started, sink, rerun)
        except BaseException:
            # The chunks' own failure must not replace the handler's: the retry reads its flags.
            try:
                await sink.flushed()
            except Exception:
                log.warning(
                    "generate: token chunks of %s not all acknowledged", ctx.request_id, exc_info=True
                )
            raise
        await sink.flushed()
        return result

    async def _generate(
        self, ticket: Record, ctx: StageContext, started: float, sink: ChunkSink, rerun: bool
    ) -> Emit:
        passages = ticket.get("passages", [])
        budget = Budget(ctx.remaining_s())
        if budget.spent or not budget.allows(SCREEN_RESERVE_S):
            return await self._degraded(ticket, ctx, started, sink, "no budget left for a model call")
        sources = [Source(p["title"], p["url"], p["text"]) for p in passages]
        request = ChatRequest(
            model="",  # each route of the policy names its model
            system=SYSTEM,
            messages=grounded_prompt(ticket["body"], ticket.get("intent", ""), sources),
            max_tokens=400,
            temperature=0.2,
        )
        deadline = None
        if budget.remaining_s is not None:
            deadline = time.monotonic() + budget.remaining_s - SCREEN_RESERVE_S
        # The cheapest adequate tier for this request (rules: length, questions, reasoning, code).
        score = complexity_score(ticket["body"], ticket.get("intent"))
        tier, policy = self.services.routed_policy(ctx.stage, score)
        try:
            if rerun:
                seq = sink.next_seq
                await sink.send(
                    {"request_id": ctx.request_id, "seq": seq, "kind": "RESET", "text": "runs again"}
                )
            tenant = tenant_of(ticket, ctx)
            cap = self.services.cost_cap(tenant, ctx.cost_so_far_usd)
            # Closed even when a chunk's send fails mid-stream: the model's connection goes back.
            # The tenant's day and month budgets are held by the ledger around each model call.
            async with contextlib.aclosing(
                self.services.gateway.stream(request, policy, deadline, cap, tenant=tenant)
            ) as events:
                result = await chunk_records(ctx.request_id, coalesce(events), sink.send, sink.next_seq)
        except (GatewayError, BudgetSpent) as exc:
            # What the failed attempts used is still charged (a broken stream is billed).
            for attempt in exc.attempts:
                ctx.add_cost(attempt.cost_usd)
            if isinstance(exc, BudgetSpent):
                failure = f"budget ran out: {exc}"
            elif exc.dead_letter_reason == "budget_exhausted":
                # Every route was refused by a cap (the request's or the tenant's day or month):
                # the decisions say which, the answer is degraded as for the per-request cap.
                failure = f"budget_exhausted: no model fits what tenant {tenant} may still spend"
            else:
                failure = f"every model failed: {exc}"
            left = ctx.remaining_s()
            why = "; ".join(
                [*exc.decisions, failure, *([f"{left:.2f}s of budget left"] if left is not None else [])]
            )
            return await self._degraded(ticket, ctx, started, sink, why, attempts=len(exc.attempts))
        ctx.add_cost(result.cost_usd)
        answer = result.completion.text
        citations = [
            {
                "number": n,
                "id": passages[n - 1]["id"],
                "title": passages[n - 1]["title"],
                "url": passages[n - 1]["url"],
            }
            for n in cited_numbers(answer, len(passages))
        ]
        notes = [f"tier {tier} (complexity {score:.2f})", *result.decisions]
        if result.fallbacks:
            notes.append(
                f"fell back {result.fallbacks}x: "
                + ", ".join(f"{a.provider}/{a.model} {a.outcome}" for a in result.attempts)
            )
        step = _step(
            ctx.stage,
            started,
            "; ".join(notes),
            tier=tier,
            cost_if_largest_usd=round(self.services.cost_on_largest(ctx.stage, result.completion.usage), 8),
            **_usage(result),
        )
        # Another provider's same model is a fallback, not a degradation; a smaller model is.
        degraded = ticket.get("degraded", False) or result.route.model != policy.chain[0].model
        out = {
            **ticket,
            "answer": answer,
            "citations": citations,
            "steps": [*ticket["steps"], step],
            "degraded": degraded,
        }
        return Emit(self.t("support.drafts"), out)

    async def _degraded(
        self, ticket: Record, ctx: StageContext, started: float, sink: ChunkSink, why: str, attempts: int = 0
    ) -> Emit:
        passages = ticket.get("passages", [])
        answer = degraded_answer([(p["title"], p["url"]) for p in passages[:2]])
        await sink.replace_with(answer, f"degraded: {why}")
        citations = [
            {"number": n, "id": p["id"], "title": p["title"], "url": p["url"]}
            for n, p in enumerate(passages[:2], 1)
        ]
        step = _step(
            ctx.stage,
            started,
            f"degraded: {why}",
            retries=max(0, attempts - 1),
            cost_usd=round(ctx.spent_usd, 8),
        )
        out = {
            **ticket,
            "answer": answer,
            "citations": citations,
            "steps": [*ticket["steps"], step],
            "degraded": True,
        }
        return Emit(self.t("support.drafts"), out)

    # -- screen --------------------------------------------------------------------------
    async def screen(self, ticket: Record, ctx: StageContext) -> Emit:
        started = time.perf_counter()
        answer = ticket.get("answer") or ""
        verdict = await self.services.screen_draft(answer)
        note = f"{verdict.action}" + (f": {'; '.join(verdict.reasons)}" if verdict.reasons else "")
        ticket = {**ticket, "steps": [*ticket["steps"], _step("screen", started, note, model="local/safety")]}
        if verdict.blocked:
            return Emit(
                self.t("support.rejected"),
                _rejected(ticket, ctx, [f"draft blocked: {r}" for r in verdict.reasons]),
            )
        if verdict.action == "pass" and ticket.get("route") == "rag" and not ticket.get("degraded"):
            generated = ticket["steps"][-2]
            cost = await self.services.remember_reply(
                ticket["body"],
                CachedReply(verdict.text, ticket.get("citations", []), generated.get("model", "")),
                (generated.get("input_tokens", 0), generated.get("output_tokens", 0)),
                tenant=tenant_of(ticket, ctx),
                intent=ticket.get("intent", ""),
                request_id=ticket["request_id"],
                passages=[Passage(**p) for p in ticket.get("passages", [])],
            )
            ctx.add_cost(cost)  # the request's embedding, before the response states the cost
        response = _response(
            ticket, ctx, verdict.text, screen=verdict.action, screen_reasons=list(verdict.reasons)
        )
        return Emit(self.t("support.responses"), response)


def _usage(result: GatewayResult) -> dict[str, Any]:
    return {
        "model": f"{result.route.provider}/{result.route.model}",
        "model_ms": round(sum(a.latency_s for a in result.attempts) * 1000, 3),
        "input_tokens": sum(a.usage.input_tokens for a in result.attempts),
        "output_tokens": sum(a.usage.output_tokens for a in result.attempts),
        "cost_usd": round(result.cost_usd, 8),
        "cache_hit": result.cache_hit,
        "retries": result.retries,
        "fallbacks": result.fallbacks,
    }


def support_stages(
    config: SupportConfig, prefix: str = "", gateway: GatewayResource | None = None
) -> list[Stage[Any]]:
    """The five stages, sharing one set of services per process. ``prefix`` renames every
    topic (``<prefix>support.requests``, ...): a benchmark or test beside the real pipeline.
    ``gateway``: the process's model gateway, shared with the other pipelines (default: one of
    the pipeline's own, without API keys)."""
    services = SupportServices(config, gateway)
    s = SupportStages(services, prefix)

    def stage(
        name: str, consumes: str, produces: tuple[str, ...], handler: Any, timeout_s: float
    ) -> Stage[Any]:
        # Every support stage answers late requests itself (degraded) and shares the services.
        return Stage(
            name,
            s.t(consumes),
            tuple(s.t(t) for t in produces),
            handler,
            answers_expired=True,
            resources=(services,),
            handler_timeout_s=timeout_s,
        )

    routes = ("support.rag", "support.direct", "support.responses", "support.rejected")
    return [
        stage("classify", "support.requests", routes, s.classify, 30.0),
        stage("retrieve", "support.rag", ("support.grounded",), s.retrieve, 30.0),
        stage("generate", "support.grounded", ("support.drafts",), s.generate, 60.0),
        stage("generate-direct", "support.direct", ("support.drafts",), s.generate, 60.0),
        stage("screen", "support.drafts", ("support.responses", "support.rejected"), s.screen, 30.0),
    ]
