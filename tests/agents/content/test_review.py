import pytest

from agents.content.review import Thresholds, arrival, decide, merge_checks, ready

T = Thresholds(factcheck=0.7, style=0.8, max_revisions=2, join_timeout_s=60)


def check(branch: str, score: float, critique: tuple[str, ...] = (), round_: int = 0) -> dict[str, object]:
    return {"branch": branch, "round": round_, "score": score, "critique": list(critique)}


def test_both_checks_at_threshold_publish() -> None:
    outcome = decide([check("factcheck", 0.7), check("style", 0.8)], {}, 0, T)
    assert outcome.action == "publish"


def test_a_low_score_revises_with_only_the_failing_critique_while_revisions_remain() -> None:
    checks = [check("factcheck", 0.5, ("factcheck: contradicted: x",)), check("style", 0.9, ("style: y",))]
    outcome = decide(checks, {}, 1, T)
    assert outcome.action == "revise" and outcome.critique == ("factcheck: contradicted: x",)
    assert outcome.reasons == ("factcheck 0.50 < 0.70",)


def test_the_last_round_rejects_with_the_scores() -> None:
    outcome = decide([check("factcheck", 0.9), check("style", 0.3)], {}, 2, T)
    assert outcome.action == "reject"
    assert outcome.reasons == ("style 0.30 < 0.80", "no revisions left after 3 draft(s)")


def test_a_failed_or_missing_branch_rejects_without_revision() -> None:
    failed = decide([check("factcheck", 0.2)], {"style": "boom"}, 0, T)
    assert failed.action == "reject" and failed.reasons == ("style failed: boom",)
    missing = decide([check("style", 0.9)], {}, 0, T)
    assert missing.reasons == ("factcheck: no verdict within 60s",)


def test_arrivals_wait_for_every_branch_or_the_deadline() -> None:
    state, stale = arrival(None, "r1", 0, now_ms=1_000, timeout_ms=500)
    assert not stale and state["deadline_ms"] == 1_500 and not ready(state, 1_000)
    state["arrived"]["factcheck"] = b"..."
    assert not ready(state, 1_499) and ready(state, 1_500)
    state["failed"]["style"] = "boom"
    assert ready(state, 1_000)


def test_a_verdict_for_a_decided_or_older_round_is_stale_and_a_newer_round_starts_fresh() -> None:
    done = {
        "request_id": "r1",
        "round": 1,
        "status": "done",
        "arrived": {},
        "failed": {},
        "deadline_ms": 0,
        "updated_ms": 0,
    }
    assert arrival(done, "r1", 1, 5, 10)[1] and arrival(done, "r1", 0, 5, 10)[1]
    state, stale = arrival(done, "r1", 2, 5, 10)
    assert not stale and state["round"] == 2 and state["status"] == "waiting" and state["deadline_ms"] == 15


def test_merge_keeps_each_branch_own_check_of_the_round() -> None:
    fc = {"round": 1, "checks": [check("factcheck", 0.9, round_=1)]}
    st = {"round": 1, "checks": [check("style", 0.5, round_=1), check("factcheck", 0.1, round_=0)]}
    assert [c["branch"] for c in merge_checks({"style": st, "factcheck": fc})] == ["factcheck", "style"]


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError):
        Thresholds(style=1.5)
    with pytest.raises(ValueError):
        Thresholds(max_revisions=-1)
