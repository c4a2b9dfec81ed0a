"""Retrieval-augmented generation below the pipelines: fusing ranked lists, and measuring
retrieval against a labelled question set."""

from agents.rag.evaluate import EvalQuestion, Report, evaluate, load_questions
from agents.rag.fusion import reciprocal_rank_fusion

__all__ = ["EvalQuestion", "Report", "evaluate", "load_questions", "reciprocal_rank_fusion"]
