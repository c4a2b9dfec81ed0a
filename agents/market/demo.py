"""The market part of ``podium demo``: the recorded feeds through the ingesters, signals, the
windowed join and the summaries, with every report written as a page with its chart.

The recording (``agents/data/market``) is replayed as a session of its own, shifted to the
present: source times move by a whole number of windows and news ids carry the session, so a
second demo is new news for the de-duplicating ingester rather than a repeat it would drop.
"""

from __future__ import annotations

import dataclasses
import html
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agents.market.feeds.news import Malformed, NewsIngester, NewsItem, parse_recording, play_paced
from agents.market.feeds.ticks import Tick, TickIngester, parse_ticks
from agents.market.stages import REPORTS, market_stages
from agents.market.summary import WindowSignal, report_html
from streams.contracts import now_ms
from streams.ingress import Publisher
from streams.kafka import Follower
from streams.runtime import Project, Stack

__all__ = ["run_market_demo", "write_report"]

DATA = Path(__file__).resolve().parent.parent / "data" / "market"
QUIET_S = 8.0  # no new report for this long after the feeds ended: every window is in
# The recording's 10 minutes in 10 s. Both feeds play interleaved in source time, as they would
# arrive live: a news item's signal (one stage more) then trails the ticks of its moment by well
# under the windows' grace period, so it joins the window it belongs to.
SPEED = 60.0


