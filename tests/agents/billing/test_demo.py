"""`podium demo --pipelines billing` as a user runs it, against the session's real broker."""

import pytest

from streams.kafka.connection import Cluster
from tests.streams.running import podium


@pytest.mark.parametrize("provider", ["local", "sim"])
def test_the_billing_demo_answers_every_question_once_and_refunds_at_most_once(
    cluster: Cluster, provider: str
) -> None:
    done = podium(
        "demo",
        "--provider",
        provider,
        "--pipelines",
        "billing",
        env={"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "3 entered billing.requests; 3 ended in billing.responses; 0 missing, 0 duplicated" in out
    assert "refund tool runs per call id: none twice" in out
    if provider == "local":
        # The offline planner: both double charges proposed, one approved and refunded once,
        # one denied; the how-to answered from the docs MCP server.
        assert out.count("approval needed for") == 2
        assert "refunds in the billing system: 1 R-" in out and "A-1001 INV-5104 $49.00" in out
        assert "I refunded $49.00 for invoice INV-5104" in out
        assert "No refund was issued" in out and "already credited by phone on 11-20" in out
        assert "kb_search" in out and 'From the docs, "Exporting data to CSV"' in out
    else:
        assert "provider simulator (a stand-in, not a model)" in out
        assert "sim-openai/sim-large" in out or "sim-anthropic/sim-large" in out
