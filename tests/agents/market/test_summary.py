"""Window summaries and the report page: the wording follows the numbers and the stated
thresholds, news is named and weighed against the move, and the page escapes what it shows."""

import json
import math
import re
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from agents.market.chart import Marker, price_chart_svg
from agents.market.signals import Direction, extract_signals
from agents.market.summary import (
    CALM_BELOW,
    VOLATILE_FROM,
    WindowSignal,
    WindowView,
    report_html,
    summarize_window,
)

DATA = Path(__file__).resolve().parents[3] / "agents" / "data" / "market"
T0 = 1_795_600_000_000  # 2026-11-25 09:46:40 UTC
END = T0 + 60_000


def _view(
    open_: float, close: float, *, volatility: float = 0.002, signals: tuple[WindowSignal, ...] = ()
) -> WindowView:
    return WindowView(
        "ACME",
        T0,
        END,
        open_,
        max(open_, close) + 1,
        min(open_, close) - 1,
        close,
        1234.0,
        12,
        volatility,
        signals,
    )


def _signal(
    direction: Direction, strength: float, title: str = "ACME beats estimates", t: int = T0 + 1000
) -> WindowSignal:
    return WindowSignal(t, title, "ACME", direction, strength, f"{direction} phrase")


def _sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


def test_from_ticks_computes_ohlc_volume_and_log_return_volatility() -> None:
    ticks = [
        (T0 + 10_000, 101.0, 5.0),
        (T0, 100.0, 10.0),
        (T0 + 20_000, 99.0, 2.5),
        (T0 + 30_000, 102.0, 0.0),
    ]
    view = WindowView.from_ticks("ACME", T0, END, ticks)
    assert (view.open, view.high, view.low, view.close) == (100.0, 102.0, 99.0, 102.0)
    assert (view.volume, view.ticks) == (17.5, 4)
    returns = [math.log(101 / 100), math.log(99 / 101), math.log(102 / 99)]
    assert view.volatility == pytest.approx(statistics.stdev(returns))


def test_from_ticks_drops_unusable_prices_and_handles_too_few_ticks() -> None:
    view = WindowView.from_ticks(
        "ACME", T0, END, [(T0, 0.0, 1.0), (T0 + 1, float("nan"), 1.0), (T0 + 2, 50.0, 3.0)]
    )
    assert (view.ticks, view.open, view.close, view.volatility, view.volume) == (1, 50.0, 50.0, 0.0, 3.0)
    assert WindowView.from_ticks("ACME", T0, END, []).ticks == 0


def test_a_rise_is_worded_with_the_percentage_and_prices() -> None:
    text = summarize_window(_view(100.0, 101.5))
    assert text.startswith("ACME rose 1.50% from 100.00 to 101.50 between 09:46:40 and 09:47:40 UTC.")


def test_a_large_fall_is_sharp() -> None:
    text = summarize_window(_view(100.0, 97.0))
    assert text.startswith("ACME fell sharply 3.00% from 100.00 to 97.00")


def test_a_move_under_the_flat_threshold_is_flat() -> None:
    assert summarize_window(_view(100.0, 100.04)).startswith("ACME was flat (+0.04%) at 100.04")
    assert summarize_window(_view(100.0, 99.96)).startswith("ACME was flat (-0.04%) at 99.96")
    assert summarize_window(_view(100.0, 100.06)).startswith("ACME rose 0.06%")


def test_range_volume_and_ticks_are_stated() -> None:
    text = summarize_window(_view(100.0, 101.5))
    assert "It traded between 99.00 and 102.50 on volume 1,234 over 12 ticks;" in text


@pytest.mark.parametrize(
    ("volatility", "word", "shown"),
    [
        (0.0004, "calm", "0.04%"),
        (CALM_BELOW, "choppy", "0.10%"),
        (0.0025, "choppy", "0.25%"),
        (VOLATILE_FROM, "volatile", "0.50%"),
    ],
)
def test_volatility_words_follow_the_thresholds(volatility: float, word: str, shown: str) -> None:
    text = summarize_window(_view(100.0, 101.0, volatility=volatility))
    assert f"trading was {word} (volatility {shown} per step)." in text


def test_no_signals_is_said_and_makes_three_sentences() -> None:
    text = summarize_window(_view(100.0, 101.0))
    assert text.endswith("No news signals in this window.")
    assert _sentences(text) == 3


