"""The billing agent: a support agent for billing questions, as stages.

It looks up the account's invoices and subscription in the sample billing system (a stand-in,
:mod:`agents.billing.accounts`), searches the docs in process and through the docs MCP server (a
separate process, :mod:`agents.billing.docs_server`), and proposes refunds, which a person
approves (``podium approve``) before the refund runs, once. Its model turns follow the
``billing`` policy of ``models.yaml``: the offline planner (:mod:`agents.billing.planner`, rules,
not an LLM) by default, the provider simulator with ``--provider sim``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from agents.billing.accounts import Invoice, Refund, SampleBillingSystem, Subscription
from agents.billing.docs import DocSearch, HitCount
from agents.billing.docs import search_docs as search_kb
from agents.gateway.resource import GatewayResource
from agents.loop import Agent, Limits, McpToolbox, Tool, Toolbox, agent_stages, tool
from streams.runtime import Stage

__all__ = ["BILLING_SYSTEM", "billing_agent", "billing_stages"]

BILLING_SYSTEM = (
    "You are Lumen's billing assistant. Look facts up with the tools before you answer; never guess "
    "an amount. Propose a refund only for a charge the invoices show was made twice, and say which "
    "documentation you used."
)

Account = Annotated[str, Field(description="the customer's account id, e.g. A-1001")]


def billing_tools(system: SampleBillingSystem, calls_log: Path) -> tuple[Tool | Toolbox, ...]:
    """The agent's tools over ``system``; every run of the refund tool is appended to
    ``calls_log`` (the tool's own count of its executions, across processes)."""

    @tool
    def lookup_invoices(account: Account) -> list[Invoice]:
        """Every invoice of the account, oldest first: what it was charged or billed, for which
        month, and whether it was paid or refunded. For questions about a charge, bill or payment."""
        return system.lookup_invoices(account)

    @tool
    def get_subscription(account: Account) -> Subscription:
        """The account's subscription: its plan, monthly or annual price, status and renewal date."""
        return system.get_subscription(account)

    # async: run on the event loop, not in a worker thread (the stemmer is not thread-safe).
    @tool
    async def search_docs(
        query: Annotated[str, Field(description="what to look for, in the customer's words")], k: HitCount = 3
    ) -> DocSearch:
        """Search Lumen's help center and FAQ: how to do something (export a dashboard, invite a
        user) or what a policy says (refunds, billing); returns titles, links and snippets."""
        return search_kb(query, k)

    @tool(side_effect=True, requires_approval=True, timeout_s=10.0)
    def issue_refund(
        account: Account,
        invoice_id: Annotated[str, Field(description="the invoice to refund, e.g. INV-1001-03")],
        amount_usd: Annotated[float, Field(gt=0, description="how much to refund, in US dollars")],
        idempotency_key: str,
    ) -> Refund:
        """Refund (part of) one paid invoice that was charged twice or in error. A person approves
        every refund before it runs."""
        with calls_log.open("a") as log:
            log.write(json.dumps({"key": idempotency_key, "pid": os.getpid()}) + "\n")
        return system.issue_refund(account, invoice_id, amount_usd, idempotency_key)

    docs_mcp = McpToolbox("docs_mcp", command=[sys.executable, "-m", "agents.billing.docs_server"])
    return (lookup_invoices, get_subscription, search_docs, issue_refund, docs_mcp)


def billing_agent(data_dir: Path, limits: Limits | None = None) -> Agent:
    """The agent, its billing system's records (refunds, the refund tool's runs) in ``data_dir``."""
    system = SampleBillingSystem(data_dir)
    return Agent(
        name="billing",
        policy="billing",
        system=BILLING_SYSTEM,
        tools=billing_tools(system, data_dir / "refund_calls.jsonl"),
        # A person has 10 minutes to answer an approval, within the request's 15-minute budget.
        limits=limits or Limits(max_steps=6, max_consecutive_tool_failures=3, approval_timeout_s=600.0),
    )


def billing_stages(
    models: Path, data_dir: Path, gateway: GatewayResource | None = None, *, dry_run: bool = False
) -> list[Stage[Any]]:
    """The agent stage and its five tool stages. ``gateway``: the process's model gateway
    (default: one of the agent's own, with the offline planner)."""
    from agents.billing.planner import PLANNER_MODELS

    return agent_stages(billing_agent(data_dir), models, gateway, PLANNER_MODELS, dry_run=dry_run)
