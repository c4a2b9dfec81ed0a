"""Replay and dead-letter redrive on the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

from streams.contracts.codec import SingleObjectCodec
from streams.contracts.headers import header_value, now_ms, parse_headers
from streams.contracts.schemas import SchemaStore
from streams.errors import PermanentError
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster
from streams.kafka.follow import Follower
from streams.kafka.reading import Position, Selection
from streams.operations.audit import pipeline_topics, run_audit
from streams.operations.dlq import read_dead_letters, redrive, summarize
from streams.operations.replay import REPLAY_MARK, REPLAY_OF, replay_range
from streams.runtime.stage import Emit, Stage, StageContext
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import running

TOPICS = """
topics:
  {p}.in: {value: podium.demo.Note, consumer: picky, partitions: 2}
  {p}.out: {value: podium.demo.Note, partitions: 1}
  {p}.copy: {value: podium.demo.Note, partitions: 1}
  podium.redrives: {value: podium.Redrive, cleanup: compact, partitions: 1}
"""


async def test_replay_into_a_topic_sends_exactly_the_selection_with_links_to_the_originals(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        ids = [
            await publisher.publish(f"{unique}.out", {"request_id": "", "text": str(i)}) for i in range(10)
        ]
    selection = Selection(f"{unique}.out", start=Position(offset=3), end=Position(offset=7))
    dump = io.StringIO()
    assert (
        await replay_range(
            cluster=cluster,
            catalog=catalog,
            codec=codec,
            selection=selection,
            checkpoints=tmp_path,
            dump=dump,
        )
        == 4
    )
    lines = [json.loads(line) for line in dump.getvalue().splitlines()]
    assert [line["offset"] for line in lines] == [3, 4, 5, 6]
    assert [line["value"]["text"] for line in lines] == ["3", "4", "5", "6"]
    assert [line["request_id"] for line in lines] == ids[3:7]

    async with Follower(cluster, [f"{unique}.copy"]) as follower:
        sent = await replay_range(
            cluster=cluster,
            catalog=catalog,
            codec=codec,
            checkpoints=tmp_path,
            selection=Selection(f"{unique}.out", request_id=ids[5]),
            into=f"{unique}.copy",
        )
        arrivals = await follower.collect({ids[5]}, timeout_s=30)
        extra = await follower.poll(1.0)
    assert sent == 1 and not extra
    [copy] = arrivals[ids[5]]
    assert header_value(copy.headers, REPLAY_OF) == f"{unique}.out/0/5".encode()
    assert header_value(copy.headers, REPLAY_MARK) == b"1"
    assert copy.key == ids[5].encode()
    assert codec.decode("podium.demo.Note", copy.value or b"")["text"] == "5"
    assert parse_headers(copy.headers).trace_id is not None

    # A dry run reports the count and sends nothing.
    async with Follower(cluster, [f"{unique}.copy"]) as follower:
        assert (
            await replay_range(
                cluster=cluster,
                catalog=catalog,
                codec=codec,
                checkpoints=tmp_path,
                selection=Selection(f"{unique}.out"),
                into=f"{unique}.copy",
                dry_run=True,
            )
            == 10
        )
        assert await follower.poll(1.0) == {}


async def test_an_interrupted_replay_resumes_where_it_stopped(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        for i in range(20):
            await publisher.publish(f"{unique}.out", {"request_id": "", "text": str(i)})

    class Interrupt(Exception):
        pass

    def stop_after_eight(done: int, total: int) -> None:
        if done == 8:
            raise Interrupt

    first = io.StringIO()
    selection = Selection(f"{unique}.out")
    with contextlib.suppress(Interrupt):
        await replay_range(
            cluster=cluster,
            catalog=catalog,
            codec=codec,
            selection=selection,
            checkpoints=tmp_path,
            dump=first,
            progress=stop_after_eight,
        )
    rest = io.StringIO()
    await replay_range(
        cluster=cluster,
        catalog=catalog,
        codec=codec,
        selection=selection,
        checkpoints=tmp_path,
        dump=rest,
    )
    texts = [json.loads(x)["value"]["text"] for x in (first.getvalue() + rest.getvalue()).splitlines()]
    assert texts == [str(i) for i in range(20)]
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []  # checkpoint removed


async def test_redrive_after_fixing_the_cause_reaches_the_output_once(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:  # type: ignore[no-untyped-def]
    catalog = await make_topics(TOPICS, unique)
    codec = SingleObjectCodec(schema_store)
    broken = {"yes": True}

    async def picky(note: dict[str, Any], ctx: StageContext) -> Emit:
        if broken["yes"] and note["text"].startswith("bad"):
            raise PermanentError("the knowledge base is missing an entry")
        return Emit(f"{unique}.out", note)

    stage = Stage(name=f"picky{unique}", consumes=f"{unique}.in", produces=(f"{unique}.out",), handler=picky)
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=codec)
    async with Follower(cluster, [f"{unique}.out", f"{unique}.in.dlq"]) as follower, running(worker):
        async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
            bad = {
                await publisher.publish(f"{unique}.in", {"request_id": "", "text": f"bad {i}"})
                for i in range(3)
            }
            good = await publisher.publish(f"{unique}.in", {"request_id": "", "text": "good"})
        first = await follower.collect({*bad, good}, timeout_s=30)
        assert {first[r][0].topic for r in bad} == {f"{unique}.in.dlq"}

        letters = await read_dead_letters(cluster, catalog, codec, stage=stage.name)
        assert {item.letter["request_id"] for item in letters} == bad
        [group] = summarize(letters)
        assert (group.error_type, group.count) == ("permanent", 3)

        broken["yes"] = False  # the cause is fixed
        assert await redrive(cluster, catalog, codec, letters) == (3, 0)
        second = await follower.collect(bad, timeout_s=30)
        assert {second[r][0].topic for r in bad} == {f"{unique}.out"}
        assert all(header_value(second[r][0].headers, "podium-redrive-of") for r in bad)

        # Running the same redrive again sends nothing.
        again = await read_dead_letters(cluster, catalog, codec, stage=stage.name)
        assert await redrive(cluster, catalog, codec, again) == (0, 3)
        assert await follower.poll(1.5) == {}

    # The audit now finds every request answered: the redriven ones ended in the output last.
    input_topic, terminal = pipeline_topics([stage], catalog)
    report = await run_audit(cluster, input_topic, terminal, since=None, now_ms=now_ms(), grace_ms=0)
    assert report.missing == [] and report.by_topic == {f"{unique}.out": 4}
