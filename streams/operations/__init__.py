"""What a person runs against topics that already hold records: replay and what-if, dead-letter
redrive, the exactly-once audit, trace waterfalls and the HTML report."""

from streams.operations.audit import classify, pipeline_topics, run_audit
from streams.operations.dlq import LEDGER_TOPIC, REDRIVE_OF, read_dead_letters, redrive, summarize
from streams.operations.replay import REPLAY_MARK, REPLAY_OF, Checkpoint, replay_range
from streams.operations.report import render, summarize_spans
from streams.operations.traces import read_spans, read_window, waterfall, waterfall_table
from streams.operations.whatif import Comparison, what_if

__all__ = [
    "LEDGER_TOPIC",
    "REDRIVE_OF",
    "REPLAY_MARK",
    "REPLAY_OF",
    "Checkpoint",
    "Comparison",
    "classify",
    "pipeline_topics",
    "read_dead_letters",
    "read_spans",
    "read_window",
    "redrive",
    "render",
    "replay_range",
    "run_audit",
    "summarize",
    "summarize_spans",
    "waterfall",
    "waterfall_table",
    "what_if",
]
