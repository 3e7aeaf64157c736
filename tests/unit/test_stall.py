"""snowmelt.stall: a partition with records waiting, no commit and nothing in hand for the timeout is a stall."""
from __future__ import annotations

from processor.ledger import OffsetLedger
from snowmelt.stall import StallWatch


def check(watch, committed, high, in_hand=0, now=0.0):
    return watch.check(committed, high.get, in_hand, now)


def test_records_waiting_with_nothing_committed_and_nothing_in_hand_stall_after_the_timeout():
    watch = StallWatch(10.0)
    assert check(watch, {"p0": 26, "p1": 40}, {"p0": 95, "p1": 40}, now=0.0) == []
    assert check(watch, {"p0": 26, "p1": 40}, {"p0": 95, "p1": 40}, now=9.9) == []
    stalled = check(watch, {"p0": 26, "p1": 40}, {"p0": 95, "p1": 40}, now=10.0)
    assert [(s.tp, s.committed, s.high) for s in stalled] == [("p0", 26, 95)]  # p1 is caught up
    assert "69 records waiting past committed offset 26, none committed for 10s" in str(stalled[0])


def test_a_commit_a_batch_in_hand_or_catching_up_starts_the_count_again():
    watch = StallWatch(10.0)
    check(watch, {"p0": 26}, {"p0": 95}, now=0.0)
    assert check(watch, {"p0": 30}, {"p0": 95}, now=8.0) == []   # committed moved: counts from 8
    assert check(watch, {"p0": 30}, {"p0": 95}, now=17.0) == []
    assert check(watch, {"p0": 30}, {"p0": 95}, in_hand=1, now=18.0) == []  # a slow batch is work
    assert check(watch, {"p0": 30}, {"p0": 95}, now=27.0) == []  # counts from 27 again
    assert check(watch, {"p0": 30}, {"p0": 30}, now=36.0) == []  # caught up
    assert check(watch, {"p0": 30}, {"p0": 31}, now=37.0) == []
    assert len(check(watch, {"p0": 30}, {"p0": 31}, now=47.0)) == 1


def test_unknown_offsets_and_reset_are_not_stalls():
    watch = StallWatch(1.0)
    assert check(watch, {"p0": None}, {"p0": 95}, now=0.0) == []
    assert check(watch, {"p0": 5}, {}, now=0.0) == []            # no high watermark yet
    check(watch, {"p0": 5}, {"p0": 9}, now=1.0)
    watch.reset()                                                 # the broker did not answer: an outage
    assert check(watch, {"p0": 5}, {"p0": 9}, now=2.5) == []
    assert len(check(watch, {"p0": 5}, {"p0": 9}, now=3.5)) == 1


def test_the_ledger_says_each_owned_partition_s_last_commit():
    ledger = OffsetLedger()
    ledger.assigned(["p0", "p1"], 1)
    assert ledger.committed_offsets() == {"p0": None, "p1": None}
    ledger.set_bases({"p0": 26})
    ledger.release("p0", [26, 27])
    ledger.committed(ledger.committable())
    assert ledger.committed_offsets() == {"p0": 28, "p1": None}
