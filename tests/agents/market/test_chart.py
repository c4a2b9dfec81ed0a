"""The SVG chart: valid XML at the requested size, one price line, coloured markers on the
price at their time, and valid output for the awkward windows (empty, one tick, flat, odd text)."""

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from agents.market.chart import Marker, price_chart_svg, utc_clock

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_795_600_000_000  # 2026-11-25 09:46:40 UTC
POINTS = [(T0 + i * 5000, 100.0 + (i % 4) * 0.5) for i in range(13)]  # one minute of ticks


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _pairs(points_attr: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in points_attr.split())]


def _markers(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter() if "marker" in e.get("class", "").split()]


def _texts(root: ET.Element, cls: str) -> list[str]:
    return [e.text or "" for e in root.iter(f"{SVG}text") if e.get("class") == cls]


@pytest.mark.parametrize(("width", "height"), [(720, 320), (400, 200)])
def test_root_has_the_requested_size(width: int, height: int) -> None:
    root = _parse(price_chart_svg(POINTS, [], width=width, height=height))
    assert root.tag == f"{SVG}svg"
    assert (root.get("width"), root.get("height")) == (str(width), str(height))
    assert root.get("viewBox") == f"0 0 {width} {height}"


def test_one_polyline_with_a_vertex_per_tick_inside_the_chart() -> None:
    root = _parse(price_chart_svg(POINTS, []))
    [line] = root.iter(f"{SVG}polyline")
    pairs = _pairs(line.get("points", ""))
    assert len(pairs) == len(POINTS)
    assert all(0 < x < 720 and 0 < y < 320 for x, y in pairs)
    assert [x for x, _ in pairs] == sorted(x for x, _ in pairs)
    # Higher price, smaller y: tick 0 is 100.0, tick 3 is 101.5.
    assert pairs[3][1] < pairs[0][1]


def test_points_are_sorted_and_non_finite_prices_dropped() -> None:
    shuffled = [*reversed(POINTS), (T0 + 2500, float("nan"))]
    root = _parse(price_chart_svg(shuffled, []))
    [line] = root.iter(f"{SVG}polyline")
    assert line.get("points") == next(_parse(price_chart_svg(POINTS, [])).iter(f"{SVG}polyline")).get(
        "points"
    )


def test_axis_labels_show_prices_and_utc_clock_times() -> None:
    root = _parse(price_chart_svg(POINTS, [], title="ACME"))
    prices = [float(t) for t in _texts(root, "y-tick")]
    assert len(prices) >= 3
    assert min(prices) <= 100.0 and max(prices) >= 101.5
    clocks = _texts(root, "x-tick")
    assert len(clocks) >= 3 and all(re.fullmatch(r"\d\d:\d\d:\d\d", c) for c in clocks)
    assert clocks[0] == datetime.fromtimestamp(T0 / 1000, tz=UTC).strftime("%H:%M:%S") == "09:46:40"
    assert clocks[-1] == utc_clock(POINTS[-1][0]) == "09:47:40"
    assert _texts(root, "title") == ["ACME"]


def test_markers_have_shape_colour_and_hover_text_by_direction() -> None:
    markers = [
        Marker(T0 + 10_000, "up", "ACME beats estimates: beats estimates (+)"),
        Marker(T0 + 20_000, "down", "cuts guidance (-)"),
        Marker(T0 + 30_000, "down", "probe (-)"),
        Marker(T0 + 40_000, "neutral", "no lexicon phrases matched"),
    ]
    found = _markers(_parse(price_chart_svg(POINTS, markers)))
    shapes = [(e.tag.removeprefix(SVG), e.get("class"), e.get("fill")) for e in found]
    assert shapes == [
        ("polygon", "marker up", "#2e7d32"),
        ("polygon", "marker down", "#c62828"),
        ("polygon", "marker down", "#c62828"),
        ("circle", "marker neutral", "#757575"),
    ]
    assert [e.findtext(f"{SVG}title") for e in found] == [m.label for m in markers]


def test_an_up_triangle_points_up_and_a_down_triangle_points_down() -> None:
    found = _markers(_parse(price_chart_svg(POINTS, [Marker(T0, "up", "a"), Marker(T0, "down", "b")])))
    up, down = (_pairs(e.get("points", "")) for e in found)
    assert min(y for _, y in up) == up[0][1]  # apex first, at the top
    assert max(y for _, y in down) == down[0][1]  # apex first, at the bottom


