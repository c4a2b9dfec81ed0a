"""A price chart with news markers, as hand-written SVG (no plotting dependency).

The output is one ``<svg>`` element that parses as XML and can be inlined in HTML: axes with
price labels (y) and UTC clock labels (x), the price as a polyline, and a marker per news signal
at the signal's time, sitting on the price interpolated between the ticks around it. Each marker
holds a ``<title>`` with its label, which browsers show on hover.

Edge cases, decided here so callers need not:

* points are sorted by time; points with a non-finite price are dropped;
* fewer than two points draw no line (there is nothing to join): the chart says so in a note;
* flat prices get a small band around the price, so there is no division by zero;
* a marker outside the ticks' time range is skipped, not clamped (clamping would place it at a
  time it did not happen, on a price it never met); a note counts the skipped markers.
"""

from __future__ import annotations

import bisect
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Marker", "price_chart_svg", "utc_clock"]

_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 32, 36, 44  # margins: room for price labels, clock labels, title
_Y_TICKS = 5
_X_TICKS = 5
_MARKER = 6  # half the marker's size, px
_LINE = "#1565c0"
_COLOURS: dict[str, str] = {"up": "#2e7d32", "down": "#c62828", "neutral": "#757575"}
# Characters XML 1.0 forbids even when escaped; a feed's title can carry them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Marker:
    t_ms: int
    # "up", "down" or "neutral" (a Direction); typed str so a decoded record's field passes
    # as it is, and anything else draws as neutral.
    direction: str
    label: str  # shown on hover: the headline and the rationale


