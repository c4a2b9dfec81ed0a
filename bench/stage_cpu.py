"""CPU per record of the stage runtime itself, in process, no Kafka.

    .venv/bin/python bench/stage_cpu.py [--records 20000]

Reads pre-built records into a ``StageWorker`` as its consumer loop does (track, schedule,
start in batches, decode, handler, encode, hand to the sender, settle) with a pass-through
handler; the producer is replaced by an already-acknowledged future, so the figure is the
runtime's own cost, the part a raw aiokafka loop does not pay. It prints the
cost with CPython's default GC thresholds and with what ``podium run`` sets.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord

from streams.contracts import SchemaStore, SingleObjectCodec, ingress_headers, parse_catalog
from streams.kafka.connection import Cluster
from streams.runtime import Emit, Record, Stage, StageContext, StageWorker, tune_worker_process

REPO = Path(__file__).resolve().parents[1]


async def passthrough(note: Record, ctx: StageContext) -> Emit:
    return Emit("b", note)


async def settle_all(worker: StageWorker, value: bytes, count: int) -> float:
    headers = ingress_headers().to_kafka()
    records = [
        ConsumerRecord("a", 0, i, 0, 0, b"k", value, None, 1, len(value), headers) for i in range(count)
    ]
    worker._sender.start()
    started = time.perf_counter()
    worker._read(("a", 0), records)
    worker._start_waiting()
    while worker._tracker.in_flight() or worker.read_ahead:
        worker._room.clear()
        await worker._room.wait()  # set each time a record settles
    elapsed = time.perf_counter() - started
    await worker._sender.stop()
    return elapsed / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20000)
    args = parser.parse_args()
    store = SchemaStore.load(REPO / "schemas")
    codec = SingleObjectCodec(store)
    catalog = parse_catalog(
        "topics:\n  a: {value: podium.demo.Note, consumer: s}\n  b: {value: podium.demo.Note}\n",
        Path("bench"),
        store.names(),
    )
    value = codec.encode("podium.demo.Note", {"request_id": "r", "text": "x" * 1000})

    def fresh() -> StageWorker:
        worker = StageWorker(
            Stage(name="s", consumes="a", produces=("b",), handler=passthrough),
            cluster=Cluster("unused:9092"),
            catalog=catalog,
            codec=codec,
        )

        async def acknowledged(outputs: list[Any]) -> list[asyncio.Future[None]]:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.set_result(None)  # one produce batch for the round, as one partition's
            return [future] * len(outputs)

        worker._sender._produce = acknowledged
        return worker

    default = asyncio.run(settle_all(fresh(), value, args.records))
    tune_worker_process("asyncio")  # the GC tuning alone: both runs on asyncio's loop
    tuned = asyncio.run(settle_all(fresh(), value, args.records))
    gc.unfreeze()
    print(f"{args.records} records of 1 KB, all in flight at once")
    print(f"  default GC thresholds      {default:6.1f} us per record")
    print(f"  tune_worker_process()      {tuned:6.1f} us per record")


if __name__ == "__main__":
    main()
