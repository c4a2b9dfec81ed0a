"""The public face of agents.rag: a change to it is a decision, not an accident."""

import agents.rag


def test_the_public_names_of_rag() -> None:
    assert sorted(agents.rag.__all__) == [
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
    for name in agents.rag.__all__:
        assert getattr(agents.rag, name) is not None