def utc_clock(ms: int) -> str:
    """``HH:MM:SS`` in UTC for epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S")


def _esc(text: str) -> str:
    return html.escape(_NOT_XML.sub("", text), quote=True)


@dataclass(frozen=True)
class _Frame:
    """Maps (time, price) to (x, y) inside the plot area."""

    t0: int
    t1: int
    lo: float
    hi: float
    left: float
    top: float
    width: float
    height: float

    def x(self, t_ms: float) -> float:
        if self.t1 == self.t0:  # every tick at one instant: centre them
            return self.left + self.width / 2
        return self.left + (t_ms - self.t0) / (self.t1 - self.t0) * self.width

    def y(self, price: float) -> float:
        return self.top + (self.hi - price) / (self.hi - self.lo) * self.height


def _frame(points: Sequence[tuple[int, float]], width: int, height: int) -> _Frame:
    prices = [p for _, p in points]
    lo, hi = min(prices), max(prices)
    # Flat prices: a band of 0.5% (at least a cent) around the price; else 8% headroom.
    pad = max(abs(lo) * 0.005, 0.01) if hi - lo < 1e-9 else (hi - lo) * 0.08
    return _Frame(
        points[0][0], points[-1][0], lo - pad, hi + pad,
        _LEFT, _TOP, width - _LEFT - _RIGHT, height - _TOP - _BOTTOM,
    )  # fmt: skip


def _price_at(points: Sequence[tuple[int, float]], times: Sequence[int], t_ms: int) -> float:
    i = bisect.bisect_left(times, t_ms)
    if times[i] == t_ms or i == 0:
        return points[i][1]
    (ta, pa), (tb, pb) = points[i - 1], points[i]
    return pa + (pb - pa) * (t_ms - ta) / (tb - ta)


def _axes(f: _Frame) -> list[str]:
    bottom, right = f.top + f.height, f.left + f.width
    out = [
        f'<g class="axes" stroke="#444" stroke-width="1">'
        f'<line x1="{f.left}" y1="{f.top}" x2="{f.left}" y2="{bottom}"/>'
        f'<line x1="{f.left}" y1="{bottom}" x2="{right}" y2="{bottom}"/></g>'
    ]
    step = (f.hi - f.lo) / (_Y_TICKS - 1)
    decimals = max(2, min(6, 1 - math.floor(math.log10(step))))
    for k in range(_Y_TICKS):
        price = f.lo + k * step
        y = f.y(price)
        out.append(f'<line class="grid" x1="{f.left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>')
        label = f"{price:.{decimals}f}"
        out.append(f'<text class="y-tick" x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    ticks = 1 if f.t1 == f.t0 else _X_TICKS
    for k in range(ticks):
        t = f.t0 + (f.t1 - f.t0) * k / max(ticks - 1, 1)
        x = f.x(t)
        out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#444"/>')
        label = utc_clock(round(t))
        out.append(f'<text class="x-tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{label}</text>')
    out.append(
        f'<text class="axis-label" x="{right}" y="{bottom + 34}" text-anchor="end" fill="#666">'
        "time (UTC)</text>"
    )
    return out


def _marker(x: float, y: float, marker: Marker) -> str:
    colour = _COLOURS.get(marker.direction, _COLOURS["neutral"])
    hover = f"<title>{_esc(marker.label)}</title>"
    s = _MARKER
    if marker.direction == "up":
        shape = f"{x:.1f},{y - s:.1f} {x - s:.1f},{y + s:.1f} {x + s:.1f},{y + s:.1f}"
        return f'<polygon class="marker up" fill="{colour}" points="{shape}">{hover}</polygon>'
    if marker.direction == "down":
        shape = f"{x:.1f},{y + s:.1f} {x - s:.1f},{y - s:.1f} {x + s:.1f},{y - s:.1f}"
        return f'<polygon class="marker down" fill="{colour}" points="{shape}">{hover}</polygon>'
    circle = f'cx="{x:.1f}" cy="{y:.1f}" r="{s - 1}"'
    return f'<circle class="marker neutral" fill="{colour}" {circle}>{hover}</circle>'


def _note(text: str, x: float, y: float) -> str:
    return f'<text class="note" x="{x:.1f}" y="{y:.1f}" text-anchor="middle" fill="#666">{_esc(text)}</text>'


def price_chart_svg(
    points: Sequence[tuple[int, float]],
    markers: Sequence[Marker],
    *,
    width: int = 720,
    height: int = 320,
    title: str = "",
) -> str:
    """An SVG chart of ``(t_ms, price)`` points with ``markers`` for news signals."""
    if width < _LEFT + _RIGHT + 40 or height < _TOP + _BOTTOM + 40:
        raise ValueError(f"chart too small: {width}x{height} leaves no room to plot")
    ticks = sorted((int(t), float(p)) for t, p in points if math.isfinite(p))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(title or "price chart")}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect class="background" width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        out.append(
            f'<text class="title" x="{_LEFT}" y="22" font-size="14" font-weight="bold">{_esc(title)}</text>'
        )
    middle_x, middle_y = width / 2, height / 2
    if not ticks:
        out.append(_note("no ticks in this window", middle_x, middle_y))
    elif len(ticks) == 1:
        t, p = ticks[0]
        out.append(_note(f"only one tick in this window: {p:.2f} at {utc_clock(t)} UTC", middle_x, middle_y))
    else:
        f = _frame(ticks, width, height)
        out.extend(_axes(f))
        line = " ".join(f"{f.x(t):.1f},{f.y(p):.1f}" for t, p in ticks)
        out.append(
            f'<polyline class="price" fill="none" stroke="{_LINE}" stroke-width="1.5" points="{line}"/>'
        )
        times = [t for t, _ in ticks]
        shown = [m for m in markers if times[0] <= m.t_ms <= times[-1]]
        out.append('<g class="markers">')
        out.extend(_marker(f.x(m.t_ms), f.y(_price_at(ticks, times, m.t_ms)), m) for m in shown)
        out.append("</g>")
        skipped = len(markers) - len(shown)
        if skipped:
            plural = "signal" if skipped == 1 else "signals"
            text = f"{skipped} news {plural} outside the ticks' time range not shown"
            out.append(f'<text class="note" x="{_LEFT}" y="{height - 10}" fill="#666">{_esc(text)}</text>')
    out.append("</svg>")
    return "\n".join(out)