async def run_market_demo(project: Project, console: Console, folder: Path) -> int:
    # The recording plays at SPEED x: while its feed is quiet, its event time runs as fast.
    config = dataclasses.replace(project.sections["market"], idle_clock_rate=SPEED)
    stages = market_stages(config, project.settings.models_file, project.shared)
    window_ms = int(config.window_s * 1000)
    source = "agents/data/market (recorded, replayed now)"
    news = parse_recording(source, (DATA / "news.jsonl").read_text())
    ticks = [
        e
        for line in (DATA / "ticks.jsonl").read_text().splitlines()
        if line.strip()
        for e in parse_ticks(line)
    ]
    first = min(t.source_ms for t in ticks if isinstance(t, Tick))
    reports: dict[str, dict[str, Any]] = {}
    async with (
        Stack(project, stages, echo=console.print, service_name="podium-demo") as stack,
        Follower(stack.cluster, [REPORTS]) as follower,
        Publisher(cluster=stack.cluster, catalog=project.catalog, codec=project.codec,
                  telemetry=stack.telemetry) as publisher,
    ):  # fmt: skip
        news_in = NewsIngester(publisher, project.catalog, project.codec, source)
        await news_in.load_seen(stack.cluster)
        ticks_in = TickIngester(publisher, project.codec, source)
        await ticks_in.load_last(stack.cluster)
        # The session starts at the next window after now and after any tick already on
        # market.ticks: its windows are then new to the windows stage, never late.
        start = max([now_ms(), *(t + window_ms for t in ticks_in.last.values())])
        shift = -(-(start - first) // window_ms) * window_ms  # whole windows: same alignment
        session_start = (first + shift) // window_ms * window_ms
        session = f"s{session_start // window_ms}"
        news = [dataclasses.replace(n, item_id=f"{n.item_id}@{session}", published_ms=n.published_ms + shift)
                if isinstance(n, NewsItem) else n for n in news]  # fmt: skip
        ticks = [
            dataclasses.replace(t, source_ms=t.source_ms + shift) if isinstance(t, Tick) else t for t in ticks
        ]
        t0 = time.perf_counter()
        await _replay_together(news_in, news, ticks_in, ticks, SPEED)
        console.print(
            f"replayed the recording at {SPEED:.0f}x in {time.perf_counter() - t0:.1f}s: "
            f"{news_in.published} news items to market.news, {ticks_in.published} ticks to market.ticks; "
            f"{news_in.failed + ticks_in.failed} unreadable entries dead-lettered to market.ingest.failed"
        )
        last_new = time.monotonic()
        while time.monotonic() - last_new < QUIET_S:
            for arrivals in (await follower.poll(1.0)).values():
                for arrival in arrivals:
                    report = project.codec.decode(
                        project.catalog.get(REPORTS).value_schema, arrival.value or b""
                    )
                    if report["start_ms"] >= session_start:  # this session's windows only
                        reports[f"{report['symbol']}:{report['start_ms']}"] = report
                        last_new = time.monotonic()
    written = [
        write_report(folder, r) for r in sorted(reports.values(), key=lambda r: (r["symbol"], r["start_ms"]))
    ]
    _print_reports(console, list(reports.values()))
    if written:
        index = _write_index(folder, sorted(reports.values(), key=lambda r: (r["symbol"], r["start_ms"])))
        console.print(f"market reports with charts: {len(written)} pages, open {index}")
    return 0 if reports else 1


async def _replay_together(
    news_in: NewsIngester,
    news: list[NewsItem | Malformed],
    ticks_in: TickIngester,
    ticks: list[Tick | Malformed],
    speed: float,
) -> None:
    """Both recordings on one clock, as the two feeds would arrive live."""
    await news_in.ingest([n for n in news if isinstance(n, Malformed)])
    await ticks_in.ingest([t for t in ticks if isinstance(t, Malformed)])
    timeline: list[NewsItem | Tick] = sorted(
        [*(n for n in news if isinstance(n, NewsItem)), *(t for t in ticks if isinstance(t, Tick))],
        key=lambda e: (_at(e), isinstance(e, Tick)),  # news first: its signal has one stage more to go
    )

    async def ingest(group: list[NewsItem | Tick]) -> int:
        items = [e for e in group if isinstance(e, NewsItem)]
        prices = [e for e in group if isinstance(e, Tick)]
        return await news_in.ingest(items) + await ticks_in.ingest(prices)

    await play_paced(timeline, _at, speed, ingest)


def _at(entry: NewsItem | Tick) -> int:
    return entry.published_ms if isinstance(entry, NewsItem) else entry.source_ms


def write_report(folder: Path, report: dict[str, Any]) -> Path:
    """The report as a standalone page (summary, inline chart, signal table) and the chart as SVG."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{report['symbol']}-{report['start_ms']}"
    (folder / f"{name}.svg").write_text(report["chart_svg"])
    signals = [WindowSignal.from_record(s) for s in report["signals"]]
    page = folder / f"{name}.html"
    page.write_text(
        report_html(
            report["symbol"],
            report["start_ms"],
            report["end_ms"],
            report["summary"],
            report["chart_svg"],
            signals,
        )
    )
    return page


def _write_index(folder: Path, reports: list[dict[str, Any]]) -> Path:
    rows = "\n".join(
        f'<li><a href="{html.escape(r["symbol"])}-{r["start_ms"]}.html">{html.escape(r["symbol"])} '
        f"{time.strftime('%H:%M', time.gmtime(r['start_ms'] / 1000))} UTC</a>: "
        f"{html.escape(r['summary'][:160])}</li>"
        for r in reports
    )
    index = folder / "index.html"
    index.write_text(
        f"<!doctype html><meta charset=utf-8><title>podium market reports</title><ul>{rows}</ul>\n"
    )
    return index


def _print_reports(console: Console, reports: list[dict[str, Any]]) -> None:
    table = Table(title="market.reports: one per symbol and window")
    for name in ("symbol", "window (UTC)", "ticks", "change", "signals", "summary"):
        table.add_column(name, no_wrap=name != "summary", max_width=70 if name == "summary" else None)
    for r in sorted(reports, key=lambda r: (r["symbol"], r["start_ms"])):
        start = time.strftime("%H:%M", time.gmtime(r["start_ms"] / 1000))
        change = f"{r['change_pct']:+.2f}%" if r["change_pct"] is not None else ""
        marks = " ".join({"up": "▲", "down": "▼"}.get(s["direction"], "●") for s in r["signals"])
        table.add_row(r["symbol"], start, str(r["ticks"]), change, marks, r["summary"].split(". ")[0])
    console.print(table)
