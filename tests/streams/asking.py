"""Helpers for the approval tests on the real broker: the catalog's approval topics applied, an
agent's ApprovalRequest records published as the agent does (keyed by request id), and the
decisions on the decisions topic read back."""

from __future__ import annotations

import json
from typing import Any

from streams.config import Settings
from streams.contracts.headers import now_ms
from streams.ingress.publish import Publisher
from streams.kafka.admin import TopicAdmin
from streams.kafka.connection import Cluster
from streams.kafka.reading import Selection, TopicReader
from streams.runtime.project import Project

APPROVALS = "billing.approvals"
DECISIONS = "billing.decisions"


async def approvals_project(broker_settings: Settings, cluster: Cluster) -> Project:
    """The repository's catalog with its approval and decision topics on the session broker."""
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": cluster.bootstrap}))
    async with TopicAdmin(cluster) as admin:
        await admin.apply(
            project.catalog.select([APPROVALS, DECISIONS, f"{DECISIONS}.retry", f"{DECISIONS}.dlq"])
        )
    return project


def asked(
    request_id: str,
    call_id: str,
    *,
    expires_in_s: float = 300,
    action: str = "issue_refund",
    arguments: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ApprovalRequest as the billing agent writes one."""
    at = now_ms()
    return {
        "request_id": request_id,
        "call_id": call_id,
        "pipeline": "billing",
        "action": action,
        "arguments": json.dumps(arguments or {"invoice": "in_42", "amount_usd": 20}),
        "summary": f"refund $20 on in_42 ({call_id})",
        "decisions_topic": DECISIONS,
        "expires_ms": at + int(expires_in_s * 1000),
        "at_ms": at,
    }


async def ask(project: Project, *requests: dict[str, Any], tenant: str | None = None) -> None:
    """Publish the requests as the agent does, for ``tenant`` (``podium-tenant``) when named."""
    async with Publisher(
        cluster=project.cluster(), catalog=project.catalog, codec=project.codec
    ) as publisher:
        for request in requests:
            await publisher.publish(APPROVALS, request, request_id=request["request_id"], tenant=tenant)


async def agent_decides(project: Project, request_id: str, call_id: str, **fields: Any) -> None:
    """A decision written straight to the decisions topic (the agent's timeout, another person)."""
    decision = {
        "request_id": request_id,
        "call_id": call_id,
        "approved": False,
        "reason": "",
        "by": "timeout",
    }
    async with Publisher(
        cluster=project.cluster(), catalog=project.catalog, codec=project.codec
    ) as publisher:
        await publisher.publish(DECISIONS, {**decision, "at_ms": now_ms(), **fields}, request_id=request_id)


async def decisions_of(project: Project, request_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(key, decoded value) of every decision on the decisions topic for ``request_id``."""
    selection = Selection(DECISIONS, request_id=request_id)
    async with TopicReader(project.cluster()) as reader:
        return [
            (
                (record.key or b"").decode(),
                project.codec.decode("podium.ApprovalDecision", record.value or b""),
            )
            async for record in reader.read(await reader.plan(selection))
            if selection.matches(record)
        ]
