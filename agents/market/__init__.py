"""The market pipeline's own pieces: news -> per-symbol signals, price charts, window summaries.

Everything here is offline and deterministic (a lexicon, not an LLM; hand-written SVG), and free
of I/O, so stages stay thin shells around these functions.
"""

from agents.market.chart import Marker, price_chart_svg
from agents.market.signals import DEFAULT_ALIASES, Direction, Signal, extract_signals, find_symbols
from agents.market.summary import NewsSignal, WindowSignal, WindowView, report_html, summarize_window

__all__ = [
    "DEFAULT_ALIASES",
    "Direction",
    "Marker",
    "NewsSignal",
    "Signal",
    "WindowSignal",
    "WindowView",
    "extract_signals",
    "find_symbols",
    "price_chart_svg",
    "report_html",
    "summarize_window",
]
