"""What the content stages of one process share: the knowledge base, the checkers, the model
gateway, the join's table and the timer that turns a missing branch into a recorded failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.content.factcheck import FactChecker
from agents.content.review import Thresholds
from agents.content.seo import kb_idf
from agents.content.style import STYLE_GUIDE, StyleGuide
from agents.gateway.config import build_gateway, load_gateway_config
from agents.gateway.gateway import CallPolicy, ModelGateway
from agents.retriever import DOCS, FAQ, KnowledgeSource
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
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    thresholds: Thresholds = field(default_factory=Thresholds)
    style_guide: Path = STYLE_GUIDE
    sweep_every_s: float = 1.0  # how often the join looks for rounds past their deadline
    dry_run: bool = False  # publish nothing but the stages' own outputs (no timeout reminders)


class ContentServices(SharedResource):
    def __init__(self, config: ContentConfig) -> None:
        super().__init__()
        self.config = config
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
        gateway_config = load_gateway_config(self.config.models)  # config errors first
        self._policy = gateway_config.policy("draft")
        self._guide = StyleGuide.load(self.config.style_guide)
        docs, faq = await asyncio.gather(
            asyncio.to_thread(KnowledgeSource, "docs", DOCS),
            asyncio.to_thread(KnowledgeSource, "faq", FAQ),
        )
        self.sources = (docs, faq)
        self._checker = FactChecker(docs, faq)
        self.idf = kb_idf(self.sources)  # the SEO keywords' weights, from the same knowledge base
        self._gateway = build_gateway(gateway_config, self.config.environ, telemetry=env.telemetry)
        await self.joins.open(env)
        if not self.config.dry_run:
            self._publisher = Publisher(bootstrap=env.bootstrap, catalog=env.catalog, codec=env.codec)
            await self._publisher.__aenter__()
            self._sweeper = asyncio.create_task(self._remind_overdue(), name="content-join-sweeper")

    async def _close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.joins.close()
        gateway, publisher = self._gateway, self._publisher
        self._gateway = self._publisher = None
        if gateway is not None:
            await gateway.aclose()
        if publisher is not None:
            await publisher.__aexit__(None, None, None)

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
