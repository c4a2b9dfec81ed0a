"""Briefs/s through the content pipeline, in process and on Kafka, in one run.

    .venv/bin/python bench/content_pipeline.py [--briefs 300] [--provider sim|local]

``--provider sim`` drafts with the provider simulator at 0 ms (its own process, a stand-in for
hosted models; its placeholder words fail the fact check, so every brief is drafted
1 + max_revisions times and rejected: the loop is the work measured). ``--provider local`` drafts
with the offline local-writer (most sample briefs pass in the first round).

1. in process: the five handlers called directly (draft, both checks at once, the join three
   times: the round opened and each verdict; then seo or a revision), ``--concurrency`` briefs
   at a time; the join's table is in memory, its misses still ask Kafka for the table's end
   offsets;
2. on Kafka: the briefs published as a backlog to content.briefs, then the five stages started
   (one worker each, in this process, as `podium up` runs them); briefs/s from the first draft
   written to the last brief ended (broker timestamps: group joins do not count).
Uses the running local broker or KAFKA_BOOTSTRAP_SERVERS; starts (and stops) one otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from local_kafka import bench_project
from rich.console import Console
from rich.table import Table
from support_pipeline import simulator

from agents.content.services import ContentConfig
from agents.content.stages import content_stages
from streams.contracts import RequestHeaders, new_request_id, now_ms
from streams.ingress import Publisher
from streams.kafka import Follower, TopicAdmin
from streams.kafka.connection import Cluster
from streams.runtime import Emit, Project, Stage, StageContext, StageEnv, StageWorker
from streams.telemetry import Telemetry

REPO = Path(__file__).resolve().parents[1]
console = Console(width=120)


def briefs(count: int) -> list[dict[str, Any]]:
    samples = [
        json.loads(line) for line in (REPO / "agents/data/content/briefs.jsonl").read_text().splitlines()
    ]
    return [
        {k: samples[i % len(samples)][k] for k in ("topic", "audience", "points", "must_include")}
        for i in range(count)
    ]


def models_file(url: str | None, directory: Path) -> Path:
    path = directory / "models.bench.yaml"
    if url is None:
        return REPO / "models.yaml"
    path.write_text(
        json.dumps(
            {
                "providers": {"sim": {"kind": "openai", "base_url": url + "/v1"}},
                "prices": {"sim-large": {"input": 3.0, "output": 15.0}},
                "stages": {"draft": {"chain": [{"provider": "sim", "model": "sim-large"}], "max_retries": 0}},
            }
        )
    )
    return path


async def in_process(
    project: Project,
    stages: list[Stage[Any]],
    records: list[dict[str, Any]],
    concurrency: int,
    cluster: Cluster,
) -> tuple[float, dict[str, int]]:
    by_name = {s.name: s for s in stages}
    env = StageEnv(cluster, project.catalog, project.codec, Telemetry.configure("none"))
    services = stages[0].resources[0]
    await services.open(env)
    room = asyncio.Semaphore(concurrency)
    ends: dict[str, int] = {}

    def ctx(stage: str, topic: str, rid: str) -> StageContext:
        headers = RequestHeaders(request_id=rid, deadline_ms=now_ms() + 120_000)
        return StageContext(stage, topic, 0, 0, headers, 1, timestamp_ms=now_ms())

    async def one(record: dict[str, Any]) -> None:
        async with room:
            rid = new_request_id()
            article = project.codec.decode(
                "podium.content.Article",
                project.codec.encode("podium.content.Article", {**record, "request_id": rid}),
            )
            while True:
                to_fc, to_style, opened = await by_name["draft"].handler(
                    article, ctx("draft", "content.briefs", rid)
                )
                await by_name["join"].handler(opened.value, ctx("join", opened.topic, rid))
                checked = await asyncio.gather(
                    by_name["factcheck"].handler(to_fc.value, ctx("factcheck", to_fc.topic, rid)),
                    by_name["style"].handler(to_style.value, ctx("style", to_style.topic, rid)),
                )
                outs: list[Emit] = []
                for check in checked:
                    assert isinstance(check, Emit)
                    outs += await by_name["join"].handler(check.value, ctx("join", "content.checks", rid))
                last = outs[-1]
                if last.topic == "content.reviewed":
                    await by_name["seo"].handler(last.value, ctx("seo", last.topic, rid))
                    ends["published"] = ends.get("published", 0) + 1
                    return
                if last.topic == "content.rejected":
                    ends["rejected"] = ends.get("rejected", 0) + 1
                    return
                article = last.value  # a revision

    try:
        started = time.perf_counter()
        await asyncio.gather(*(one(r) for r in records))
        return len(records) / (time.perf_counter() - started), ends
    finally:
        await services.close()


async def on_kafka(project: Project, stages: list[Stage[Any]], records: list[dict[str, Any]],
                   cluster: Cluster) -> tuple[float, dict[str, int]]:  # fmt: skip
    workers = [StageWorker(s, cluster=cluster, catalog=project.catalog, codec=project.codec) for s in stages]
    sent: set[str] = set()
    got: dict[str, Any] = {}
    first_draft: list[int] = []
    async with (
        Follower(cluster, ["content.published", "content.rejected"]) as follower,
        Follower(cluster, ["content.drafts.factcheck"]) as drafts,
        Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as publisher,
    ):
        for record in records:
            sent.add(await publisher.publish("content.briefs", record))
        for w in workers:
            await w.start()
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            deadline = time.monotonic() + 600
            while len(got) < len(records) and time.monotonic() < deadline:
                for rid, arrivals in (await follower.poll(0.2)).items():
                    if rid in sent:
                        got.setdefault(rid, arrivals[0])
                if not first_draft:
                    first_draft += [a.timestamp_ms for r, got_ in (await drafts.poll(0.0)).items()
                                    if r in sent for a in got_]  # fmt: skip
        finally:
            for w in workers:
                w.request_stop()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, BaseException):  # a crashed worker is a failed run, not a slow one
                    raise result
    if len(got) < len(records):
        console.print(f"[red]{len(records) - len(got)} briefs did not end in time[/]")
    ends: dict[str, int] = {}
    for arrival in got.values():
        key = arrival.topic.removeprefix("content.")
        ends[key] = ends.get(key, 0) + 1
    # From the first draft written (the stages are running, groups joined) to the last brief
    # ended: a brief takes several rounds, so first-to-last terminal would leave the fill out.
    last = max((a.timestamp_ms for a in got.values()), default=0)
    elapsed = (last - min(first_draft)) / 1000 if first_draft and got else 0.0
    return (len(got) / elapsed if elapsed else 0.0), ends


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--briefs", type=int, default=300)
    parser.add_argument("--provider", choices=("sim", "local"), default="sim")
    parser.add_argument("--concurrency", type=int, default=256)  # the stages' max_in_flight
    args = parser.parse_args()
    async with bench_project(console) as project:
        cluster = project.cluster()
        async with TopicAdmin(cluster) as admin:
            await admin.apply(project.catalog)
        records = briefs(args.briefs)
        with tempfile.TemporaryDirectory() as tmp:
            if args.provider == "sim":
                with simulator(0) as url:
                    config = ContentConfig(models=models_file(url, Path(tmp)))
                    alone, alone_ends = await in_process(
                        project, content_stages(config), records, args.concurrency, cluster
                    )
                    kafka, kafka_ends = await on_kafka(project, content_stages(config), records, cluster)
            else:
                config = ContentConfig(models=models_file(None, Path(tmp)))
                alone, alone_ends = await in_process(
                    project, content_stages(config), records, args.concurrency, cluster
                )
                kafka, kafka_ends = await on_kafka(project, content_stages(config), records, cluster)
        table = Table(title=f"content pipeline: {args.briefs} briefs, drafts by {args.provider}"
                      + (" at 0 ms" if args.provider == "sim" else ""))  # fmt: skip
        for column in ("path", "briefs/s", "ratio", "ended"):
            table.add_column(column, justify="right")
        table.add_row("in process (handlers)", f"{alone:.1f}", "", json.dumps(alone_ends))
        table.add_row("on Kafka (5 stages)", f"{kafka:.1f}", f"{kafka / alone:.2f}", json.dumps(kafka_ends))
        console.print(table)


if __name__ == "__main__":
    asyncio.run(main())
