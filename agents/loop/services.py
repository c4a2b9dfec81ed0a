"""What an agent's stages in one process share: a hold on the process's model gateway, the
state and ledger tables, the toolboxes (open while any stage is), a publisher for what must be
acknowledged before a side effect runs, and the sweeper that turns a call's silence into a
recorded failure and an unanswered approval into a denial."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from agents.gateway.gateway import CallPolicy, ModelGateway
from agents.gateway.providers.local import LocalModel, ToolModel
from agents.gateway.providers.protocol import ToolSpec
from agents.gateway.resource import GatewayResource, shared_or_own
from agents.loop.agent import Agent
from agents.loop.records import tool_error_result, unknown_outcome
from agents.loop.state import ToolInfo, overdue
from agents.loop.tools import Tool, Toolbox
from streams.contracts import now_ms
from streams.ingress import TIMEOUT_BY, Decision, Publisher
from streams.runtime import Record, SharedResource, StageEnv, Table

__all__ = ["AgentServices"]

log = logging.getLogger("podium.agent")

_GRACE_MS = 5_000  # after a call's expiry, before it is reported as timed out
_REMIND_EVERY_MS = 5_000  # a timeout not yet taken in is sent again this often
_REMINDERS = 3  # then the request is reported stuck instead of reminded forever


class AgentServices(SharedResource):
    def __init__(
        self,
        agent: Agent,
        models: Path,
        gateway: GatewayResource | None = None,
        local_models: Mapping[str, LocalModel | ToolModel] | None = None,
        *,
        sweep_every_s: float = 1.0,
        dry_run: bool = False,
    ) -> None:
        super().__init__()
        self.agent = agent
        self._shared_gateway = shared_or_own(gateway, models, local_models)
        self.states = Table(agent.state, key_of=lambda row: str(row["request_id"]), version_of=_version)
        self.ledger = Table(agent.ledger, key_of=lambda row: str(row["call_id"]), version_of=_done_last)
        self._sweep_every_s = sweep_every_s
        self._dry_run = dry_run
        self._gateway: ModelGateway | None = None
        self._policy: CallPolicy | None = None
        self._publisher: Publisher | None = None
        self._opened: list[Toolbox] = []
        self._tools: dict[str, tuple[Tool, ToolInfo]] = {}
        self._by_stage: dict[str, dict[str, Tool]] = {}
        self._infos: dict[str, ToolInfo] = {}
        self._specs: tuple[ToolSpec, ...] = ()
        self._sweeper: asyncio.Task[None] | None = None
        self._reminded: dict[str, tuple[int, int]] = {}  # call id -> (last sent, times sent)
        self.env: StageEnv | None = None

    async def _open(self, env: StageEnv) -> None:
        await self._shared_gateway.open(env)  # config errors first
        self._gateway = self._shared_gateway.gateway
        try:
            self._policy = self._shared_gateway.config.policy(self.agent.policy)
            self.env = env
            await self._open_tools()
            await self.states.open(env)
            await self.ledger.open(env)
            publisher = Publisher(cluster=env.cluster, catalog=env.catalog, codec=env.codec)
            await publisher.__aenter__()
            self._publisher = publisher
            if not self._dry_run:
                self._sweeper = asyncio.create_task(self._sweep(), name=f"{self.agent.name}-sweeper")
        except BaseException:
            await self._close()  # not counted as open: close() would not reach it
            raise

    async def _open_tools(self) -> None:
        for entry in self.agent.tools:
            stage = self.agent.tool_stage(entry)
            topic = self.agent.tool_topic(entry)
            if isinstance(entry, Tool):
                tools: tuple[Tool, ...] = (entry,)
            else:
                await entry.open()
                self._opened.append(entry)
                tools = entry.tools()
            self._by_stage[stage] = {t.name: t for t in tools}
            for t in tools:
                if t.name in self._tools:
                    raise ValueError(f"agent {self.agent.name}: two tools are named {t.name!r}")
                self._tools[t.name] = (t, ToolInfo(t.name, topic, t.side_effect, t.requires_approval))
        # What every event and turn reads: made once here, not per record.
        self._infos = {name: info for name, (_, info) in self._tools.items()}
        self._specs = tuple(tool.spec() for tool, _ in self._tools.values())

    async def _close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        publisher, self._publisher = self._publisher, None
        gateway, self._gateway = self._gateway, None
        try:
            await self.states.close()
            await self.ledger.close()
            if publisher is not None:
                await publisher.__aexit__(None, None, None)
            for box in reversed(self._opened):
                await box.close()
        finally:
            self._opened.clear()
            self._tools.clear()
            self._infos, self._specs = {}, ()
            self._by_stage.clear()
            if gateway is not None:
                await self._shared_gateway.close()  # the last user closes the gateway itself

    @property
    def gateway(self) -> ModelGateway:
        assert self._gateway is not None, "the agent's services are not open"
        return self._gateway

    @property
    def policy(self) -> CallPolicy:
        assert self._policy is not None, "the agent's services are not open"
        return self._policy

    @property
    def publisher(self) -> Publisher:
        assert self._publisher is not None, "the agent's services are not open"
        return self._publisher

    def infos(self) -> dict[str, ToolInfo]:
        return self._infos

    def specs(self) -> tuple[ToolSpec, ...]:
        return self._specs

    def stage_tools(self, stage: str) -> Mapping[str, Tool]:
        """The tools whose calls the stage ``stage`` runs."""
        return self._by_stage.get(stage, {})

    async def state_of(self, request_id: str) -> Record | None:
        """The request's state, read fresh every time: another worker may have written it before
        a rebalance handed its partition over, and this process's own last write counts only once
        Kafka acknowledged it (the follower then reads it back)."""
        return await self.states.get(request_id, fresh=True)

    async def ledger_entry(self, call_id: str) -> Record | None:
        entry = self.ledger.get_now(call_id)
        if entry is not None and entry["status"] == "done":
            return entry
        return await self.ledger.get(call_id, fresh=True)

    async def _sweep(self) -> None:
        """A call whose result is late gets a ``timeout`` result, an approval nobody answered a
        denial by ``timeout``, both published like any other on the topics the agent reads,
        keyed by request id, so the worker that owns the request takes them in order. Any
        process may send one; the agent takes the first and ignores the rest."""
        while True:
            await asyncio.sleep(self._sweep_every_s)
            now = now_ms()
            seen = set()
            for state in self.states.rows():
                if state["status"] == "done":
                    continue
                # A tool stage starts no call past its expiry; the grace lets a `started` mark
                # of one that began just before reach the ledger first.
                late_results = overdue(state, now - _GRACE_MS)[0]
                late_decisions = overdue(state, now)[1]
                for row in (*late_results, *late_decisions):
                    seen.add(row["call_id"])
                    await self._remind_once_in_a_while(state, row, now, row in late_decisions)
            self._reminded = {k: v for k, v in self._reminded.items() if k in seen}

    async def _remind_once_in_a_while(self, state: Record, row: Record, now: int, approval: bool) -> None:
        at, times = self._reminded.get(row["call_id"], (0, 0))
        if now - at < _REMIND_EVERY_MS:
            return  # sent already; one lost in a crash is sent again later
        if times >= _REMINDERS:
            if times == _REMINDERS:
                # Taken in, a reminder ends the wait: the agent stage fails on this request.
                log.error(
                    "agent %s: %d timeouts of call %s were never taken in; request %s is stuck: see %s.dlq",
                    self.agent.name,
                    times,
                    row["call_id"],
                    state["request_id"],
                    self.agent.requests,
                )
                self._reminded[row["call_id"]] = (now, times + 1)
            return
        try:
            await self._remind(state, row, now, approval)
        # Whatever goes wrong with one reminder, the sweeper goes on and sends it again later; a
        # reminder that was not sent does not count toward the ones after which it gives up.
        except Exception as exc:  # noqa: BLE001
            log.warning("agent %s: could not time out call %s: %s", self.agent.name, row["call_id"], exc)
            self._reminded[row["call_id"]] = (now, times)
            return
        self._reminded[row["call_id"]] = (now, times + 1)

    async def _remind(self, state: Record, row: Record, now: int, approval: bool) -> None:
        rid = state["request_id"]
        waited = (now - row["sent_ms"]) / 1000
        if approval:
            # Signed as the approvals desk reads an expiry (podium approvals shows it "expired").
            decision = Decision(
                rid, row["call_id"], False, f"no decision within {waited:.0f}s", TIMEOUT_BY, now
            )
            await self.publisher.publish(self.agent.decisions, asdict(decision), request_id=rid)
            return
        call = {"request_id": rid, "call_id": row["call_id"], "tool": row["tool"], "turn": state["turn"]}
        result = tool_error_result(
            call,
            "timeout",
            f"{row['tool']} gave no result within {waited:.0f}s; it may be down or stuck",
            "timeout",
            now,
        )
        entry = await self.ledger_entry(row["call_id"])
        if entry is not None and entry["status"] == "done":
            # It ran; its result was lost on the way: the kept one is the answer.
            result = {
                **result,
                "content": entry["content"],
                "is_error": entry["is_error"],
                "error_type": entry["error_type"],
                "source": "ledger",
            }
        elif entry is not None:
            unknown = unknown_outcome(f"{row['tool']} was started {waited:.0f}s ago and has not answered")
            result = {**result, "error_type": unknown.error_type, "content": unknown.content}
        await self.publisher.publish(self.agent.results, result, request_id=rid)


def _version(row: Record) -> tuple[bool, int]:
    return row["status"] == "done", row["version"]


def _done_last(row: Record) -> bool:
    return bool(row["status"] == "done")
