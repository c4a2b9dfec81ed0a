"""The worker side of bench/stage_throughput.py: one pass-through worker, in a process of its own.

    python bench/passthrough_workers.py <case> '<json args>'

``args``: ``bootstrap``, ``source``, ``sink``, ``group``, ``state_dir`` (faust's and quixstreams'
data directory); the podium cases also ``in_flight`` (unset: the stage's default) and
``handler_ms``. Each worker consumes ``source`` from its earliest offset in the fresh group
``group`` and sends every record's bytes (key, value, headers) to ``sink``, committing an input
offset only after its output was acknowledged (at-least-once):

- ``raw-aiokafka``: getmany -> send the same bytes -> await every ack -> commit (the baseline;
  ``max_batch_size``, if given, is its producer's);
- ``stage``, ``stage-uvloop``, ``stage-slow``: the real :class:`~streams.runtime.StageWorker`
  through ``streams.runtime``, with ``tune_worker_process(<loop>)`` before the loop starts, as
  ``podium run`` does; the handler returns the record (``stage-slow``: after awaiting
  ``handler_ms``); ``stage-uvloop`` runs on uvloop's event loop (``PODIUM_EVENT_LOOP=uvloop``), the
  others, raw-aiokafka too, on asyncio's own (``asyncio``);
- ``faust``: a faust-streaming agent, ``await sink.send(...)`` per event; faust commits an acked
  event's offset only after ``producer.flush()`` (``Consumer._commit_offsets``), so after its
  output's ack;
- ``quixstreams``: ``sdf.to_topic(sink)``; its checkpoint flushes the producer, then commits;
- ``raw-confluent``: confluent-kafka's Consumer and Producer: consume up to 1,000 -> produce the
  same bytes -> ``flush()`` (every delivery acknowledged; a failed one stops the worker before the
  commit: ``delivery.report.only.error``) -> synchronous commit. The blocking API, not the
  ``confluent_kafka.experimental.aio`` producer 2.12 also has: this case is librdkafka's own
  ceiling, with no event loop between it and the records (quixstreams pins confluent-kafka <2.13).

The parent measures; the worker only answers (:class:`Marks`, on a thread of its own that costs
nothing while it waits). Once its imports are done and its clients built, the worker prints
``{"mark": "ready", "cpu_s": ...}`` and waits. Then each line the parent writes to stdin is a mark,
answered at once with one JSON line holding ``time.process_time()`` (the CPU of the whole process,
every thread, librdkafka's too): ``go`` also lets the worker start its clients (and join its
group), ``stop`` also stops it. Only the standard library is imported at module level: the
quixstreams and raw-confluent cases run under the bench's peer venv interpreter, which has no
podium (and podium's has no quixstreams). The answers keep stdout to themselves: what a library
prints goes to stderr, which the parent keeps in a log file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARTITIONS = 3
marks_out = sys.stdout  # where the marks are answered (main() keeps the real stdout for them)


class Marks:
    """The parent's marks, answered on a thread of its own that costs nothing while it waits.

    At once: ``{"mark": "ready", ...}`` (imports done, the clients built but not started). Then
    each line the parent writes is answered with this process's CPU so far; ``go`` also lets the
    worker start its clients (:meth:`wait_for_go`), ``stop`` (or the parent's going away) stops it.
    """

    def __init__(self, stop: Callable[[], None], versions: dict[str, str]) -> None:
        self._stop = stop
        self._versions = versions
        self._go = threading.Event()
        self._answer("ready")
        threading.Thread(target=self._serve, name="marks", daemon=True).start()

    def wait_for_go(self) -> None:
        self._go.wait()

    def _answer(self, mark: str) -> None:
        cpu_s = time.process_time()  # first: what the answer costs is not in it
        line = json.dumps({"mark": mark, "cpu_s": cpu_s, "versions": self._versions})
        print(line, file=marks_out, flush=True)

    def _serve(self) -> None:
        for line in sys.stdin:
            mark = line.strip()
            self._answer(mark)
            if mark == "go":
                self._go.set()
            if mark == "stop":
                break
        self._go.set()
        self._stop()


def version(name: str) -> str:
    from importlib.metadata import version as installed

    return installed(name)


def pass_through_catalog_text(source: str, sink: str) -> str:
    """The catalog the podium cases (and the parent's topics) use: 1 KB podium.demo.Note records."""
    return (
        f"defaults: {{partitions: {PARTITIONS}}}\n"
        "topics:\n"
        f"  {source}: {{value: podium.demo.Note, consumer: passthrough}}\n"
        f"  {sink}: {{value: podium.demo.Note}}\n"
    )


# -- raw aiokafka (podium's venv) ---------------------------------------------------------
async def raw_aiokafka(args: dict[str, Any]) -> None:
    from streams.config import load_settings
    from streams.kafka.connection import Cluster, KafkaSecurity

    settings = load_settings()
    cluster = Cluster(args["bootstrap"], KafkaSecurity.from_settings(settings))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    consumer = cluster.consumer(
        args["source"], group_id=args["group"], enable_auto_commit=False, auto_offset_reset="earliest"
    )
    batch = {"max_batch_size": int(args["max_batch_size"])} if args.get("max_batch_size") else {}
    producer = cluster.producer(acks="all", enable_idempotence=True, linger_ms=5, **batch)
    versions = {"aiokafka": version("aiokafka"), "loop": type(loop).__module__}
    marks = Marks(lambda: loop.call_soon_threadsafe(stopping.set), versions)
    marks.wait_for_go()
    await consumer.start()
    await producer.start()
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=1000)
            futures = [
                await producer.send(args["sink"], r.value, key=r.key, headers=list(r.headers))
                for records in batches.values()
                for r in records
            ]
            await asyncio.gather(*futures)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


# -- the podium stage (podium's venv) -------------------------------------------------------
async def podium_stage(args: dict[str, Any]) -> None:
    from streams.config import load_settings
    from streams.contracts import parse_catalog
    from streams.kafka.connection import Cluster, KafkaSecurity
    from streams.runtime import Emit, Project, Record, Stage, StageContext, StageWorker

    project = Project(load_settings())
    cluster = Cluster(args["bootstrap"], KafkaSecurity.from_settings(project.settings))
    source, sink = args["source"], args["sink"]
    catalog = parse_catalog(pass_through_catalog_text(source, sink), Path("bench"), project.schemas.names())
    delay_s = float(args.get("handler_ms") or 0) / 1000

    async def passthrough(note: Record, ctx: StageContext) -> Emit:
        return Emit(sink, note)

    async def slow(note: Record, ctx: StageContext) -> Emit:
        await asyncio.sleep(delay_s)
        return Emit(sink, note)

    options: dict[str, Any] = {}
    if args.get("in_flight"):
        options["max_in_flight"] = int(args["in_flight"])
    stage = Stage(
        name="passthrough",
        consumes=source,
        produces=(sink,),
        handler=slow if delay_s else passthrough,
        **options,
    )
    worker = StageWorker(stage, cluster=cluster, catalog=catalog, codec=project.codec, group_id=args["group"])
    loop = asyncio.get_running_loop()
    versions = {"podium": version("podium"), "aiokafka": version("aiokafka"), "loop": type(loop).__module__}
    marks = Marks(lambda: loop.call_soon_threadsafe(worker.request_stop), versions)
    marks.wait_for_go()
    await worker.start()
    await worker.run()


# -- faust-streaming (podium's venv) --------------------------------------------------------
def faust_agent(args: dict[str, Any]) -> None:
    import faust

    app = faust.App(
        args["group"],
        broker="kafka://" + args["bootstrap"],
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=PARTITIONS,
        web_enabled=False,
        datadir=args["state_dir"],
    )
    source = app.topic(args["source"], value_type=bytes, key_type=bytes)
    sink = app.topic(args["sink"], value_type=bytes, key_type=bytes)

    @app.agent(source)
    async def passthrough(stream: Any) -> None:
        async for event in stream.events():
            await sink.send(key=event.key, value=event.value, headers=event.headers)

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    marks = Marks(
        lambda: os.kill(os.getpid(), signal.SIGTERM), {"faust-streaming": version("faust-streaming")}
    )
    marks.wait_for_go()
    worker.execute_from_commandline()


# -- quixstreams (the peer venv) ------------------------------------------------------------
def quixstreams_app(args: dict[str, Any]) -> None:
    from quixstreams import Application

    app = Application(
        broker_address=args["bootstrap"],
        consumer_group=args["group"],
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        state_dir=args["state_dir"],
        loglevel="WARNING",
    )
    codecs = {
        "value_deserializer": "bytes",
        "key_deserializer": "bytes",
        "value_serializer": "bytes",
        "key_serializer": "bytes",
    }
    source = app.topic(args["source"], **codecs)
    sink = app.topic(args["sink"], **codecs)
    app.dataframe(source).to_topic(sink)
    versions = {"quixstreams": version("quixstreams"), "confluent-kafka": version("confluent-kafka")}
    marks = Marks(app.stop, versions)
    marks.wait_for_go()
    app.run()


# -- raw confluent-kafka (the peer venv) ------------------------------------------------------
def raw_confluent(args: dict[str, Any]) -> None:
    import confluent_kafka

    failed: list[Any] = []

    def delivery_failed(error: Any, message: Any) -> None:  # only failures are reported
        failed.append(error)

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": args["bootstrap"],
            "group.id": args["group"],
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": args["bootstrap"],
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "delivery.report.only.error": True,
            "on_delivery": delivery_failed,
        }
    )
    stopping = threading.Event()
    marks = Marks(stopping.set, {"confluent-kafka": version("confluent-kafka")})
    marks.wait_for_go()
    consumer.subscribe([args["source"]])
    sink = args["sink"]
    try:
        while not stopping.is_set():
            messages = consumer.consume(num_messages=1000, timeout=0.1)
            if not messages:
                continue
            for m in messages:
                if m.error() is not None:
                    raise RuntimeError(f"consume failed: {m.error()}")
                producer.produce(sink, m.value(), m.key(), headers=m.headers())
            while producer.flush(10) > 0:
                pass
            if failed:
                raise RuntimeError(f"delivery failed: {failed[0]}")
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()


ASYNC_CASES = {
    "raw-aiokafka": raw_aiokafka,
    "stage": podium_stage,
    "stage-uvloop": podium_stage,
    "stage-slow": podium_stage,
}
# These run their own loop (faust, librdkafka's poll), not a coroutine of ours.
BLOCKING_CASES = {"faust": faust_agent, "quixstreams": quixstreams_app, "raw-confluent": raw_confluent}


def main() -> None:
    case, args = sys.argv[1], json.loads(sys.argv[2])
    # The marks keep stdout to themselves: whatever a library prints goes to stderr (the log).
    global marks_out
    marks_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    if case in BLOCKING_CASES:
        BLOCKING_CASES[case](args)
    elif case in ASYNC_CASES:
        from streams.runtime import tune_worker_process

        # What `podium run` does before its loop starts (GC settings, the event loop), for the
        # raw baseline too, so that it is not handicapped: asyncio's loop but for stage-uvloop.
        tune_worker_process("uvloop" if case == "stage-uvloop" else "asyncio")
        asyncio.run(ASYNC_CASES[case](args))
    else:
        raise SystemExit(f"unknown case {case!r}: one of {sorted([*ASYNC_CASES, *BLOCKING_CASES])}")


if __name__ == "__main__":
    main()
