"""The market pipeline on the real broker: news becomes signals, a scripted tick sequence gives
the right window aggregates joined with the signal, the chart is a valid SVG of the asked size.
The window worker's own tests (restart mid-window, an unreadable tick) are in
tests/streams/runtime/test_window_join.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from agents.market.stages import MarketConfig, market_stages
from streams.contracts.headers import now_ms
from streams.ingress.publish import Publisher
from streams.kafka.follow import Follower
from streams.runtime.project import Project
from streams.runtime.workers import worker_for
from tests.agents.market.scripted import T0, publish_ticks, symbol, workers
from tests.streams.running import running


async def test_scripted_ticks_and_a_news_item_give_one_report_with_the_right_aggregates(
    project: Project,
) -> None:
    sym = symbol()
    ticks = [
        (1_000, 100.0, 5),
        (20_000, 104.0, 1),
        (10_000, 98.0, 2),
        (59_000, 102.0, 4),  # window 1
        (61_000, 103.0, 1),
        (66_000, 101.0, 1),
    ]  # window 2: its event time closes window 1
    async with (
        running(*workers(project)),
        Follower(project.cluster(), ["market.reports"]) as follower,
        Follower(project.cluster(), ["market.signals"]) as signals,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
    ):
        news = {
            "item_id": f"n-{sym}",
            "source": "test",
            "title": f"{sym} beats estimates and raises guidance",
            "summary": "",
            "url": None,
            "published_ms": T0 + 30_000,
            "symbols": [sym],
            "ingested_ms": now_ms(),
        }
        await pub.publish("market.news", news, request_id=f"n-{sym}")
        # The signal is on market.signals before the ticks that close its window are sent.
        assert await signals.collect({f"n-{sym}"}, timeout_s=30)
        await publish_ticks(pub, sym, ticks)
        key = f"{sym}:{T0}"
        got = await follower.collect({key}, timeout_s=30)
    report = project.codec.decode("podium.market.Report", got[key][0].value or b"")
    assert report["ticks"] == 4
    assert report["change_pct"] == pytest.approx((102.0 / 100.0 - 1) * 100)
    [signal] = report["signals"]
    assert (signal["symbol"], signal["direction"], signal["item_id"]) == (sym, "up", f"n-{sym}")
    assert "rose sharply 2.00% from 100.00 to 102.00" in report["summary"]
    assert "between 98.00 and 104.00" in report["summary"]
    assert "moved with the net up signal" in report["summary"]
    svg = ET.fromstring(report["chart_svg"])
    assert (svg.get("width"), svg.get("height"), svg.get("viewBox")) == ("720", "320", "0 0 720 320")
    [line] = svg.iter("{http://www.w3.org/2000/svg}polyline")
    assert len(line.get("points", "").split()) == 4  # one point per 1 s slice with a tick


async def test_a_model_reply_that_is_not_the_json_asked_for_falls_back_to_the_lexicon(
    project: Project, tmp_path: Any
) -> None:
    import json

    from agents.gateway.providers.simulator import SimConfig, SimulatorServer

    sym = symbol()
    # The simulator (a stand-in for a hosted model) answers with placeholder words.
    with SimulatorServer(SimConfig(latency_ms=0, jitter_ms=0)) as url:
        models = tmp_path / "models.yaml"
        chain = {"chain": [{"provider": "sim", "model": "sim-small"}], "max_retries": 0}
        models.write_text(
            json.dumps(
                {
                    "providers": {"sim": {"kind": "openai", "base_url": url + "/v1"}},
                    "prices": {"sim-small": {"input": 0.15, "output": 0.6}},
                    "stages": {"signals": chain, "summarize": chain},
                }
            )
        )
        [signals] = [
            worker_for(s, cluster=project.cluster(), catalog=project.catalog, codec=project.codec)
            for s in market_stages(MarketConfig(), models)
            if s.name == "signals"
        ]
        async with (
            running(signals),
            Follower(project.cluster(), ["market.signals"]) as follower,
            Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
        ):
            news = {
                "item_id": f"n-{sym}",
                "source": "test",
                "title": f"{sym} recalls faulty routers",
                "summary": "",
                "url": None,
                "published_ms": T0,
                "symbols": [sym],
                "ingested_ms": now_ms(),
            }
            await pub.publish("market.news", news, request_id=f"n-{sym}")
            got = await follower.collect({f"n-{sym}"}, timeout_s=30)
    record = project.codec.decode("podium.market.Signal", got[f"n-{sym}"][0].value or b"")
    assert (record["symbol"], record["direction"]) == (sym, "down")
    assert record["model"].startswith("local/local-lexicon (fallback: the reply"), record["model"]
