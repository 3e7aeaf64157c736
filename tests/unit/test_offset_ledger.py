"""The enrich worker's offset ledger: a commit never passes a record whose output was not acknowledged."""
from __future__ import annotations

from collections import namedtuple

from processor.ledger import RESEEK_AFTER, OffsetLedger

TP = namedtuple("TP", "topic partition")  # as Faust's
P0, P1 = TP("raw", 0), TP("raw", 1)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def owned(bases: dict, generation: int = 1, clock=None) -> OffsetLedger:
    ledger = OffsetLedger(clock or Clock())
    ledger.assigned(bases, generation)
    assert ledger.set_bases(bases) == {}
    return ledger


def test_commits_advance_only_over_contiguous_released_offsets():
    ledger = owned({P0: 10, P1: 0})
    ledger.release(P0, [12, 13])  # a later batch acknowledged first
    assert ledger.committable() == {}
    ledger.release(P0, [10, 11])
    assert ledger.committable() == {P0: 14}
    ledger.committed({P0: 14})
    assert ledger.committable() == {}


def test_an_offset_that_never_arrived_holds_the_commit_however_many_follow():
    # Faust commits past a missing offset at the committed position when the next one is acknowledged
    ledger = owned({P0: 55})
    ledger.release(P0, range(56, 82))
    assert ledger.committable() == {}


def test_a_record_arriving_past_the_expected_offset_asks_for_a_seek_back_once():
    clock = Clock()
    ledger = owned({P0: 0}, clock=clock)
    assert ledger.arrived(P0, 0, 1) is None
    assert ledger.arrived(P0, 2, 1) == 1  # offset 1 was dropped on the way
    assert ledger.arrived(P0, 3, 1) is None  # records fetched before the seek still arriving
    clock.now += RESEEK_AFTER + 1
    assert ledger.arrived(P0, 4, 1) == 1  # the seek did not take: ask again
    assert ledger.arrived(P0, 1, 1) is None  # the hole's first record
    assert ledger.arrived(P0, 6, 1) == 2  # a new hole after the refilled one
    assert ledger.holes == 3


def test_records_of_an_earlier_assignment_count_for_commits_but_not_for_holes():
    ledger = owned({P0: 5}, generation=2)
    assert ledger.arrived(P0, 9, 1) is None
    ledger.release(P0, [3, 4, 5, 6])  # output of a batch taken before the rebalance: on the broker
    assert ledger.committable() == {P0: 7}


def test_records_arriving_before_the_base_is_known_are_checked_against_it():
    ledger = OffsetLedger(Clock())
    ledger.assigned([P0, P1], 1)
    assert ledger.without_base() == [P0, P1]
    ledger.arrived(P0, 2, 1)
    ledger.arrived(P1, 7, 1)
    ledger.release(P0, [2])
    assert ledger.committable() == {}  # nothing committed for a partition without its base
    assert ledger.set_bases({P0: 0, P1: 7}) == {P0: 0}
    assert ledger.without_base() == []
    ledger.release(P0, [0, 1])
    assert ledger.committable() == {P0: 3}


def test_revoked_partitions_are_forgotten_and_a_new_assignment_starts_over():
    ledger = owned({P0: 0, P1: 0})
    ledger.revoked([P1])
    ledger.release(P1, [0, 1])
    assert ledger.committable() == {}
    assert ledger.owned() == [P0]
    ledger.assigned([P1], 2)
    assert ledger.owned() == [P1]
    assert ledger.committable() == {}  # base not read yet


class FakeFaustConsumer:
    """The parts of Faust's consumer the worker's subclass overrides or calls."""

    def __init__(self):
        self.app = type("App", (), {"consumer_generation_id": 3})()
        self._acked = {P0: [99]}  # Faust's own count: a skipped record it acknowledged
        self._acked_index = {P0: {99}}
        self.commits: list[dict] = []
        self.seeks: list[tuple] = []
        self.assigned: set = set()

    async def on_partitions_assigned(self, assigned, generation_id=0):
        self.assigned = set(assigned)

    async def on_partitions_revoked(self, revoked):
        self.assigned -= set(revoked)

    async def _commit_offsets(self, offsets, start_new_transaction=True):
        self.commits.append(dict(offsets))
        return True

    async def seek(self, tp, offset):
        self.seeks.append((tp, offset))


