"""The content pipeline's stages::

    content.briefs -> draft -+-> content.drafts.factcheck -> factcheck -+-> content.checks -> join
                             +-> content.drafts.style     -> style     -+
    join -> content.reviewed -> seo -> content.published
         -> content.briefs (a revision, with the critique)   | content.rejected

``draft`` fans each draft out to both checks at once; ``join`` waits for both verdicts of a
round (and for the dead letters of either branch), keeps what arrived in the compacted
``content.joins`` table, and decides as :mod:`agents.content.review` says.
"""

from __future__ import annotations

import time
from typing import Any

from agents.content import factcheck, style
from agents.content.review import arrival, decide, merge_checks, ready
from agents.content.seo import seo_metadata
from agents.content.services import CHECKS, JOINS, ContentConfig, ContentServices
from agents.content.writer import article_prompt
from agents.gateway.providers.protocol import ChatRequest
from agents.gateway.resource import GatewayResource
from agents.offline.grounded import Source
from agents.offline.retriever import merge
from streams.contracts import dlq_topic, now_ms
from streams.errors import PermanentError
from streams.runtime import Emit, Record, Stage, StageContext

__all__ = ["content_stages"]

BRIEFS = "content.briefs"
TO_FACTCHECK = "content.drafts.factcheck"
TO_STYLE = "content.drafts.style"
REVIEWED = "content.reviewed"
PUBLISHED = "content.published"
REJECTED = "content.rejected"
ARTICLE = "podium.content.Article"
DRAFT_TIMEOUT_S = 60.0
DEADLINE_MARGIN_S = 2.0
WRITER_SYSTEM = (
    "You write short articles for Lumen's blog. Use only facts from the numbered sources and the "
    "points; keep the brand voice plain and direct; apply every line of the critique."
)


def _decision(stage: str, round_: int, decision: str, reason: str) -> Record:
    return {"stage": stage, "round": round_, "decision": decision, "reason": reason, "at_ms": now_ms()}


def _step(stage: str, round_: int, started: float, **fields: Any) -> Record:
    return {"stage": stage, "round": round_, "ms": round((time.perf_counter() - started) * 1000, 3), **fields}


