import itertools
import json
import math

import pytest

from agents.market.windows import TickWindows, WindowConfig

T0 = 1_795_599_960_000  # a multiple of 60 s
CONFIG = WindowConfig("ticks", "signals", size_ms=60_000, grace_ms=10_000, points=6)


def tick(symbol: str, t: int, price: float, volume: float = 1.0) -> dict[str, object]:
    return {"symbol": symbol, "price": price, "volume": volume, "source_ms": t}


def signal(symbol: str, t: int, direction: str = "up") -> dict[str, object]:
    return {
        "symbol": symbol,
        "published_ms": t,
        "item_id": f"n{t}",
        "direction": direction,
        "strength": 0.5,
        "rationale": "",
        "title": "news",
        "model": "lexicon",
    }


def test_a_window_closes_when_event_time_passes_its_end_plus_grace() -> None:
    w = TickWindows(CONFIG)
    w.add("ticks", tick("ACME", T0 + 1_000, 100.0, 2), 0)
    w.add("ticks", tick("ACME", T0 + 30_000, 110.0, 3), 0)
    w.add("ticks", tick("ACME", T0 + 59_999, 105.0, 5), 0)
    w.add("ticks", tick("ACME", T0 + 69_999, 106.0), 0)  # next window; end + grace not reached
    assert w.due(0) == []
    w.add("ticks", tick("ACME", T0 + 70_000, 107.0), 0)
    [(key, window)] = w.due(0)
    assert key == f"ACME:{T0}"
    assert (window["open"], window["high"], window["low"], window["close"]) == (100.0, 110.0, 100.0, 105.0)
    assert window["ticks"] == 3 and window["volume"] == 10.0
    assert window["change_pct"] == pytest.approx(5.0)
    assert window["closed_by"] == "watermark"
    assert [p["price"] for p in window["points"]] == [100.0, 110.0, 105.0]


def test_out_of_order_ticks_within_grace_count_and_late_ones_are_dropped_and_counted() -> None:
    w = TickWindows(CONFIG)
    w.add("ticks", tick("ACME", T0 + 50_000, 102.0), 0)
    w.add("ticks", tick("ACME", T0 + 65_000, 103.0), 0)
    w.add("ticks", tick("ACME", T0 + 10_000, 99.0), 0)  # 55 s out of order, its window still open
    w.add("ticks", tick("ACME", T0 + 75_000, 104.0), 0)
    [(_, first)] = w.due(0)
    assert first["open"] == 99.0 and first["close"] == 102.0 and first["ticks"] == 2
    w.add("ticks", tick("ACME", T0 + 5_000, 98.0), 0)  # its window is closed: late
    w.add("signals", signal("ACME", T0 + 6_000), 0)
    w.add("ticks", tick("ACME", T0 + 130_000, 105.0), 0)
    [(_, second)] = w.due(0)
    assert second["start_ms"] == T0 + 60_000
    assert (second["late_ticks"], second["late_signals"]) == (1, 1)


def test_signals_join_the_window_of_their_publication_time() -> None:
    w = TickWindows(CONFIG)
    w.add("ticks", tick("ACME", T0 + 1_000, 100.0), 0)
    w.add("signals", signal("ACME", T0 + 20_000, "down"), 0)
    w.add("signals", signal("GLBX", T0 + 20_000), 0)
    [(acme_key, acme), (_, glbx)] = sorted(w.due(10**9))
    assert acme_key == f"ACME:{T0}" and [s["direction"] for s in acme["signals"]] == ["down"]
    assert glbx["ticks"] == 0 and glbx["open"] is None and len(glbx["signals"]) == 1
    assert acme["closed_by"] == "idle"


def test_volatility_is_the_stdev_of_log_returns_between_points() -> None:
    w = TickWindows(CONFIG)
    prices = [100.0, 101.0, 99.0, 102.0]
    for i, p in enumerate(prices):
        w.add("ticks", tick("ACME", T0 + i * 10_000, p), 0)
    [(_, window)] = w.due(10**9)
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    mean = sum(returns) / 3
    expected = math.sqrt(sum((r - mean) ** 2 for r in returns) / 2)
    assert window["volatility"] == pytest.approx(expected)


def test_a_snapshot_restores_the_same_windows() -> None:
    w = TickWindows(CONFIG)
    w.add("ticks", tick("ACME", T0 + 1_000, 100.0), 0)
    w.add("signals", signal("ACME", T0 + 2_000), 0)
    w.add("ticks", tick("ACME", T0 + 70_000, 101.0), 0)
    assert len(w.due(0)) == 1
    w.add("ticks", tick("ACME", T0 + 5_000, 90.0), 0)  # late
    w.add("ticks", tick("ACME", T0 + 80_000, 103.0), 0)
    restored = TickWindows(CONFIG, w.snapshot())
    json.loads(w.snapshot())
    assert restored.due(10**9) == w.due(10**9)


def test_bad_ticks_and_unknown_topics_are_refused() -> None:
    w = TickWindows(CONFIG)
    with pytest.raises(ValueError, match="must be positive"):
        w.add("ticks", tick("ACME", T0, -1.0), 0)
    with pytest.raises(ValueError, match="neither"):
        w.add("elsewhere", tick("ACME", T0, 1.0), 0)
    with pytest.raises(ValueError, match="divide"):
        WindowConfig("a", "b", size_ms=1000, points=7)


def test_an_idle_partition_closes_a_window_only_once_the_clock_covers_its_rest_and_the_grace() -> None:
    w = TickWindows(CONFIG)
    w.add("ticks", tick("ACME", T0 + 50_000, 100.0), 0)  # 10 s before the end, 10 s of grace
    assert w.due(19_999) == []
    [(_, window)] = w.due(20_000)
    assert window["closed_by"] == "idle"
