"""Retrieval-augmented generation, the library under the pipelines: a vector store behind one
small interface (:mod:`agents.rag.store`, LanceDB embedded or PostgreSQL with pgvector),
fusing ranked lists, and measuring retrieval against a labelled question set."""

from agents.rag.evaluate import EvalQuestion, Report, evaluate, load_questions
from agents.rag.fusion import reciprocal_rank_fusion
from agents.rag.store import (
    Chunk,
    DimensionMismatch,
    Filters,
    Hit,
    IndexVersion,
    StoreUnavailable,
    UnknownIndexVersion,
    VectorStore,
    VectorStoreError,
    open_store,
    version_name,
)

__all__ = [
    "Chunk",
    "DimensionMismatch",
    "EvalQuestion",
    "Filters",
    "Hit",
    "IndexVersion",
    "Report",
    "StoreUnavailable",
    "UnknownIndexVersion",
    "VectorStore",
    "VectorStoreError",
    "evaluate",
    "load_questions",
    "open_store",
    "reciprocal_rank_fusion",
    "version_name",
]
