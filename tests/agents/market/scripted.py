"""Scripted market input for tests: the market stages' workers, a symbol of a test's own and
ticks published at offsets from a window boundary."""

from __future__ import annotations

import os

from agents.market.stages import MarketConfig, market_stages
from streams.contracts.headers import now_ms
from streams.ingress.publish import Publisher
from streams.runtime.project import Project
from streams.runtime.workers import Worker, worker_for
from tests.streams.running import REPO

T0 = 1_795_599_960_000  # a multiple of the window


def workers(project: Project, only: tuple[str, ...] = ()) -> list[Worker]:
    config = MarketConfig(window_s=60, grace_s=5, points=60, idle_close_s=30, checkpoint_interval_s=0.2)
    return [
        worker_for(s, cluster=project.cluster(), catalog=project.catalog, codec=project.codec)
        for s in market_stages(config, REPO / "models.yaml")
        if not only or s.name in only
    ]


def symbol() -> str:
    return "S" + os.urandom(3).hex().upper()  # a symbol of this test alone


async def publish_ticks(pub: Publisher, sym: str, ticks: list[tuple[int, float, float]]) -> None:
    for t, price, volume in ticks:
        record = {
            "symbol": sym,
            "price": price,
            "volume": volume,
            "source_ms": T0 + t,
            "source": "test",
            "ingested_ms": now_ms(),
        }
        value = pub._codec.encode("podium.market.Tick", record)
        await pub.send_raw("market.ticks", sym.encode(), value, [])
