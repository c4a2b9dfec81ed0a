"""Avro (fastavro, with podium's single-object framing) vs orjson, in process, same 1 KB record.

    .venv/bin/python bench/codec.py [--seconds 2]

Prints encode+decode round trips per second for each and the ratio to orjson.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path

import fastavro
import orjson
from rich.console import Console
from rich.table import Table

from streams.contracts import SchemaStore, SingleObjectCodec

RECORD = {
    "request_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "text": "x" * 1000,
    "hops": ["classify", "retrieve"],
    "priority": 2,
}


def rate(fn: Callable[[], object], seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(1000):
            fn()
        count += 1000
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    store = SchemaStore.load(Path(__file__).resolve().parents[1] / "schemas")
    codec = SingleObjectCodec(store)
    parsed = store.current("podium.demo.Note").parsed

    def plain_avro() -> object:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, RECORD)
        buf.seek(0)
        return fastavro.schemaless_reader(buf, parsed, parsed)

    cases = {
        "orjson dumps+loads": lambda: orjson.loads(orjson.dumps(RECORD)),
        "fastavro schemaless write+read": plain_avro,
        "podium SingleObjectCodec encode+decode": lambda: codec.decode(
            "podium.demo.Note", codec.encode("podium.demo.Note", RECORD)
        ),
    }
    results = {name: rate(fn, args.seconds) for name, fn in cases.items()}
    base = results["orjson dumps+loads"]
    table = Table(title="encode+decode round trips per second, one core, 1 KB record")
    table.add_column("codec")
    table.add_column("round trips/s", justify="right")
    table.add_column("vs orjson", justify="right")
    for name, value in results.items():
        table.add_row(name, f"{value:,.0f}", f"{value / base:.2f}")
    sizes = (
        f"sizes: avro {len(codec.encode('podium.demo.Note', RECORD))} B, json {len(orjson.dumps(RECORD))} B"
    )
    Console().print(table)
    Console().print(sizes)


if __name__ == "__main__":
    main()
