import random

from streams.runtime.offsets import OffsetTracker

TP = ("t", 0)


def test_never_commits_past_an_unfinished_record() -> None:
    tracker = OffsetTracker()
    for offset in range(10, 15):
        tracker.started(TP, offset)
    tracker.finished(TP, 12)
    tracker.finished(TP, 11)
    assert tracker.to_commit() == {}  # 10 is still in flight
    tracker.finished(TP, 10)
    assert tracker.to_commit() == {TP: 13}
    tracker.committed({TP: 13})
    assert tracker.to_commit() == {}
    tracker.finished(TP, 14)
    assert tracker.to_commit() == {}  # 13 still in flight
    tracker.finished(TP, 13)
    assert tracker.to_commit() == {TP: 15}
    assert tracker.in_flight() == 0


def test_random_completion_order_matches_a_model() -> None:
    rng = random.Random(1)
    tracker = OffsetTracker()
    offsets = list(range(1000))
    for o in offsets:
        tracker.started(TP, o)
    done: set[int] = set()
    order = offsets[:]
    rng.shuffle(order)
    for o in order:
        tracker.finished(TP, o)
        done.add(o)
        expected = next(i for i in range(1001) if i not in done)
        got = tracker.to_commit().get(TP)
        assert got == (expected if expected > 0 else None)


def test_partitions_are_independent_and_forgettable() -> None:
    tracker = OffsetTracker()
    tracker.started(("t", 0), 0)
    tracker.started(("t", 1), 5)
    tracker.finished(("t", 1), 5)
    assert tracker.to_commit() == {("t", 1): 6}
    tracker.forget([("t", 0)])
    assert tracker.in_flight() == 0


def test_reading_again_from_an_earlier_offset_restarts_the_partition() -> None:
    tracker = OffsetTracker()
    assert tracker.started(TP, 5)
    assert not tracker.started(TP, 5)  # re-read after a seek: the old entry is dropped
    assert tracker.in_flight(TP) == 1
    tracker.finished(TP, 5)
    assert tracker.to_commit() == {TP: 6}


def test_abandoned_records_stop_counting_but_hold_the_position() -> None:
    tracker = OffsetTracker()
    for offset in (1, 2, 3):
        tracker.started(TP, offset)
    tracker.abandoned(TP, 1)
    tracker.finished(TP, 2)
    tracker.finished(TP, 3)
    assert tracker.in_flight(TP) == 0
    assert tracker.to_commit() == {}  # 1 has no outcome: it must be read again


def test_a_record_finishing_after_its_partition_was_forgotten_is_ignored() -> None:
    tracker = OffsetTracker()
    tracker.started(TP, 7)
    tracker.forget([TP])
    tracker.finished(TP, 7)  # no error, and nothing to commit for a partition we no longer own
    assert tracker.to_commit() == {}
    tracker.started(TP, 3)  # re-assigned later, from an older committed position
    tracker.finished(TP, 3)
    assert tracker.to_commit() == {TP: 4}
