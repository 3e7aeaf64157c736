"""snowmelt.backlog: a partition whose records wait past a committed offset that does not move."""
from types import SimpleNamespace

import pytest
from confluent_kafka import IsolationLevel

from snowmelt.backlog import Backlog, BacklogWatch
from snowmelt.membership import GroupDescriber

A, B = ("enriched", 0), ("enriched", 1)


def test_a_partition_waiting_with_its_committed_offset_still_is_reported_after_the_timeout():
    watch = BacklogWatch(30.0)
    assert watch.check({A: (10, 50)}, 100.0) is None  # records wait from here
    assert watch.check({A: (10, 70)}, 120.0) is None  # more come; the committed offset has not moved
    found = watch.check({A: (10, 70)}, 130.0)
    assert found == Backlog(A, 10, 70, 30.0)
    assert str(found) == ("enriched[0] has had 60 records past its committed offset 10 for 30s, "
                          "and none of them was committed")


def test_a_committed_offset_that_moves_or_nothing_waiting_starts_the_count_again():
    watch = BacklogWatch(30.0)
    watch.check({A: (10, 50)}, 100.0)
    assert watch.check({A: (20, 50)}, 125.0) is None  # a commit: waiting since 125 now
    assert watch.check({A: (20, 50)}, 150.0) is None
    assert watch.check({A: (50, 50)}, 154.0) is None  # caught up
    assert watch.check({A: (50, 60)}, 155.0) is None
    assert watch.check({A: (50, 60)}, 184.0) is None
    assert watch.check({A: (50, 60)}, 185.0) == Backlog(A, 50, 60, 30.0)


def test_not_asked_starts_every_count_again():
    watch = BacklogWatch(30.0)
    watch.check({A: (10, 50)}, 100.0)
    assert watch.check(None, 120.0) is None  # the broker did not answer, or the role was excused
    assert watch.check({A: (10, 50)}, 140.0) is None
    assert watch.check({A: (10, 50)}, 170.0) == Backlog(A, 10, 50, 30.0)


def test_each_partition_is_counted_apart_and_the_longest_is_reported():
    watch = BacklogWatch(30.0)
    watch.check({A: (10, 50), B: (0, 0)}, 100.0)
    watch.check({A: (10, 50), B: (0, 5)}, 110.0)
    # B's records came later; A's committed offset moves all along, B's never
    for t, a in ((120.0, 20), (130.0, 30), (139.0, 40)):
        assert watch.check({A: (a, 60), B: (0, 5)}, t) is None
    assert watch.check({A: (45, 60), B: (0, 5)}, 140.0) == Backlog(B, 0, 5, 30.0)
    # a partition no longer held is no longer counted
    watch = BacklogWatch(30.0)
    watch.check({A: (10, 50), B: (0, 5)}, 100.0)
    watch.check({B: (0, 5)}, 110.0)
    assert watch.check({A: (10, 50), B: (0, 5)}, 135.0) == Backlog(B, 0, 5, 35.0)


class _Future:
    def __init__(self, value):
        self.value = value

    def result(self, timeout):
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class _Admin:
    """AdminClient's offset calls: the group's committed offsets, the partitions' ends and starts."""

    def __init__(self, committed, ends, starts, fail=False):
        self.committed, self.ends, self.starts, self.fail = committed, ends, starts, fail
        self.asked = []

    def list_consumer_group_offsets(self, requests, request_timeout):
        [request] = requests
        self.asked.append(("committed", request.group_id, sorted((tp.topic, tp.partition)
                                                                 for tp in request.topic_partitions)))
        if self.fail:
            return {request.group_id: _Future(RuntimeError("coordinator not available"))}
        partitions = [SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=self.committed[(tp.topic,
                                                                                                        tp.partition)])
                      for tp in request.topic_partitions]
        return {request.group_id: _Future(SimpleNamespace(topic_partitions=partitions))}

    def list_offsets(self, specs, isolation_level, request_timeout):
        assert isolation_level == IsolationLevel.READ_COMMITTED  # the end a reader of committed records sees
        kind = "ends" if "Latest" in type(next(iter(specs.values()))).__name__ else "starts"
        table = self.ends if kind == "ends" else self.starts
        self.asked.append((kind, sorted((tp.topic, tp.partition) for tp in specs)))
        return {tp: _Future(SimpleNamespace(offset=table[(tp.topic, tp.partition)])) for tp in specs}


def test_the_describer_gives_each_partitions_committed_offset_or_its_start_and_its_end():
    admin = _Admin({A: 10, B: -1001}, {A: 50, B: 7}, {A: 0, B: 3})
    describer = GroupDescriber({"bootstrap.servers": "b:9092"}, "g", timeout=1.0, factory=lambda settings: admin)
    assert describer.offsets([A, B]) == {A: (10, 50), B: (3, 7)}  # B never committed: its consumer starts at 3
    assert admin.asked == [("committed", "g", [A, B]), ("ends", [A, B]), ("starts", [B])]
    assert describer.offsets([]) == {}
    admin.asked.clear()
    admin.committed[B] = 5
    assert describer.offsets([A, B]) == {A: (10, 50), B: (5, 7)}
    assert [kind for kind, *_ in admin.asked] == ["committed", "ends"]  # no start asked when all committed


def test_the_describer_drops_its_client_when_the_offsets_cannot_be_read():
    made = []

    def factory(settings):
        made.append(_Admin({A: 1}, {A: 2}, {A: 0}, fail=not made))
        return made[-1]
    describer = GroupDescriber({"bootstrap.servers": "b:9092"}, "g", timeout=1.0, factory=factory)
    with pytest.raises(RuntimeError):
        describer.offsets([A])
    assert describer.offsets([A]) == {A: (1, 2)} and len(made) == 2
