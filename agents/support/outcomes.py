"""Where support requests ended, and what that adds up to: the demo's table and summary, and
the end-to-end tests' checks. Pure: it reads decoded records, it does no I/O."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TICKETS", "Outcome", "SampleTicket", "Summary", "load_tickets", "outcome_of", "summarize"]

TICKETS = Path(__file__).resolve().parents[1] / "data" / "support_tickets.jsonl"


@dataclass(frozen=True)
class SampleTicket:
    body: str
    subject: str | None
    tenant: str
    expect_route: str
    wave: int
    why: str


def load_tickets(path: Path = TICKETS) -> list[SampleTicket]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        SampleTicket(r["body"], r.get("subject"), r["tenant"], r["expect_route"], r["wave"], r["why"])
        for r in rows
    ]


@dataclass(frozen=True)
class Outcome:
    request_id: str
    topic: str  # the terminal topic it ended in
    route: str  # rag, direct, cache, rejected; "" for dead letters
    text: str  # the answer, the rejection reasons, or the dead letter's reason
    latency_ms: float
    cost_usd: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    degraded: bool = False

    @property
    def models(self) -> list[str]:
        return [s["model"] for s in self.steps if s.get("model")]


def outcome_of(request_id: str, topic: str, record: dict[str, Any], sent_ms: int, arrived_ms: int) -> Outcome:
    """One terminal record, decoded: a Response, a Rejected or a DeadLetter."""
    if topic.endswith(".dlq"):
        reason = f"{record['error_type']}: {record['error_message']}"
        return Outcome(request_id, topic, "", reason, float(arrived_ms - sent_ms), 0.0)
    if topic == "support.rejected":
        return Outcome(
            request_id,
            topic,
            "rejected",
            "; ".join(record["reasons"]),
            record["latency_ms"],
            record["cost_usd"],
            record["steps"],
        )
    return Outcome(
        request_id,
        topic,
        record["route"],
        record["answer"],
        record["latency_ms"],
        record["cost_usd"],
        record["steps"],
        record["degraded"],
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclass(frozen=True)
class Summary:
    requests: int
    elapsed_s: float
    by_topic: dict[str, int]
    by_route: dict[str, int]
    stage_ms: dict[str, tuple[float, float, int]]  # stage -> (p50, p95, count)
    cost_by_model: dict[str, float]
    end_to_end_ms: tuple[float, float]  # p50, p95 of answered requests
    total_cost_usd: float
    degraded: int
    tiers: dict[str, int] = field(default_factory=dict)  # generate calls per complexity tier
    tier_cost_usd: float = 0.0  # what those calls cost
    cost_if_largest_usd: float = 0.0  # what they would have cost on the largest model

    @property
    def saving_usd(self) -> float:
        return self.cost_if_largest_usd - self.tier_cost_usd

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0


def summarize(outcomes: list[Outcome], elapsed_s: float) -> Summary:
    stage_times: dict[str, list[float]] = defaultdict(list)
    cost: dict[str, float] = defaultdict(float)
    tiers: Counter[str] = Counter()
    tier_cost = if_largest = 0.0
    for o in outcomes:
        for s in o.steps:
            stage_times[s["stage"]].append(s["latency_ms"])
            if s.get("model"):
                cost[s["model"]] += s.get("cost_usd", 0.0)
            if s.get("tier"):
                tiers[s["tier"]] += 1
                tier_cost += s.get("cost_usd", 0.0)
                if_largest += s.get("cost_if_largest_usd", 0.0)
    answered = [o.latency_ms for o in outcomes if not o.topic.endswith(".dlq")]
    return Summary(
        requests=len(outcomes),
        elapsed_s=elapsed_s,
        by_topic=dict(Counter(o.topic for o in outcomes)),
        by_route=dict(Counter(o.route or "(dead letter)" for o in outcomes)),
        stage_ms={
            stage: (_percentile(ms, 50), _percentile(ms, 95), len(ms)) for stage, ms in stage_times.items()
        },
        cost_by_model=dict(cost),
        end_to_end_ms=(_percentile(answered, 50), _percentile(answered, 95)),
        total_cost_usd=sum(o.cost_usd for o in outcomes),
        degraded=sum(o.degraded for o in outcomes),
        tiers=dict(tiers),
        tier_cost_usd=tier_cost,
        cost_if_largest_usd=if_largest,
    )
