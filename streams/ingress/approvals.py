"""A person's yes or no to an agent's action: what is waiting, and deciding it.

An agent that needs approval publishes a ``podium.ApprovalRequest`` (one per call of a request)
on an approval topic, keyed by request id, and waits for a ``podium.ApprovalDecision`` with the
same request id and call id on the topic the request names (``decisions_topic``). The first
decision for a call is the one the agent takes; no decision before ``expires_ms`` is a denial,
which the agent publishes itself, signed ``by="timeout"``. Approval topics are found by their
value schema in the catalog, never by pipeline name.

:class:`ApprovalBook` holds what was asked and decided and makes every decision without I/O.
:class:`Approvals` keeps a book current by following the approval and decision topics from
their beginning in a background task (``podium serve`` keeps one open; ``podium approve`` opens
one for a single decision). Each question it answers first reads every record written before it
was asked, so a decision sees all decisions acknowledged before it. Deciding follows this order:

1. read the topics up to their current end;
2. choose the calls still waiting (or fail: unknown request or call, decided, expired);
3. publish one decision per call and wait for Kafka's acknowledgement of each;
4. read the topics up to their new end, which holds our decisions: a call whose first decision
   is not ours was decided elsewhere in the meantime, and the agent takes that one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Self

from aiokafka.errors import KafkaError

from streams.contracts.catalog import Catalog
from streams.contracts.codec import Codec
from streams.contracts.headers import now_ms, parse_headers
from streams.errors import (
    AlreadyDecided,
    ApprovalClosed,
    ApprovalError,
    ApprovalExpired,
    BrokerError,
    CodecError,
    ConfigError,
    UnknownApproval,
    UnknownCall,
)
from streams.ingress.publish import Publisher
from streams.kafka.admin import TopicAdmin
from streams.kafka.connection import Cluster
from streams.kafka.follow import Arrival, Follower

__all__ = ["Approval", "ApprovalBook", "Approvals", "Decision"]

log = logging.getLogger(__name__)

REQUEST_SCHEMA = "podium.ApprovalRequest"
DECISION_SCHEMA = "podium.ApprovalDecision"
#: Who signs the agent's own denial when nobody decided in time; no person may sign so.
TIMEOUT_BY = "timeout"
MAX_REASON_CHARS = 2000
MAX_BY_CHARS = 200

State = Literal["pending", "approved", "denied", "expired"]


@dataclass(frozen=True)
class Decision:
    """A ``podium.ApprovalDecision``."""

    request_id: str
    call_id: str
    approved: bool
    reason: str
    by: str
    at_ms: int


@dataclass(frozen=True)
class Approval:
    """One call of a request that asked for approval (a ``podium.ApprovalRequest``, the topic it
    was asked on), with the first decision taken for it, if any."""

    request_id: str
    call_id: str
    pipeline: str
    action: str
    arguments: str
    summary: str
    decisions_topic: str
    expires_ms: int
    at_ms: int
    topic: str
    decision: Decision | None = None
    tenant: str | None = None  # the podium-tenant of the request that asked

    def state(self, at_ms: int) -> State:
        if self.decision is None:
            return "pending" if at_ms < self.expires_ms else "expired"
        if self.decision.by == TIMEOUT_BY:
            return "expired"
        return "approved" if self.decision.approved else "denied"

    def view(self, at_ms: int) -> dict[str, Any]:
        """As JSON shows it (``podium approvals --json``, ``GET /v1/approvals``)."""
        state = self.state(at_ms)
        left = max(0.0, (self.expires_ms - at_ms) / 1000) if state == "pending" else None
        return {**asdict(self), "state": state, "left_s": left}

    def closed_text(self, at_ms: int, name_call: bool = False) -> str:
        """Why this call is no longer waiting, naming who decided and when."""
        which = f"{self.request_id} (call {self.call_id})" if name_call else self.request_id
        if self.state(at_ms) == "expired":
            return f"{which} timed out at {moment(self.expires_ms)}: the agent denied it"
        assert self.decision is not None
        verb = "approved" if self.decision.approved else "denied"
        reason = f" ({self.decision.reason})" if self.decision.reason else ""
        by = self.decision.by or "an unnamed caller"
        return f"{which} was {verb} by {by} at {moment(self.decision.at_ms)}{reason}"


def moment(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def check_decider(by: str, reason: str) -> None:
    """What a person may sign a decision with."""
    if by == TIMEOUT_BY:
        raise ApprovalError(f"'{TIMEOUT_BY}' signs the agent's own denials: decide under your own name")
    if len(by) > MAX_BY_CHARS:
        raise ApprovalError(f"the name is {len(by)} characters long; at most {MAX_BY_CHARS}")
    if len(reason) > MAX_REASON_CHARS:
        raise ApprovalError(f"the reason is {len(reason)} characters long; at most {MAX_REASON_CHARS}")


class ApprovalBook:
    """What was asked and what was decided; no I/O. The first request for a call and the first
    decision for a call count, whichever topic is read first."""

    def __init__(self) -> None:
        self._asked: dict[str, dict[str, Approval]] = {}  # request id -> call id -> approval
        self._decided: dict[tuple[str, str, str], Decision] = {}  # (topic, request id, call id)

    def asked(self, topic: str, record: Mapping[str, Any], tenant: str | None = None) -> None:
        approval = Approval(
            request_id=record["request_id"],
            call_id=record["call_id"],
            pipeline=record["pipeline"],
            action=record["action"],
            arguments=record["arguments"],
            summary=record["summary"],
            decisions_topic=record["decisions_topic"],
            expires_ms=record["expires_ms"],
            at_ms=record["at_ms"],
            topic=topic,
            tenant=tenant,
        )
        self._asked.setdefault(approval.request_id, {}).setdefault(approval.call_id, approval)

    def decided(self, topic: str, record: Mapping[str, Any]) -> None:
        decision = Decision(
            request_id=record["request_id"],
            call_id=record["call_id"],
            approved=record["approved"],
            reason=record["reason"],
            by=record["by"],
            at_ms=record["at_ms"],
        )
        self._decided.setdefault((topic, decision.request_id, decision.call_id), decision)

    def approval(self, request_id: str, call_id: str) -> Approval | None:
        asked = self._asked.get(request_id, {}).get(call_id)
        return None if asked is None else self._with_decision(asked)

    def approvals(self) -> list[Approval]:
        """Every call ever asked, with its first decision, in the order asked."""
        every = (self._with_decision(a) for calls in self._asked.values() for a in calls.values())
        return sorted(every, key=lambda a: a.at_ms)

    def pending(self, at_ms: int) -> list[Approval]:
        return [a for a in self.approvals() if a.state(at_ms) == "pending"]

    def open_calls(
        self,
        request_id: str,
        call_id: str | None,
        at_ms: int,
        visible: Callable[[Approval], bool] | None = None,
    ) -> list[Approval]:
        """The calls a decision on ``request_id`` (or only its ``call_id``) decides now; calls
        ``visible`` refuses (another tenant's, over HTTP) are as unknown as calls never asked."""
        calls = {c: a for c, a in self._asked.get(request_id, {}).items() if visible is None or visible(a)}
        if not calls:
            raise UnknownApproval(
                f"no approval was asked for request {request_id}: check the id against the "
                "pending ones (`podium approvals`, GET /v1/approvals)"
            )
        if call_id is not None and call_id not in calls:
            raise UnknownCall(
                f"request {request_id} asked no approval for call {call_id}: name one of "
                f"{', '.join(calls)}, or none to decide them all"
            )
        chosen = [self._with_decision(calls[c]) for c in (calls if call_id is None else [call_id])]
        waiting = [a for a in chosen if a.state(at_ms) == "pending"]
        if waiting:
            return waiting
        raise closed(chosen, at_ms)

    def _with_decision(self, asked: Approval) -> Approval:
        decision = self._decided.get((asked.decisions_topic, asked.request_id, asked.call_id))
        return asked if decision is None else replace(asked, decision=decision)


def closed(approvals: list[Approval], at_ms: int, prefix: str = "") -> ApprovalClosed:
    """The error for calls that are no longer waiting: expired when all are, else decided."""
    text = "; ".join(a.closed_text(at_ms, name_call=len(approvals) > 1) for a in approvals)
    if all(a.state(at_ms) == "expired" for a in approvals):
        return ApprovalExpired(f"{prefix}{text}; ask the agent again to get a new approval request")
    return AlreadyDecided(f"{prefix}{text}; the first decision stands (`podium approvals --all`)")


class Approvals:
    """``async with Approvals(cluster=..., catalog=..., codec=..., publisher=pub) as desk:``
    then ``await desk.pending()`` or ``await desk.decide(request_id, approved=True, by="ana")``.

    Without a ``publisher`` it only reads. An approval or decision topic of the catalog that is
    not on the cluster is skipped with a warning (nothing can have been asked there).
    """

    POLL_S = 0.2

    def __init__(
        self,
        *,
        cluster: Cluster,
        catalog: Catalog,
        codec: Codec,
        publisher: Publisher | None = None,
        publish_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        self._cluster = cluster
        self._catalog = catalog
        self._codec = codec
        self._publisher = publisher
        self._publish_timeout_s = publish_timeout_s
        self._read_timeout_s = read_timeout_s
        self._asks = _topics_of(catalog, REQUEST_SCHEMA)
        self._answers = _topics_of(catalog, DECISION_SCHEMA)
        self._book = ApprovalBook()
        self._follower: Follower | None = None
        self._task: asyncio.Task[None] | None = None
        self._polled = asyncio.Event()  # replaced after every poll: waiters wake once per poll
        self._deciding = asyncio.Lock()  # one decision at a time, so two cannot both be first here

    async def __aenter__(self) -> Self:
        wanted = [*self._asks, *self._answers]
        if not wanted:
            return self
        async with TopicAdmin(self._cluster) as admin:
            existing = await admin.existing(wanted)
        missing = [t for t in wanted if t not in existing]
        if missing:
            log.warning("not on the cluster, so not read: %s (run `podium topics apply`)", ", ".join(missing))
        self._asks = [t for t in self._asks if t in existing]
        self._answers = [t for t in self._answers if t in existing]
        if not existing:
            return self
        follower = Follower(self._cluster, [*self._asks, *self._answers], from_beginning=True)
        try:
            await follower.__aenter__()  # closes itself when it fails
        except KafkaError as exc:
            raise BrokerError(f"cannot read the approval topics at {self._cluster}: {exc}") from exc
        self._follower = follower
        self._task = asyncio.create_task(self._follow(follower), name="approvals")
        # Whatever ends the loop wakes its waiters, who then see it ended.
        self._task.add_done_callback(lambda _: self._polled.set())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._follower is not None:
            await self._follower.__aexit__(None, None, None)
            self._follower = None

    @property
    def healthy(self) -> bool:
        return self._follower is None or (self._task is not None and not self._task.done())

    async def pending(self) -> list[Approval]:
        """The calls waiting for a decision now, in the order asked."""
        await self._read_to_end()
        return self._book.pending(now_ms())

    async def approvals(self) -> list[Approval]:
        """Every call asked, decided or not, in the order asked."""
        await self._read_to_end()
        return self._book.approvals()

    async def decide(
        self,
        request_id: str,
        approved: bool,
        reason: str = "",
        by: str = "",
        call_id: str | None = None,
        visible: Callable[[Approval], bool] | None = None,
    ) -> list[Approval]:
        """Decide every waiting call of ``request_id`` (or only ``call_id``): one decision each,
        acknowledged by Kafka. Returns the calls with the decisions taken (the module docstring
        numbers the steps). ``visible``: the calls this decider may see (others are unknown)."""
        check_decider(by, reason)
        if self._publisher is None:
            raise ConfigError("these approvals were opened to read only: give them a Publisher to decide")
        async with self._deciding:
            await self._read_to_end()  # 1
            waiting = self._book.open_calls(request_id, call_id, now_ms(), visible)  # 2
            for approval in waiting:
                if approval.decisions_topic not in self._answers:
                    raise ConfigError(
                        f"request {request_id} wants its decision on {approval.decisions_topic}, which is "
                        f"not a {DECISION_SCHEMA} topic of {self._catalog.path} on this cluster"
                    )
            decided: list[Approval] = []
            for approval in waiting:  # 3
                decision = Decision(request_id, approval.call_id, approved, reason, by, now_ms())
                await self._publish(approval, decision, decided)
                decided.append(replace(approval, decision=decision))
            await self._confirm(decided)  # 4
        return decided

    async def _publish(self, approval: Approval, decision: Decision, before: list[Approval]) -> None:
        assert self._publisher is not None
        published = f" (published before it: {', '.join(a.call_id for a in before)})" if before else ""
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self._publisher.publish(
                    approval.decisions_topic, asdict(decision), request_id=decision.request_id
                )
        except TimeoutError:
            raise BrokerError(
                f"Kafka did not acknowledge the decision on {decision.request_id} call {decision.call_id} "
                f"within {self._publish_timeout_s:g}s{published}; it may still arrive: "
                "`podium approvals --all` shows what the topic holds"
            ) from None
        except BrokerError as exc:
            # The same class: Kafka refusing the write (PublishRefused) is no outage to retry.
            raise type(exc)(f"{exc}{published}") from exc

    async def _confirm(self, decided: list[Approval]) -> None:
        """Step 4: ours were acknowledged; a failure to read them back leaves them standing."""
        try:
            await self._read_to_end()
        except BrokerError as exc:
            log.warning("decisions published but not read back, so not checked for being first: %s", exc)
            return
        at = now_ms()
        first = [self._book.approval(a.request_id, a.call_id) for a in decided]
        beaten = [f for f, ours in zip(first, decided, strict=True) if f is not None and f != ours]
        if beaten:
            raise closed(beaten, at, prefix="your decision was published, but another came first: ")

    async def _read_to_end(self) -> None:
        """Wait until the background loop has read every record written before this call."""
        if self._follower is None or self._task is None:
            return
        try:
            async with asyncio.timeout(self._read_timeout_s):
                ends = await self._follower.ends()
                while True:
                    polled = self._polled
                    if await self._follower.reached(ends):
                        return
                    if self._task.done():
                        raise BrokerError("the approvals reader stopped; restart the process")
                    await polled.wait()
        except TimeoutError:
            raise BrokerError(
                f"could not read the approval topics to their end within {self._read_timeout_s:g}s "
                f"(Kafka at {self._cluster})"
            ) from None
        except KafkaError as exc:
            raise BrokerError(f"cannot read the approval topics at {self._cluster}: {exc}") from exc

    async def _follow(self, follower: Follower) -> None:
        while True:
            try:
                batch = await follower.poll(self.POLL_S)
            except Exception:  # the follower reconnects by itself; keep reading
                log.exception("approvals: poll failed")
                await asyncio.sleep(self.POLL_S)
                continue
            for arrivals in batch.values():
                for arrival in arrivals:
                    self._take(arrival)
            self._polled.set()
            self._polled = asyncio.Event()

    def _take(self, arrival: Arrival) -> None:
        asked = arrival.topic in self._asks
        try:
            record = self._codec.decode(REQUEST_SCHEMA if asked else DECISION_SCHEMA, arrival.value or b"")
        except CodecError as exc:
            log.warning("skipped %s/%d@%d: %s", arrival.topic, arrival.partition, arrival.offset, exc)
            return
        if asked:
            self._book.asked(arrival.topic, record, parse_headers(arrival.headers).tenant)
        else:
            self._book.decided(arrival.topic, record)


def _topics_of(catalog: Catalog, schema: str) -> list[str]:
    # A retry companion carries the same schema; only the topic itself counts.
    return [t.name for t in catalog.topics if t.value_schema == schema and t.role == "main"]