async def test_the_worker_consumer_commits_the_ledgers_offsets_not_fausts_acks():
    from processor.worker import ledger_consumer

    ledger = OffsetLedger(Clock())
    starts = {P0: 5, P1: 0}
    consumer = ledger_consumer(FakeFaustConsumer, ledger, lambda tps: {tp: starts[tp] for tp in tps})()
    await consumer.on_partitions_assigned({P0, P1})
    assert ledger.generation == 3 and ledger.without_base() == []
    assert await consumer._commit_tps([P0], True) is False  # nothing released: no commit
    assert consumer._acked == {}  # Faust's acknowledgements never reach a commit
    ledger.release(P0, [5, 6, 8])
    assert await consumer._commit_tps([P0], True) is True
    assert consumer.commits == [{P0: 7}]
    await consumer.on_partitions_revoked({P0, P1})
    assert ledger.owned() == []


async def test_the_worker_consumer_seeks_back_when_records_came_before_the_start_was_read():
    from processor.worker import ledger_consumer

    ledger = OffsetLedger(Clock())
    calls = []

    def fetch(tps):
        calls.append(sorted(tps))
        if len(calls) == 1:
            raise RuntimeError("coordinator not available")
        return {tp: 0 for tp in tps}

    consumer = ledger_consumer(FakeFaustConsumer, ledger, fetch)()
    await consumer.on_partitions_assigned({P0})
    assert ledger.without_base() == [P0]  # read again before the next commit
    ledger.arrived(P0, 4, 3)
    ledger.release(P0, [4])
    assert await consumer._commit_tps([P0], True) is False
    assert consumer.seeks == [(P0, 0)] and consumer.commits == []


def exactly_once(bases: dict, generation: int = 1, clock=None) -> OffsetLedger:
    ledger = OffsetLedger(clock or Clock(), exactly_once=True)
    ledger.assigned(bases, generation)
    assert ledger.set_bases(bases) == {}
    return ledger


def test_exactly_once_processes_only_the_next_record_of_each_partition():
    ledger = exactly_once({P0: 10})
    assert ledger.accept(P0, 10, 1) == (True, None)
    assert ledger.accept(P0, 10, 1) == (False, None)  # delivered twice: its output is already in hand
    assert ledger.accept(P0, 9, 1) == (False, None)   # below the committed offset
    assert ledger.accept(P0, 11, 1) == (True, None)


def test_exactly_once_drops_the_records_past_a_hole_and_reads_from_the_hole_again():
    clock = Clock()
    ledger = exactly_once({P0: 0}, clock=clock)
    assert ledger.accept(P0, 0, 1) == (True, None)
    assert ledger.accept(P0, 2, 1) == (False, 1)      # 1 was dropped on the way: seek back, skip 2
    assert ledger.accept(P0, 3, 1) == (False, None)   # fetched before the seek: skipped, no new seek
    clock.now += RESEEK_AFTER + 1
    assert ledger.accept(P0, 4, 1) == (False, 1)      # the seek did not take: asked again
    assert [ledger.accept(P0, o, 1)[0] for o in (1, 2, 3, 4)] == [True, True, True, True]


def test_exactly_once_skips_records_of_an_earlier_assignment():
    ledger = exactly_once({P0: 5}, generation=2)
    assert ledger.accept(P0, 5, 1) == (False, None)
    assert ledger.accept(P0, 5, 2) == (True, None)
    assert ledger.accept(TP("raw", 7), 0, 2) == (False, None)  # not owned


def test_exactly_once_reads_a_partition_again_from_its_base_when_records_came_before_it():
    ledger = OffsetLedger(Clock(), exactly_once=True)
    ledger.assigned([P0], 1)
    assert ledger.accept(P0, 7, 1) == (False, None)   # the base is not known yet: dropped
    assert ledger.set_bases({P0: 3}) == {P0: 3}       # so it is read again from the base
    assert ledger.accept(P0, 3, 1) == (True, None)