def test_signals_are_listed_in_time_order_with_direction_and_strength() -> None:
    signals = (
        _signal("down", 0.6044, "Regulator opens probe into Acme pricing.", T0 + 9000),
        _signal("up", 0.7616, "ACME beats quarterly revenue estimates", T0 + 1000),
    )
    text = summarize_window(_view(100.0, 101.0, signals=signals))
    assert (
        "2 news signals: ACME beats quarterly revenue estimates (up, strength 0.76); "
        "Regulator opens probe into Acme pricing (down, strength 0.60)."
    ) in text
    assert text.endswith("The price moved with the net up signal (+0.16).")
    assert _sentences(text) == 4


def test_a_move_against_the_news_is_called_out() -> None:
    text = summarize_window(_view(100.0, 98.0, signals=(_signal("up", 0.76),)))
    assert "1 news signal: ACME beats estimates (up, strength 0.76)." in text
    assert text.endswith("The price moved against the net up signal (+0.76).")


def test_a_flat_price_under_news_and_news_that_cancels_out() -> None:
    held = summarize_window(_view(100.0, 100.0, signals=(_signal("down", 0.5),)))
    assert held.endswith("The price held flat despite a net down signal (-0.50).")
    mixed = summarize_window(_view(100.0, 101.0, signals=(_signal("up", 0.5), _signal("down", 0.45))))
    assert mixed.endswith("The news nets out neutral (+0.05), so the move follows no signal.")


def test_no_ticks_is_said_and_news_still_listed() -> None:
    empty = WindowView.from_ticks("GLBX", T0, END, [], [_signal("down", 0.76, "Globex cuts guidance")])
    text = summarize_window(empty)
    assert text == (
        "No ticks for GLBX between 09:46:40 and 09:47:40 UTC. "
        "1 news signal: Globex cuts guidance (down, strength 0.76)."
    )
    assert summarize_window(WindowView.from_ticks("GLBX", T0, END, [])).endswith(
        "No news signals in this window."
    )


def test_the_sample_feed_summarises_end_to_end() -> None:
    rows = [json.loads(line) for line in (DATA / "ticks.jsonl").read_text().splitlines() if line.strip()]
    ticks = [
        (r["ts"], float(r["price"]), float(r.get("volume", 0)))
        for r in rows
        if r["symbol"] == "ACME" and isinstance(r["price"], int | float)
    ]
    news = [json.loads(line) for line in (DATA / "news.jsonl").read_text().splitlines() if line.strip()]
    signals = [
        WindowSignal.of(s, item["published_ms"], item["title"])
        for item in news
        if item.get("title")
        for s in extract_signals(item["title"], item.get("summary", ""), item.get("symbols", []))
        if s.symbol == "ACME"
    ]
    start, end = min(t for t, _, _ in ticks), max(t for t, _, _ in ticks)
    view = WindowView.from_ticks("ACME", start, end, ticks, signals)
    text = summarize_window(view)
    assert view.ticks == len(ticks) == 120
    assert "trading was choppy" in text
    assert (
        "2 news signals: ACME beats quarterly revenue estimates on cloud demand (up, strength 0.76)" in text
    )
    chart = price_chart_svg(
        [(t, p) for t, p, _ in ticks],
        [Marker(s.t_ms, s.direction, s.rationale) for s in signals],
        title="ACME",
    )
    page = report_html("ACME", start, end, text, chart, signals)
    ET.fromstring(chart)
    assert page.count("<tr class=") == 2


def test_the_report_inlines_the_chart_and_escapes_text() -> None:
    chart = price_chart_svg([(T0, 1.0), (END, 2.0)], [], title="Acme & Co")
    signals = [_signal("up", 0.8, "<b>Acme</b> & Co beats estimates")]
    page = report_html("A<CME>", T0, END, 'Summary with <script>alert("x")</script> & more', chart, signals)
    assert page.startswith("<!doctype html>")
    assert chart in page
    assert "<script>" not in page and "<b>" not in page and "A<CME>" not in page
    assert "&lt;b&gt;Acme&lt;/b&gt; &amp; Co beats estimates" in page
    assert "Summary with &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "<h1>A&lt;CME&gt; · 2026-11-25 09:46:40 to 09:47:40 UTC</h1>" in page
    assert '<tr class="up"><td>09:46:41</td><td>up</td><td>0.80</td>' in page


def test_a_report_without_signals_says_so_in_the_table() -> None:
    page = report_html("ACME", T0, END, "s", price_chart_svg([], []), [])
    assert "No news signals in this window." in page
    assert "<tr class=" not in page
