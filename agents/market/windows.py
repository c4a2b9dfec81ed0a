"""Tumbling windows of one symbol's ticks joined with the news signals of the same time.

Event time is the source's own timestamp (a tick's ``source_ms``, a signal's ``published_ms``),
not when Kafka got the record, so a replayed or delayed feed lands in the windows it belongs to.

**Grace period.** A window ``[start, start + size)`` of a symbol stays open until that symbol's
newest event time reaches ``end + grace``: a tick or signal up to ``grace`` late, or out of
order by as much, still counts. Anything for a window already closed is *late*: it is dropped
and counted, and the count travels on the symbol's next window (``late_ticks``,
``late_signals``). When a partition has had no input for the stage's idle time (the feed ended
or stalled), its event time is taken to go on with the clock: a window closes once the time
since its symbol's newest record covers the rest of the window and the grace period, marked
``closed_by: idle``, so a quiet feed neither holds its last window forever nor cuts it short.

**Bounded state.** A window keeps open/high/low/close, volume and count, and the last price of
each of ``points`` equal slices of the window: the chart's line, and the series volatility is
measured on (the stdev of log returns between consecutive slices), so a window at 20,000 ticks/s
holds no more than one at 1 tick/s.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TickWindows", "WindowConfig"]


@dataclass(frozen=True)
class WindowConfig:
    ticks_topic: str
    signals_topic: str
    size_ms: int = 60_000
    grace_ms: int = 10_000
    points: int = 60

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.grace_ms < 0 or self.points < 2:
            raise ValueError("window size must be positive, grace not negative, points at least 2")
        if self.size_ms % self.points:
            raise ValueError(f"window size {self.size_ms} ms must divide into {self.points} points")


@dataclass
class _Window:
    start: int
    ticks: int = 0
    volume: float = 0.0
    first: tuple[int, float] | None = None  # (event time, price) of the earliest tick
    last: tuple[int, float] | None = None
    high: float = -math.inf
    low: float = math.inf
    slices: dict[int, tuple[int, float]] = field(default_factory=dict)  # slice -> newest tick
    signals: list[dict[str, Any]] = field(default_factory=list)

    def add_tick(self, t: int, price: float, volume: float, slice_ms: int) -> None:
        self.ticks += 1
        self.volume += volume
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        if self.first is None or t < self.first[0]:
            self.first = (t, price)
        if self.last is None or t >= self.last[0]:
            self.last = (t, price)
        n = (t - self.start) // slice_ms
        held = self.slices.get(n)
        if held is None or t >= held[0]:
            self.slices[n] = (t, price)


class TickWindows:
    """One partition's open windows (a :class:`streams.runtime.window_join.WindowState`)."""

    def __init__(self, config: WindowConfig, snapshot: bytes | None = None) -> None:
        self.config = config
        self._slice_ms = config.size_ms // config.points
        self._open: dict[str, dict[int, _Window]] = {}
        self._newest: dict[str, int] = {}  # symbol -> newest event time seen
        self._closed_until: dict[str, int] = {}  # symbol -> end of its newest emitted window
        self._late: dict[str, list[int]] = {}  # symbol -> [ticks, signals] dropped since last emit
        if snapshot:
            self._restore(json.loads(snapshot))

    # -- input ----------------------------------------------------------------------------
    def add(self, topic: str, value: dict[str, Any], timestamp_ms: int) -> None:
        if topic == self.config.ticks_topic:
            symbol, t = value["symbol"], int(value["source_ms"])
            price, volume = float(value["price"]), float(value.get("volume") or 0.0)
            if not (math.isfinite(price) and price > 0 and math.isfinite(volume) and volume >= 0):
                raise ValueError(
                    f"tick of {symbol} at {t}: price {price} and volume {volume} must be positive"
                )
            window = self._window(symbol, t, late_slot=0)
            if window is not None:
                window.add_tick(t, price, volume, self._slice_ms)
        elif topic == self.config.signals_topic:
            symbol, t = value["symbol"], int(value["published_ms"])
            window = self._window(symbol, t, late_slot=1)
            if window is not None:
                window.signals.append(value)
        else:
            raise ValueError(f"{topic} is neither {self.config.ticks_topic} nor {self.config.signals_topic}")

    def _window(self, symbol: str, t: int, late_slot: int) -> _Window | None:
        if t < self._closed_until.get(symbol, -math.inf):
            self._late.setdefault(symbol, [0, 0])[late_slot] += 1
            return None
        self._newest[symbol] = max(t, self._newest.get(symbol, t))
        start = t - t % self.config.size_ms
        windows = self._open.setdefault(symbol, {})
        if start not in windows:
            windows[start] = _Window(start)
        return windows[start]

    # -- output ---------------------------------------------------------------------------
    def due(self, idle_ms: int) -> list[tuple[str, dict[str, Any]]]:
        """Windows whose end plus grace the symbol's event time has passed; while the partition
        is idle, its event time is taken to move on by ``idle_ms`` past the newest record."""
        out: list[tuple[str, dict[str, Any]]] = []
        for symbol, windows in self._open.items():
            if not windows:
                continue
            watermark = self._newest[symbol] - self.config.grace_ms
            for start in sorted(windows):
                end = start + self.config.size_ms
                if end > watermark + idle_ms:
                    break
                window = windows.pop(start)
                self._closed_until[symbol] = max(end, self._closed_until.get(symbol, end))
                closed_by = "watermark" if end <= watermark else "idle"
                out.append((f"{symbol}:{start}", self._record(symbol, window, closed_by)))
        return out

    def _record(self, symbol: str, w: _Window, closed_by: str) -> dict[str, Any]:
        late = self._late.pop(symbol, [0, 0])
        points = [w.slices[n] for n in sorted(w.slices)]
        opened = w.first[1] if w.first else None
        closed = w.last[1] if w.last else None
        return {
            "symbol": symbol,
            "start_ms": w.start,
            "end_ms": w.start + self.config.size_ms,
            "ticks": w.ticks,
            "open": opened,
            "high": w.high if w.ticks else None,
            "low": w.low if w.ticks else None,
            "close": closed,
            "change_pct": (closed / opened - 1) * 100 if opened and closed else None,
            "volume": w.volume,
            "volatility": _volatility([p for _, p in points]),
            "points": [{"t_ms": t, "price": p} for t, p in points],
            "signals": sorted(w.signals, key=lambda s: (s["published_ms"], s["item_id"])),
            "late_ticks": late[0],
            "late_signals": late[1],
            "closed_by": closed_by,
        }

    # -- snapshot -------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return json.dumps(
            {
                "open": {
                    s: [
                        [
                            w.start,
                            w.ticks,
                            w.volume,
                            w.first,
                            w.last,
                            w.high if w.ticks else None,
                            w.low if w.ticks else None,
                            sorted(w.slices.items()),
                            w.signals,
                        ]
                        for w in ws.values()
                    ]
                    for s, ws in self._open.items()
                    if ws
                },
                "newest": self._newest,
                "closed_until": self._closed_until,
                "late": self._late,
            },
            separators=(",", ":"),
        ).encode()

    def _restore(self, data: dict[str, Any]) -> None:
        for symbol, rows in data["open"].items():
            for start, ticks, volume, first, last, high, low, slices, signals in rows:
                self._open.setdefault(symbol, {})[start] = _Window(
                    start=start,
                    ticks=ticks,
                    volume=volume,
                    first=tuple(first) if first else None,
                    last=tuple(last) if last else None,
                    high=high if high is not None else -math.inf,
                    low=low if low is not None else math.inf,
                    slices={int(n): (t, p) for n, (t, p) in slices},
                    signals=signals,
                )
        self._newest = {k: int(v) for k, v in data["newest"].items()}
        self._closed_until = {k: int(v) for k, v in data["closed_until"].items()}
        self._late = {k: list(v) for k, v in data["late"].items()}


def _volatility(prices: list[float]) -> float | None:
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    return statistics.stdev(returns) if len(returns) >= 2 else None
