"""Retrieval-augmented generation below the pipelines: fusing ranked lists, and measuring
retrieval against a labelled question set."""

from agents.rag.fusion import reciprocal_rank_fusion

__all__ = ["reciprocal_rank_fusion"]
