"""The package's face: the names it exports, each importable, and lazily."""

from __future__ import annotations

import subprocess
import sys

import agents.billing


def test_the_face_lists_its_names_and_each_resolves() -> None:
    assert agents.billing.__all__ == [
        "ACCOUNTS",
        "BillingError",
        "DocHit",
        "DocSearch",
        "Invoice",
        "KnowledgeBase",
        "PLANNER_MODELS",
        "Refund",
        "RefundRefused",
        "SampleBillingSystem",
        "Subscription",
        "UnknownAccount",
        "UnknownInvoice",
        "find_duplicate_charges",
        "search_docs",
    ]
    for name in agents.billing.__all__:
        assert getattr(agents.billing, name) is not None
    assert list(agents.billing.PLANNER_MODELS) == ["local-planner"]


def test_importing_the_package_loads_no_knowledge_base_or_gateway() -> None:
    heavy = "('bm25s', 'agents.gateway', 'agents.billing.')"
    probe = f"import sys, agents.billing; print(sorted(m for m in sys.modules if m.startswith({heavy})))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    # The registry (agents/__init__.py) declares the pipeline; its declaration imports no stage.
    assert loaded.stdout.strip() == "['agents.billing.pipeline']"
