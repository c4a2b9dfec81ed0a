"""What the content stages of one process share: the knowledge base, the checkers, a hold on
the process's model gateway (shared with the other pipelines, see :mod:`agents.gateway.resource`),
the join's table and the timer that turns a missing branch into a recorded failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.content.factcheck import FactChecker
from agents.content.review import Thresholds
from agents.content.seo import kb_idf
from agents.content.style import STYLE_GUIDE, StyleGuide
from agents.content.writer import WRITER_MODELS
from agents.gateway.gateway import CallPolicy, ModelGateway
from agents.gateway.resource import GatewayResource, shared_or_own
from agents.offline.retriever import DOCS, FAQ, KnowledgeSource
from streams.contracts import now_ms
from streams.ingress import Publisher
from streams.runtime import Record, SharedResource, StageEnv, Table

__all__ = ["CHECKS", "JOINS", "STYLE_GUIDE", "ContentConfig", "ContentServices"]

log = logging.getLogger(__name__)

CHECKS = "content.checks"
JOINS = "content.joins"


@dataclass(frozen=True)
class ContentConfig:
    """Read once at the entry point and passed down."""

    models: Path  # models.yaml: the `draft` stage's policy
    thresholds: Thresholds = field(default_factory=Thresholds)
    style_guide: Path = STYLE_GUIDE
    sweep_every_s: float = 1.0  # how often the join looks for rounds past their deadline
    dry_run: bool = False  # publish nothing but the stages' own outputs (no timeout reminders)


class ContentServices(SharedResource):
    def __init__(self, config: ContentConfig, gateway: GatewayResource | None = None) -> None:
        """``gateway``: the process's one model gateway (see :mod:`agents.gateway.resource`)."""
        super().__init__()
        self.config = config
        self._shared_gateway = shared_or_own(gateway, config.models, WRITER_MODELS)
        self.joins = Table(
            JOINS,
            key_of=lambda row: str(row["request_id"]),
            version_of=lambda row: (row["round"], row["status"] == "done", row["updated_ms"]),
        )
        self._gateway: ModelGateway | None = None
        self._policy: CallPolicy | None = None
        self._checker: FactChecker | None = None
        self._guide: StyleGuide | None = None
        self.sources: tuple[KnowledgeSource, ...] = ()
        self.idf: dict[str, float] = {}
        self._publisher: Publisher | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._reminded: dict[tuple[str, int], int] = {}

    async def _open(self, env: StageEnv) -> None:
        await self._shared_gateway.open(env)  # config errors first
        self._gateway = self._shared_gateway.gateway
        try:
            await self._open_rest(env)
        except BaseException:
            await self._close()  # not counted as open: close() would not reach it
            raise

    async def _open_rest(self, env: StageEnv) -> None:
        self._policy = self._shared_gateway.config.policy("draft")
        self._guide = StyleGuide.load(self.config.style_guide)
        docs, faq = await asyncio.gather(
            asyncio.to_thread(KnowledgeSource, "docs", DOCS),
            asyncio.to_thread(KnowledgeSource, "faq", FAQ),
        )
        self.sources = (docs, faq)
        self._checker = FactChecker(docs, faq)
        self.idf = kb_idf(self.sources)  # the SEO keywords' weights, from the same knowledge base
        await self.joins.open(env)
        if not self.config.dry_run:
            publisher = Publisher(cluster=env.cluster, catalog=env.catalog, codec=env.codec)
            await publisher.__aenter__()
            self._publisher = publisher
            self._sweeper = asyncio.create_task(self._remind_overdue(), name="content-join-sweeper")

    async def _close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        gateway, publisher = self._gateway, self._publisher
        self._gateway = self._publisher = None
        try:
            await self.joins.close()
            if publisher is not None:
                await publisher.__aexit__(None, None, None)
        finally:
            if gateway is not None:
                await self._shared_gateway.close()  # the last user closes the gateway itself

    @property
    def gateway(self) -> ModelGateway:
        assert self._gateway is not None, "content services are not open"
        return self._gateway

    @property
    def draft_policy(self) -> CallPolicy:
        assert self._policy is not None, "content services are not open"
        return self._policy

    @property
    def checker(self) -> FactChecker:
        assert self._checker is not None, "content services are not open"
        return self._checker

    @property
    def guide(self) -> StyleGuide:
        assert self._guide is not None, "content services are not open"
        return self._guide

    async def _remind_overdue(self) -> None:
        """A round still waiting past its deadline gets a ``timeout`` record on content.checks,
        keyed like the branches' verdicts, so the join decides it in order with them on the
        worker that owns the key. Every process with the table may send one; the join ignores
        all but the first (the round is done by then)."""
        assert self._publisher is not None
        timeout_ms = int(self.config.thresholds.join_timeout_s * 1000)
        while True:
            await asyncio.sleep(self.config.sweep_every_s)
            now = now_ms()
            overdue = set()
            for row in self.joins.rows():
                key = (row["request_id"], row["round"])
                if row["status"] != "waiting" or row["deadline_ms"] > now:
                    continue
                overdue.add(key)
                if now - self._reminded.get(key, 0) < timeout_ms:
                    continue  # reminded already; a reminder lost in a crash is sent again later
                self._reminded[key] = now
                try:
                    await self._publisher.publish(CHECKS, self._reminder(row), request_id=row["request_id"])
                # Whatever goes wrong with one reminder, the sweeper goes on and retries it later.
                except Exception as exc:  # noqa: BLE001
                    log.warning("join: could not send the timeout reminder of %s: %s", key, exc)
                    self._reminded.pop(key, None)
            self._reminded = {k: at for k, at in self._reminded.items() if k in overdue}

    def _reminder(self, row: Record) -> dict[str, Any]:
        arrived = [self.joins.codec.decode("podium.content.Article", raw) for raw in row["arrived"].values()]
        base = arrived[0] if arrived else {"request_id": row["request_id"], "topic": ""}
        return {**base, "round": row["round"], "status": "timeout", "checks": []}
