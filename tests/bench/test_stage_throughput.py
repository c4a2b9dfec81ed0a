"""bench/stage_throughput.py's summary and targets (no I/O), and that its worker module stays
importable by the peer venv's interpreter, which has no podium."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        import stage_throughput
    finally:
        sys.path.remove(str(BENCH))
    return stage_throughput


def runs(bench: ModuleType, *rates: float, cpu_us: float = 50.0) -> list[object]:
    return [bench.Run(msgs_s=r, cpu_us=cpu_us, cpu_us_whole=cpu_us) for r in rates]


def test_ratios_are_taken_round_by_round_against_the_same_rounds_baseline(bench: ModuleType) -> None:
    summary = bench.summarize(
        {"raw-aiokafka": runs(bench, 1000, 2000, 4000), "stage": runs(bench, 500, 600, 2000, cpu_us=90)}
    )
    stage = summary["stage"]
    assert stage.msgs_s == 600
    assert stage.cpu_us == 90
    assert (stage.ratio, stage.ratio_min, stage.ratio_max) == (0.5, 0.3, 0.5)
    assert summary["raw-aiokafka"].ratio == 1.0


def test_without_the_baseline_there_is_no_ratio(bench: ModuleType) -> None:
    summary = bench.summarize({"stage": runs(bench, 500)})
    assert summary["stage"].ratio is None


def test_targets_say_met_not_met_and_not_measured(bench: ModuleType) -> None:
    rounds = {
        "raw-aiokafka": runs(bench, 1000, 1000, 1000),
        "stage": runs(bench, 700, 650, 300, cpu_us=70),
        "faust": runs(bench, 200, 200, 400),
    }
    found = {t.text: t.met for t in bench.targets(rounds, bench.summarize(rounds))}
    assert found == {
        "stage >= 0.6 of raw aiokafka (median)": True,
        "stage <= 80 us worker CPU per record": True,
        "stage above faust in every round": False,  # the third round
        "200 ms handler >= 500 msgs/s (median)": None,
    }


def test_the_worker_module_imports_only_the_standard_library_at_module_level() -> None:
    tree = ast.parse((BENCH / "passthrough_workers.py").read_text())
    names = [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)]
    foreign = [n for n in names if n.split(".")[0] not in sys.stdlib_module_names | {"__future__"}]
    assert foreign == []


def test_the_stage_on_uvloop_is_held_to_the_same_targets_when_it_ran(bench: ModuleType) -> None:
    rounds = {"raw-aiokafka": runs(bench, 1000), "stage": runs(bench, 500), "stage-uvloop": runs(bench, 700)}
    found = {t.text: t.met for t in bench.targets(rounds, bench.summarize(rounds))}
    assert found["stage >= 0.6 of raw aiokafka (median)"] is False
    assert found["stage on uvloop >= 0.6 of raw aiokafka (median)"] is True
    assert found["stage on uvloop above faust in every round"] is None
