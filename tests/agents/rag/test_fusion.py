"""Reciprocal rank fusion: arithmetic, agreement between lists, deterministic ties, arguments."""

import pytest

from agents.rag.fusion import reciprocal_rank_fusion


def test_scores_are_the_sum_of_weight_over_k_plus_rank() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=10))
    assert fused == pytest.approx({"a": 1 / 11, "b": 1 / 12 + 1 / 11, "c": 1 / 12})


def test_an_id_both_lists_found_beats_ids_one_list_found_at_the_same_ranks() -> None:
    # "both" is second in each list; "x" and "y" are first in one list only.
    fused = reciprocal_rank_fusion([["x", "both", "p"], ["y", "both", "q"]])
    assert fused[0][0] == "both"
    assert [id_ for id_, _ in fused[1:3]] == ["x", "y"]


def test_ties_are_broken_by_best_rank_then_list_order_then_id() -> None:
    # "b" and "z" have equal scores (rank 1 and 3 against rank 3 and 1); so do "m" and "n".
    fused = reciprocal_rank_fusion([["b", "m", "z"], ["z", "n", "b"]])
    assert [id_ for id_, _ in fused] == ["b", "z", "m", "n"]
    assert fused == reciprocal_rank_fusion([["b", "m", "z"], ["z", "n", "b"]])
    # Same rank in the same list position cannot happen for two ids, so the id breaks the rest:
    assert [i for i, _ in reciprocal_rank_fusion([["d"], ["c"]], weights=[1.0, 1.0])] == ["d", "c"]
    assert [i for i, _ in reciprocal_rank_fusion([["d"], []])] == ["d"]


def test_weights_favour_a_list() -> None:
    lists = [["lexical"], ["dense"]]
    assert reciprocal_rank_fusion(lists, weights=[1.0, 2.0])[0][0] == "dense"
    assert reciprocal_rank_fusion(lists, weights=[2.0, 1.0])[0][0] == "lexical"
    # A zero weight still lists the ids, with nothing added to their score.
    assert dict(reciprocal_rank_fusion(lists, weights=[1.0, 0.0]))["dense"] == 0.0


def test_a_repeated_id_counts_at_its_first_rank_only() -> None:
    assert dict(reciprocal_rank_fusion([["a", "b", "a"]], k=0)) == {"a": 1.0, "b": 0.5}


def test_limit_keeps_the_best() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "d"]], limit=2)
    assert [i for i, _ in fused] == ["c", "a"]
    assert reciprocal_rank_fusion([["a"]], limit=0) == []


def test_nothing_in_nothing_out() -> None:
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": -1}, "k must be"),
        ({"weights": [1.0]}, "1 weights for 2 rankings"),
        ({"weights": [1.0, -0.5]}, "must not be negative"),
        ({"limit": -1}, "limit must be"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reciprocal_rank_fusion([["a"], ["b"]], **kwargs)  # type: ignore[arg-type]


def test_the_same_ranks_in_another_order_of_lists_give_exactly_the_same_score() -> None:
    lists = [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"]]
    fused = dict(reciprocal_rank_fusion(lists, k=7))
    assert fused["a"] == fused["b"] == fused["c"]
    assert [i for i, _ in reciprocal_rank_fusion(lists, k=7)] == ["a", "c", "b"]
