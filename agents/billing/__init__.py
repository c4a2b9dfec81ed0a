"""The billing agent's world: what its tools act on and the offline model that plans its turns.

- :mod:`~agents.billing.accounts`: a stand-in billing system over sample accounts (invoices,
  subscriptions, refunds kept once per idempotency key) and the pure checks behind it;
- :mod:`~agents.billing.docs`: ``search_docs``, the knowledge-base search the agent cites;
- :mod:`~agents.billing.docs_server`: the same search as ``kb_search`` of a local MCP server
  (``python -m agents.billing.docs_server``, stdio), standing in for a team's docs service;
- :mod:`~agents.billing.planner`: ``local-planner``, rules over the billing tools (not an LLM),
  reading the conversation through :mod:`~agents.billing.conversation`.

The face is lazy: a name is imported on first use, so importing the package (the MCP server
does, as ``python -m``) loads neither the knowledge base nor the gateway.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module: imported on first use (PEP 562).
_FACE = {
    "ACCOUNTS": "accounts",
    "BillingError": "accounts",
    "DocHit": "docs",
    "DocSearch": "docs",
    "Invoice": "accounts",
    "KnowledgeBase": "docs",
    "PLANNER_MODELS": "planner",
    "Refund": "accounts",
    "RefundRefused": "accounts",
    "SampleBillingSystem": "accounts",
    "Subscription": "accounts",
    "UnknownAccount": "accounts",
    "UnknownInvoice": "accounts",
    "find_duplicate_charges": "accounts",
    "search_docs": "docs",
}

__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    if name not in _FACE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_FACE[name]}"), name)
