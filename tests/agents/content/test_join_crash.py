"""`kill -9` of the process running the join while every join waits for its second verdict:
a new join process finds the waiting state in content.joins and finishes every brief once."""

from __future__ import annotations

import signal
from pathlib import Path

from agents.content.services import ContentConfig
from streams.ingress.publish import Publisher
from streams.kafka.follow import Follower
from streams.runtime.project import Project
from tests.agents.content.test_pipeline import BRIEFS, TERMINAL, _until_waiting, brief, workers
from tests.streams.running import REPO, running, start_worker, wait_for


async def test_a_killed_join_process_loses_no_pending_join(project: Project, tmp_path: Path) -> None:
    cluster = project.cluster()
    config = ContentConfig(models=REPO / "models.yaml")

    first = start_worker(cluster, tmp_path / "join-1.log", "join")
    try:
        wait_for(tmp_path / "join-1.log", "podium: running")
        # The style check is down: every join waits with the fact check's verdict only.
        async with (
            Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub,
            running(*workers(project, config, only=("draft", "factcheck"))),
        ):
            ids = {await pub.publish("content.briefs", brief(b)) for b in BRIEFS[:6]}
            assert await _until_waiting(project, ids) == ids
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    second = start_worker(cluster, tmp_path / "join-2.log", "join")
    try:
        wait_for(tmp_path / "join-2.log", "podium: running")
        async with (
            Follower(cluster, TERMINAL) as follower,
            running(*workers(project, config, only=("draft", "factcheck", "style", "seo"))),
        ):
            got = await follower.collect(ids, timeout_s=60)
            for rid, more in (await follower.poll(1.5)).items():
                got.setdefault(rid, []).extend(more)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    assert set(got) == ids, f"lost: {ids - set(got)}"
    assert all(len(arrivals) == 1 for arrivals in got.values())
    for arrivals in got.values():
        article = project.codec.decode("podium.content.Article", arrivals[0].value or b"")
        assert {c["branch"] for c in article["checks"]} == {"factcheck", "style"}
