"""The public face of agents.rag: a change to it is a decision, not an accident."""

import agents.rag


def test_the_public_names() -> None:
    assert sorted(agents.rag.__all__) == [
        "EvalQuestion",
        "Report",
        "evaluate",
        "load_questions",
        "reciprocal_rank_fusion",
    ]
    assert all(hasattr(agents.rag, name) for name in agents.rag.__all__)