class ContentStages:
    def __init__(self, services: ContentServices) -> None:
        self.services = services

    async def draft(self, article: Record, ctx: StageContext) -> list[Emit]:
        started = time.perf_counter()
        round_ = article["round"]
        query = " ".join([article["topic"], *article["points"]])
        found = merge([s.search_now(query, 4) for s in self.services.sources], 4)
        sources = [Source(p.title, p.url, p.text) for p in found]
        messages = article_prompt(
            article["topic"],
            article["audience"],
            article["points"],
            article["must_include"],
            sources,
            article["critique"],
        )
        request = ChatRequest(model="", messages=messages, max_tokens=900, system=WRITER_SYSTEM)
        # The gateway stops trying routes in time for the stage to answer within its own limit.
        limit = DRAFT_TIMEOUT_S - DEADLINE_MARGIN_S
        remaining = ctx.remaining_s()
        deadline = time.monotonic() + (limit if remaining is None else min(remaining, limit))
        # The request's tenant (podium-tenant) pays for the draft out of its day and month budgets.
        result = await self.services.gateway.complete(
            request, self.services.draft_policy, deadline, tenant=ctx.headers.tenant
        )
        ctx.add_cost(result.cost_usd)
        title, body = _title_and_body(result.completion.text, article["topic"])
        model = f"{result.route.provider}/{result.route.model}"
        usage = result.completion.usage
        drafted = {
            **article,
            "status": "drafted",
            "title": title,
            "body": body,
            "checks": [],
            "created_ms": article["created_ms"] or ctx.timestamp_ms,
            "steps": [
                *article["steps"],
                _step(
                    "draft",
                    round_,
                    started,
                    model=model,
                    tokens_in=usage.input_tokens,
                    tokens_out=usage.output_tokens,
                    cost_usd=round(result.cost_usd, 8),
                ),
            ],
            "decisions": [
                *article["decisions"],
                _decision(
                    "draft",
                    round_,
                    "drafted" if round_ == 0 else "revised",
                    f"{model} from {len(sources)} sources"
                    + (f", {len(article['critique'])} critique lines" if round_ else ""),
                ),
            ],
        }
        # The join hears of the round now, so it can time out a round whose checks never answer.
        opened = {**drafted, "status": "opened"}
        return [Emit(TO_FACTCHECK, drafted), Emit(TO_STYLE, drafted), Emit(CHECKS, opened)]

    async def factcheck(self, article: Record, ctx: StageContext) -> Emit:
        started = time.perf_counter()
        report = self.services.checker.check(article["body"])
        findings = [
            {"kind": c.verdict, "text": c.claim, "evidence": c.evidence, "source": c.source}
            for c in report.claims
        ]
        critique = factcheck.critique_lines(report)
        model = "local-factcheck (BM25 evidence, number match)"
        return self._verdict(article, "factcheck", report.score, findings, critique, model, started)

    async def style(self, article: Record, ctx: StageContext) -> Emit:
        started = time.perf_counter()
        if not article["body"].strip():
            raise PermanentError("the draft has no body: nothing to check against the style guide")
        report = style.check_style(article["body"], self.services.guide)
        findings = [
            {"kind": f.rule, "text": f.excerpt, "evidence": f.advice, "source": ""} for f in report.findings
        ]
        critique = style.critique_lines(report)
        model = "local-style (style_guide.yaml rules)"
        return self._verdict(article, "style", report.score, findings, critique, model, started)

    def _verdict(
        self,
        article: Record,
        branch: str,
        score: float,
        findings: list[Record],
        critique: list[str],
        model: str,
        started: float,
    ) -> Emit:
        """A branch's check of this round, sent to the join with the article."""
        threshold = self.services.config.thresholds.of(branch)
        check = {
            "branch": branch,
            "round": article["round"],
            "score": score,
            "threshold": threshold,
            "passed": score >= threshold,
            "findings": findings,
            "critique": critique,
            "model": model,
        }
        step = _step(branch, article["round"], started, model=model)
        return Emit(
            CHECKS, {**article, "status": "checked", "checks": [check], "steps": [*article["steps"], step]}
        )

    async def join(self, incoming: Record, ctx: StageContext) -> list[Emit]:
        joins, thresholds = self.services.joins, self.services.config.thresholds
        failed = ctx.topic in (dlq_topic(TO_FACTCHECK), dlq_topic(TO_STYLE))
        if failed:
            article = joins.codec.decode(ARTICLE, incoming["original_value"] or b"")
            branch = incoming["stage"]
        else:
            article = incoming
            branch = {"opened": "opened", "timeout": "timeout"}.get(article["status"]) or article["checks"][
                -1
            ]["branch"]
        rid, round_ = article["request_id"], article["round"]
        known = joins.get_now(rid)
        if known is None or known["round"] < round_:
            known = await joins.get(rid, fresh=True)  # another worker may have written it
        timeout_ms = int(thresholds.join_timeout_s * 1000)
        state, stale = arrival(known, rid, round_, now_ms(), timeout_ms)
        if stale:
            # Decided already (a late verdict, a second reminder): write back the newest state,
            # never an older one over it.
            return [Emit(JOINS, await joins.get(rid, fresh=True) or state)]
        if failed:
            state["failed"][branch] = incoming["error_message"][:300] or incoming["error_type"]
        elif branch != "timeout":
            # The draft's own "opened" record is kept too: a round whose checks never answer
            # is rejected with the article it was about.
            state["arrived"][branch] = joins.codec.encode(ARTICLE, article)
        if not ready(state, now_ms()):
            joins.put(state)
            return [Emit(JOINS, state)]
        arrived = {b: joins.codec.decode(ARTICLE, raw) for b, raw in state["arrived"].items()}
        # Decided: the state keeps what it needs to recognise late arrivals, not the articles.
        done = {**state, "status": "done", "arrived": {}}
        joins.put(done)
        base = arrived.get("factcheck") or arrived.get("style") or arrived.get("opened") or article
        checks = merge_checks(arrived)
        outcome = decide(checks, state["failed"], round_, thresholds)
        decided = {
            **base,
            "checks": checks,
            "steps": _union_steps(arrived.values(), base),
            "decisions": [
                *base["decisions"],
                _decision("join", round_, outcome.action, "; ".join(outcome.reasons)),
            ],
        }
        if outcome.action == "publish":
            return [Emit(JOINS, done), Emit(REVIEWED, {**decided, "status": "reviewed"})]
        if outcome.action == "revise":
            # The writer keeps no memory: every earlier round's critique goes again, or it undoes fixes.
            critique = list(dict.fromkeys([*base["critique"], *outcome.critique]))
            brief = {**decided, "status": "brief", "round": round_ + 1, "critique": critique}
            return [Emit(JOINS, done), Emit(BRIEFS, brief)]
        rejected = {**decided, "status": "rejected", "reasons": list(outcome.reasons)}
        return [Emit(JOINS, done), Emit(REJECTED, rejected)]

    async def seo(self, article: Record, ctx: StageContext) -> Emit:
        started = time.perf_counter()
        meta = seo_metadata(article["title"], article["body"], idf=self.services.idf)
        seo = {
            "title": meta.title,
            "description": meta.description,
            "keywords": list(meta.keywords),
            "slug": meta.slug,
        }
        return Emit(
            PUBLISHED,
            {
                **article,
                "status": "published",
                "seo": seo,
                "steps": [
                    *article["steps"],
                    _step("seo", article["round"], started, model="local-seo (TF-IDF keywords)"),
                ],
                "decisions": [
                    *article["decisions"],
                    _decision("seo", article["round"], "published", f"slug {meta.slug}"),
                ],
            },
        )