def test_a_marker_sits_on_the_price_interpolated_at_its_time() -> None:
    points = [(T0, 100.0), (T0 + 10_000, 110.0)]
    root = _parse(price_chart_svg(points, [Marker(T0 + 2_500, "up", "x")]))
    [(x0, y0), (x1, y1)] = _pairs(next(root.iter(f"{SVG}polyline")).get("points", ""))
    [marker] = _markers(root)
    corners = _pairs(marker.get("points", ""))
    centre_x = sum(x for x, _ in corners) / 3
    centre_y = (min(y for _, y in corners) + max(y for _, y in corners)) / 2
    assert centre_x == pytest.approx(x0 + (x1 - x0) / 4, abs=0.1)
    assert centre_y == pytest.approx(y0 + (y1 - y0) / 4, abs=0.1)  # 102.5 on the line


def test_markers_outside_the_ticks_are_skipped_and_counted() -> None:
    markers = [
        Marker(T0 - 1, "up", "before"),
        Marker(T0 + 5000, "up", "in"),
        Marker(T0 + 10**6, "down", "after"),
    ]
    root = _parse(price_chart_svg(POINTS, markers))
    assert [e.findtext(f"{SVG}title") for e in _markers(root)] == ["in"]
    assert _texts(root, "note") == ["2 news signals outside the ticks' time range not shown"]


def test_an_empty_window_is_a_valid_chart_with_a_note() -> None:
    root = _parse(price_chart_svg([], [Marker(T0, "up", "news without ticks")], title="ACME"))
    assert root.get("viewBox") == "0 0 720 320"
    assert list(root.iter(f"{SVG}polyline")) == [] and _markers(root) == []
    assert _texts(root, "note") == ["no ticks in this window"]


def test_a_single_tick_is_a_valid_chart_that_says_what_it_has() -> None:
    root = _parse(price_chart_svg([(T0, 99.86)], []))
    assert list(root.iter(f"{SVG}polyline")) == []
    assert _texts(root, "note") == ["only one tick in this window: 99.86 at 09:46:40 UTC"]


def test_flat_prices_draw_a_level_line_with_distinct_labels() -> None:
    root = _parse(
        price_chart_svg([(T0 + i * 1000, 50.0) for i in range(5)], [Marker(T0 + 1500, "neutral", "n")])
    )
    pairs = _pairs(next(root.iter(f"{SVG}polyline")).get("points", ""))
    assert len({y for _, y in pairs}) == 1 and 0 < pairs[0][1] < 320
    labels = _texts(root, "y-tick")
    assert len(set(labels)) == len(labels)
    [marker] = _markers(root)
    assert float(marker.get("cy", "nan")) == pairs[0][1]


def test_ticks_at_one_instant_do_not_divide_by_zero() -> None:
    root = _parse(price_chart_svg([(T0, 10.0), (T0, 11.0)], [Marker(T0, "up", "u")]))
    assert len(_pairs(next(root.iter(f"{SVG}polyline")).get("points", ""))) == 2
    assert len(_markers(root)) == 1


def test_text_is_escaped_for_xml() -> None:
    title = "AT&T <script>alert(\"x\")</script> 'q'"
    label = "Acme & Sons <b>beats</b>\x01 estimates"
    svg = price_chart_svg(POINTS, [Marker(T0, "up", label)], title=title)
    assert "<script>" not in svg and "<b>" not in svg
    root = _parse(svg)
    assert _texts(root, "title") == [title]
    assert root.get("aria-label") == title
    assert _markers(root)[0].findtext(f"{SVG}title") == "Acme & Sons <b>beats</b> estimates"


def test_a_chart_too_small_to_plot_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        price_chart_svg(POINTS, [], width=100, height=50)


def test_an_unknown_direction_draws_as_neutral() -> None:
    [marker] = _markers(_parse(price_chart_svg(POINTS, [Marker(T0, "sideways", "odd")])))
    assert (marker.tag, marker.get("class"), marker.get("fill")) == (
        f"{SVG}circle",
        "marker neutral",
        "#757575",
    )