def _title_and_body(text: str, topic: str) -> tuple[str, str]:
    """A draft's first line is its title when it is a heading; a model that wrote none gets the topic."""
    first, _, rest = text.strip().partition("\n")
    if first.startswith("#"):
        return first.lstrip("#").strip() or topic, rest.strip()
    return topic, text.strip()


def _union_steps(articles: Any, base: Record) -> list[Record]:
    """The base's steps plus the other branch's own step, once each."""
    steps = list(base["steps"])
    for article in articles:
        steps += [s for s in article["steps"] if s not in steps]
    return steps


def content_stages(config: ContentConfig, gateway: GatewayResource | None = None) -> list[Stage[Any]]:
    """The five stages, sharing one set of services per process. ``gateway``: the process's
    model gateway, shared with the other pipelines (default: one of the pipeline's own, without
    API keys)."""
    services = ContentServices(config, gateway)
    stages = ContentStages(services)
    shared = (services,)
    return [
        Stage(
            "draft",
            BRIEFS,
            (TO_FACTCHECK, TO_STYLE, CHECKS),
            stages.draft,
            resources=shared,
            handler_timeout_s=DRAFT_TIMEOUT_S,
        ),
        Stage("factcheck", TO_FACTCHECK, (CHECKS,), stages.factcheck, resources=shared),
        Stage("style", TO_STYLE, (CHECKS,), stages.style, resources=shared),
        Stage(
            "join",
            CHECKS,
            (JOINS, REVIEWED, BRIEFS, REJECTED),
            stages.join,
            resources=shared,
            # One request's verdicts are decided one after another: the state is read-modify-write.
            ordered_by_key=True,
            # A round whose budget ran out is still decided (rejected), never left waiting.
            answers_expired=True,
            also_consumes=(dlq_topic(TO_FACTCHECK), dlq_topic(TO_STYLE)),
        ),
        Stage("seo", REVIEWED, (PUBLISHED,), stages.seo, resources=shared),
    ]
