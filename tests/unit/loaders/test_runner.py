"""The loader loop without Kafka or a store: batching, commit after write, backoff, rebalance, shutdown,
write intents."""
from __future__ import annotations

import concurrent.futures

import pytest
from confluent_kafka import KafkaException

from loaders.base import Batch, Store, StoreUnavailable
from loaders.runner import Loader


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Message:
    def __init__(self, topic, partition, offset, value, ts=1_764_288_000_000):
        self._t, self._p, self._o, self._v, self._ts = topic, partition, offset, value, ts

    def error(self):
        return None

    def topic(self):
        return self._t

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def value(self):
        return self._v

    def timestamp(self):
        return (1, self._ts)


class TP:
    def __init__(self, topic, partition, offset=-1001, metadata=None, error=None):
        self.topic, self.partition, self.offset, self.metadata, self.error = topic, partition, offset, metadata, error


class FakeConsumer:
    """Hands out scripted messages; each empty consume() advances the clock by its timeout.

    ``script`` is a list of message lists, one per consume() call (a number instead of a
    list: an empty poll that lasts that many seconds); after it runs out, ``idle_polls``
    empty polls later the loader is told to stop.

    ``group`` is the consumer group's committed state, ``(topic, partition) -> (offset,
    metadata)``: pass the same dict to a second consumer to restart in the same group.
    ``commits`` lists the plain commits, ``intents`` those carrying metadata.
    ``committed_failures`` is how many ``committed()`` calls raise first.
    ``assigns`` lists each assign() and incremental_assign() call's partitions and offsets;
    ``positions`` is what position() answers (nothing read: -1001).
    """

    def __init__(self, clock, script, idle_polls=3, group=None, committed_failures=0):
        self.clock, self.script, self.idle_polls = clock, list(script), idle_polls
        self.group: dict[tuple[str, int], tuple[int, str]] = {} if group is None else group
        self.commits: list[tuple[str, int, int]] = []
        self.intents: list[tuple[str, int, int, str]] = []
        self.committed_calls = 0
        self.committed_failures = committed_failures
        self.paused_partitions: list[list[tuple[str, int]]] = []
        self.resumed_partitions: list[list[tuple[str, int]]] = []
        self.paused = 0
        self.resumed = 0
        self.closed = False
        self.loader: Loader | None = None
        self.on_assign = self.on_revoke = None
        self.hooks: dict[int, callable] = {}
        self.calls = 0
        self.assigns: list[tuple[str, list[tuple[str, int, int]]]] = []
        self.positions: dict[tuple[str, int], int] = {}

    def subscribe(self, topics, on_assign=None, on_revoke=None):
        self.topics, self.on_assign, self.on_revoke = topics, on_assign, on_revoke
        on_assign(self, [TP("enriched", 0), TP("enriched", 1), TP("bad", 0)])
        # the resume of the first assignment is not counted (see the test of assignments after a revocation)
        self.resumed, self.resumed_partitions = 0, []

    def consume(self, n, timeout):
        self.calls += 1
        hook = self.hooks.pop(self.calls, None)
        if hook:
            hook()
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, (int, float)):
                self.clock.t += step
                return []
            return step
        self.clock.t += timeout
        self.idle_polls -= 1
        if self.idle_polls <= 0:
            self.loader.stop.set()
        return []

    def commit(self, offsets, asynchronous):
        assert asynchronous is False
        for o in offsets:
            # a commit replaces the partition's offset and metadata (none: empty), as Kafka does
            self.group[(o.topic, o.partition)] = (o.offset, o.metadata or "")
            if o.metadata:
                self.intents.append((o.topic, o.partition, o.offset, o.metadata))
            else:
                self.commits.append((o.topic, o.partition, o.offset))

    def committed(self, partitions, timeout=None):
        self.committed_calls += 1
        if self.committed_failures > 0:
            self.committed_failures -= 1
            raise KafkaException("group coordinator not available")
        return [TP(p.topic, p.partition, *self.group.get((p.topic, p.partition), (-1001, ""))) for p in partitions]

    def assignment(self):
        return ["all"]

    def assign(self, partitions):
        self.assigns.append(("assign", [(p.topic, p.partition, p.offset) for p in partitions]))

    def incremental_assign(self, partitions):
        self.assigns.append(("incremental_assign", [(p.topic, p.partition, p.offset) for p in partitions]))

    def incremental_unassign(self, partitions):
        self.assigns.append(("incremental_unassign", [(p.topic, p.partition, p.offset) for p in partitions]))

    def position(self, partitions):
        return [TP(p.topic, p.partition, self.positions.get((p.topic, p.partition), -1001)) for p in partitions]

    def pause(self, partitions):
        if partitions != ["all"]:
            self.paused_partitions.append([(p.topic, p.partition) for p in partitions])
        self.paused += 1

    def resume(self, partitions):
        if partitions != ["all"]:
            self.resumed_partitions.append([(p.topic, p.partition) for p in partitions])
        self.resumed += 1

    def close(self):
        self.closed = True


class FakeStore(Store):
    name = "fake"

    def __init__(self, failures=0, error=None, on_write=None):
        self.batches: list[Batch] = []
        self.attempts: list[str] = []
        self.failures, self.error, self.on_write = failures, error, on_write
        self.opened = self.closed = False

    def open(self):
        self.opened = True

    def write(self, batch):
        self.attempts.append(batch.token)
        if self.on_write:
            self.on_write(batch)
        if self.error:
            raise self.error
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("connection refused")
        self.batches.append(batch)

    def close(self):
        self.closed = True


class InlineExecutor(concurrent.futures.Executor):
    """Runs what is submitted at once, on the caller's thread: the loop's own logic, without the writer
    threads' timing (a fake clock moves on with every poll while a thread waits to run)."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 -- handed to whoever reads the future, as a thread would
            future.set_exception(exc)
        return future


def make(script, store=None, batch_size=3, batch_timeout=5.0, idle_polls=3, group=None, committed_failures=0,
         **kw):
    clock = Clock()
    consumer = FakeConsumer(clock, script, idle_polls, group=group, committed_failures=committed_failures)
    store = store or FakeStore()
    loader = Loader(consumer, store, {"enriched": "enriched", "bad": "bad"}, batch_size=batch_size,
                    batch_timeout=batch_timeout, retry_initial=0.5, retry_max=2.0, clock=clock, **kw)
    consumer.loader = loader
    return loader, consumer, store, clock


def msgs(topic, partition, offsets):
    return [Message(topic, partition, o, f"{topic}-{partition}-{o}".encode()) for o in offsets]


def test_batches_are_cut_at_multiples_of_batch_size_and_committed_after_the_write():
    loader, consumer, store, _ = make([msgs("enriched", 0, range(1, 8))], batch_size=3)
    assert loader.run() == 0
    # 1-2 (next offset 3 is a multiple), 3-5, then 6-7 flushed at shutdown
    assert [(b.first_offset, b.last_offset) for b in store.batches] == [(1, 2), (3, 5), (6, 7)]
    assert consumer.commits == [("enriched", 0, 3), ("enriched", 0, 6), ("enriched", 0, 8)]
    assert store.batches[1].values == (b"enriched-0-3", b"enriched-0-4", b"enriched-0-5")
    assert store.batches[1].token == "enriched-0-3-5"
    assert store.opened and store.closed and consumer.closed


def test_partitions_and_kinds_are_batched_apart():
    loader, consumer, store, _ = make([msgs("enriched", 0, [0]) + msgs("bad", 0, [0, 1]) + msgs("enriched", 1, [9])],
                                      batch_size=100)
    loader.run()
    assert sorted((b.kind, b.topic, b.partition, b.values) for b in store.batches) == [
        ("bad", "bad", 0, (b"bad-0-0", b"bad-0-1")),
        ("enriched", "enriched", 0, (b"enriched-0-0",)),
        ("enriched", "enriched", 1, (b"enriched-1-9",))]
    assert loader.stats.records == {"enriched": 2, "bad": 2}


def test_a_partial_batch_is_written_after_batch_timeout():
    loader, consumer, store, clock = make([msgs("enriched", 0, [0, 1])], batch_size=100, batch_timeout=0.3,
                                          idle_polls=50)
    consumer.hooks[4] = lambda: (store.batches and loader.stop.set())
    loader.run()
    assert [(b.first_offset, b.last_offset) for b in store.batches] == [(0, 1)]
    assert consumer.commits == [("enriched", 0, 2)]


def test_store_unavailable_pauses_retries_the_same_batch_and_commits_once_written():
    store = FakeStore(failures=3)
    loader, consumer, store, clock = make([msgs("enriched", 0, [0, 1, 2])], store=store, batch_size=3)
    started = clock.t
    loader.run()
    assert store.attempts == ["enriched-0-0-2"] * 4
    assert consumer.commits == [("enriched", 0, 3)]
    assert consumer.paused >= 1 and consumer.resumed == 1
    assert clock.t - started >= 0.5 + 1.0 + 2.0  # backoff doubled up to retry_max
    assert loader.stats.retries == 3 and loader.stats.healthy == 1


def test_any_other_store_error_stops_the_loader_without_commit():
    store = FakeStore(error=ValueError("bad DDL"))
    loader, consumer, store, _ = make([msgs("enriched", 0, [0, 1, 2])], store=store)
    with pytest.raises(ValueError, match="bad DDL"):
        loader.run()
    assert consumer.commits == [] and consumer.closed and store.closed


def test_revoked_partitions_lose_their_unwritten_records_uncommitted():
    loader, consumer, store, _ = make([msgs("enriched", 0, [0]) + msgs("enriched", 1, [0])], batch_size=100)
    consumer.hooks[2] = lambda: consumer.on_revoke(consumer, [TP("enriched", 0)])
    loader.run()
    assert [(b.topic, b.partition) for b in store.batches] == [("enriched", 1)]
    assert consumer.commits == [("enriched", 1, 1)]


def test_a_partition_revoked_during_an_outage_is_given_up():
    def revoke(batch):
        consumer.on_revoke(consumer, [TP("enriched", 0)])

    store = FakeStore(failures=100, on_write=revoke)
    loader, consumer, store, _ = make([msgs("enriched", 0, [0, 1, 2])], store=store, batch_size=3)
    loader.run()
    assert store.batches == [] and consumer.commits == []
    assert consumer.resumed == 1


def test_shutdown_during_an_outage_gives_up_after_the_grace_period():
    store = FakeStore(failures=10_000)
    loader, consumer, store, clock = make([msgs("enriched", 0, [0])], store=store, batch_size=100,
                                          shutdown_grace=5.0)
    loader.run()
    assert consumer.commits == [] and consumer.closed
    assert len(store.attempts) > 1


def test_a_partial_batch_is_written_when_due_not_a_whole_poll_later():
    # one record at t=1000; batch_timeout 0.3: the polls shorten so the write comes at 1000.3
    written_at = []
    store = FakeStore(on_write=lambda batch: written_at.append(clock.t))
    loader, consumer, store, clock = make([[Message("enriched", 0, 0, b"a")]], store=store, batch_size=100,
                                          batch_timeout=0.3, idle_polls=10, writer=InlineExecutor())
    timeouts = []
    original = consumer.consume

    def consume(n, timeout):
        timeouts.append(timeout)
        return original(n, timeout)

    consumer.consume = consume
    assert loader.run() == 0
    assert written_at and 1000.3 - 1e-9 <= written_at[0] <= 1000.31  # not at the next 0.2 s poll (1000.4)
    assert timeouts[0] == 0.2 and timeouts[1] == pytest.approx(0.2) and timeouts[2] == pytest.approx(0.1)


# ---------------------------------------------------------------------- write intents (load.exactly_once)


class Crash(BaseException):
    """The process dies (kill -9): nothing after this point of the loader runs."""


def crash_after_the_write(store):
    """on_write for a store that keeps the batch and dies before the loader can commit it."""
    def on_write(batch):
        store.batches.append(batch)
        raise Crash
    return on_write


@pytest.mark.parametrize("exactly_once", [True, False])
def test_a_time_cut_batch_written_before_a_crash_is_cut_the_same_way_when_re_read(exactly_once):
    group = {}
    # first run: offsets 0-3 arrive, nothing more for longer than batch_timeout: a time cut, written, then kill -9
    first_store = FakeStore()
    first_store.on_write = crash_after_the_write(first_store)
    loader, consumer, _, _ = make([msgs("enriched", 0, range(4))], store=first_store, batch_size=100,
                                  batch_timeout=0.3, idle_polls=50, group=group, exactly_once=exactly_once)
    with pytest.raises(Crash):
        loader.run()
    [written] = first_store.batches
    assert (written.first_offset, written.last_offset) == (0, 3)
    assert consumer.commits == []
    if exactly_once:  # the intent was committed before the write and is what the group holds
        assert group == {("enriched", 0): (0, "snowmelt-batch:0-3")}
    else:
        assert group == {}

    # second run, same group: the re-read comes in another rhythm, 0-1, a pause longer than
    # batch_timeout, then 2-7 at once
    loader, consumer, store, _ = make([msgs("enriched", 0, [0, 1]), 1.0, msgs("enriched", 0, range(2, 8))],
                                      batch_size=100, batch_timeout=0.3, idle_polls=50, group=group,
                                      exactly_once=exactly_once)
    assert loader.run() == 0
    if exactly_once:
        assert store.attempts[0] == first_store.attempts[0] == "enriched-0-0-3"
        assert store.batches[0] == written
        assert [(b.first_offset, b.last_offset) for b in store.batches] == [(0, 3), (4, 7)]
        assert consumer.intents == [("enriched", 0, 0, "snowmelt-batch:0-3"), ("enriched", 0, 4, "snowmelt-batch:4-7")]
    else:  # at least once: the same events under another token, stored twice
        assert [(b.first_offset, b.last_offset) for b in store.batches] == [(0, 1), (2, 7)]
        # the committed offsets are read once, at the assignment, for where to start; no intent is committed
        assert consumer.intents == [] and consumer.committed_calls == 1
    assert consumer.commits == [("enriched", 0, 4), ("enriched", 0, 8)] if exactly_once else \
        [("enriched", 0, 2), ("enriched", 0, 8)]
    assert group[("enriched", 0)] == (8, "")  # the last commit cleared the intent


def test_the_intent_is_committed_before_the_write_and_cleared_after_it():
    seen = []
    store = FakeStore(on_write=lambda batch: seen.append(dict(consumer.group)))
    loader, consumer, store, _ = make([msgs("enriched", 0, range(5))], store=store, batch_size=3)
    loader.run()
    assert seen == [{("enriched", 0): (0, "snowmelt-batch:0-2")},
                    {("enriched", 0): (3, "snowmelt-batch:3-4")}]
    assert consumer.group == {("enriched", 0): (5, "")}


def test_a_pending_batch_ignores_the_size_cut_until_its_end():
    # written before with batch_size 5 (0-4), re-read with batch_size 3: 0-4 first, then the usual cuts
    group = {("enriched", 0): (0, "snowmelt-batch:0-4")}
    loader, consumer, store, _ = make([msgs("enriched", 0, range(8))], batch_size=3, group=group)
    loader.run()
    assert [(b.first_offset, b.last_offset) for b in store.batches] == [(0, 4), (5, 5), (6, 7)]


def test_a_record_past_the_intent_end_ends_the_batch_without_itself():
    # offset 3 and 4 never come back (transaction markers): 5 ends the batch 0-2 and starts the next
    group = {("enriched", 0): (0, "snowmelt-batch:0-3")}
    loader, consumer, store, _ = make([msgs("enriched", 0, [0, 1, 2]), 1.0, msgs("enriched", 0, [5, 6])],
                                      batch_size=100, batch_timeout=0.3, idle_polls=50, group=group)
    loader.run()
    assert [b.token for b in store.batches] == ["enriched-0-0-2", "enriched-0-5-6"]
    assert group[("enriched", 0)] == (7, "")


def test_an_incomplete_pending_batch_is_left_unwritten_at_shutdown_with_its_intent():
    group = {("enriched", 0): (0, "snowmelt-batch:0-5")}
    loader, consumer, store, _ = make([msgs("enriched", 0, [0, 1, 2]) + msgs("bad", 0, [0, 1])], batch_size=100,
                                      group=group)
    assert loader.run() == 0
    assert [b.token for b in store.batches] == ["bad-0-0-1"]
    assert consumer.commits == [("bad", 0, 2)]
    assert group[("enriched", 0)] == (0, "snowmelt-batch:0-5")


def test_an_intent_not_starting_at_the_committed_offset_is_ignored():
    group = {("enriched", 0): (2, "snowmelt-batch:0-5"), ("enriched", 1): (0, "someone else's note")}
    loader, consumer, store, _ = make([msgs("enriched", 0, [2, 3, 4]) + msgs("enriched", 1, [0])], batch_size=100,
                                      group=group)
    loader.run()
    assert sorted(b.token for b in store.batches) == ["enriched-0-2-4", "enriched-1-0-0"]


def test_a_revoke_drops_the_pending_rule_and_the_next_assignment_reads_it_again():
    group = {("enriched", 0): (0, "snowmelt-batch:0-3")}
    loader, consumer, store, clock = make([msgs("enriched", 0, [0, 1]), 1.0, msgs("enriched", 0, [2, 3, 4])],
                                          batch_size=100, batch_timeout=0.3, idle_polls=50, group=group)

    def revoke_and_assign_again():
        consumer.on_revoke(consumer, [TP("enriched", 0)])
        assert loader._pending == {}
        consumer.on_assign(consumer, [TP("enriched", 0)])
        assert loader._pending == {("enriched", 0): 3}
        consumer.script.insert(0, msgs("enriched", 0, [0, 1]))  # the next owner (this one) reads them again

    consumer.hooks[2] = revoke_and_assign_again
    loader.run()
    assert [b.token for b in store.batches] == ["enriched-0-0-3", "enriched-0-4-4"]


def test_committed_offsets_unreadable_at_assignment_hold_the_records_until_read():
    # the first two reads fail (at assignment, at the first poll): the partitions are paused, their
    # records held; the third read finds the intent and the held records are cut by it
    group = {("enriched", 0): (0, "snowmelt-batch:0-3")}
    loader, consumer, store, clock = make([msgs("enriched", 0, range(6))], batch_size=100, batch_timeout=0.3,
                                          idle_polls=50, group=group, committed_failures=2)
    loader.run()
    assert consumer.committed_calls == 3
    assert consumer.paused_partitions == [[("bad", 0), ("enriched", 0), ("enriched", 1)]]
    assert consumer.resumed_partitions == [[("bad", 0), ("enriched", 0), ("enriched", 1)]]
    assert [b.token for b in store.batches] == ["enriched-0-0-3", "enriched-0-4-5"]


def test_an_intent_commit_that_fails_is_retried_before_the_write():
    loader, consumer, store, _ = make([msgs("enriched", 0, range(3))], batch_size=3)
    real_commit, failures = consumer.commit, [2]

    def commit(offsets, asynchronous):
        if offsets[0].metadata and failures[0]:
            failures[0] -= 1
            raise KafkaException("rebalance in progress")
        real_commit(offsets, asynchronous)

    consumer.commit = commit
    loader.run()
    assert store.attempts == ["enriched-0-0-2"]
    assert consumer.intents == [("enriched", 0, 0, "snowmelt-batch:0-2")] and consumer.commits == [("enriched", 0, 3)]
    assert loader.stats.retries == 2 and consumer.paused >= 1


@pytest.mark.parametrize("env, expected", [({}, True), ({"SNOWMELT_LOAD__EXACTLY_ONCE": "false"}, False)])
def test_load_exactly_once_is_the_loaders_option(tmp_path, env, expected):
    from loaders.runner import build_loader
    from snowmelt.config import load_config

    config = load_config(None, env={"SNOWMELT_S3__BACKEND": "local", "SNOWMELT_S3__LOCAL_DIR": str(tmp_path),
                                    "SNOWMELT_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9", **env})
    loader = build_loader(config, "s3")
    try:
        assert loader.exactly_once is expected
    finally:
        loader.consumer.close()


def test_an_idle_partition_is_committed_past_the_transaction_markers_after_its_last_batch():
    # enrich's transactions end with a marker that takes an offset and is never delivered
    loader, consumer, store, _ = make([[Message("enriched", 0, 0, b"a"), Message("enriched", 0, 1, b"b"),
                                        Message("enriched", 0, 2, b"c")]], batch_size=3, writer=InlineExecutor())
    consumer.position = lambda tps: [TP(p.topic, p.partition, 4 if (p.topic, p.partition) == ("enriched", 0)
                                        else -1001) for p in tps]
    assert loader.run() == 0
    assert [b.token for b in store.batches] == ["enriched-0-0-2"]
    assert consumer.commits == [("enriched", 0, 3), ("enriched", 0, 4)]
    assert loader.stats.lag[("enriched", 0)] == 0


def test_a_partition_with_records_buffered_is_not_committed_to_its_position():
    loader, consumer, store, _ = make([[Message("enriched", 0, 0, b"a"), Message("enriched", 0, 1, b"b"),
                                        Message("enriched", 0, 2, b"c"), Message("enriched", 0, 4, b"d")]],
                                      batch_size=3, batch_timeout=1000.0)
    consumer.position = lambda tps: [TP(p.topic, p.partition, 6) for p in tps]
    assert loader.run() == 0
    # 4 waits in the buffer until shutdown: the position (past it) is never committed
    assert consumer.commits == [("enriched", 0, 3), ("enriched", 0, 5)]


def test_partitions_assigned_again_are_resumed_even_if_paused_before_their_revocation():
    # a write retry pauses the assignment; when the partitions are revoked meanwhile, librdkafka keeps
    # them paused into the next assignment unless they are resumed
    loader, consumer, _store, _ = make([])
    partitions = [TP("enriched", 0), TP("enriched", 1)]
    consumer.resumed_partitions.clear()
    loader._on_assign(consumer, partitions)
    assert [("enriched", 0), ("enriched", 1)] in consumer.resumed_partitions


# ---------------------------------------------------------------------- where assigned partitions start


@pytest.mark.parametrize("incremental", [False, True])
@pytest.mark.parametrize("reset, logical", [("earliest", -2), ("latest", -1)])
def test_partitions_are_assigned_at_the_committed_offsets_the_loader_read(incremental, reset, logical):
    # librdkafka is given every start: it reads no committed offset itself (see the next test)
    loader, consumer, _store, _ = make([], group={("enriched", 0): (5, "")}, incremental=incremental,
                                       offset_reset=reset)
    loader.run()
    assert consumer.assigns == [("incremental_assign" if incremental else "assign",
                                 [("enriched", 0, 5), ("enriched", 1, logical), ("bad", 0, logical)])]


class StuckWithoutOffsets(FakeConsumer):
    """librdkafka after its own read of the committed offsets was refused as a whole (NOT_COORDINATOR,
    librdkafka issue 5586): a partition assigned without an offset is never fetched.  One assigned
    at an offset delivers ``records`` from there, in one poll."""

    def __init__(self, clock, script, records, **kw):
        super().__init__(clock, script, **kw)
        self.records, self.started = records, {}

    def _start(self, partitions):
        for p in partitions:
            if p.offset != -1001:
                self.started[(p.topic, p.partition)] = p.offset

    def assign(self, partitions):
        super().assign(partitions)
        self.started.clear()
        self._start(partitions)

    def incremental_assign(self, partitions):
        super().incremental_assign(partitions)
        self._start(partitions)

    def incremental_unassign(self, partitions):
        super().incremental_unassign(partitions)
        for p in partitions:
            self.started.pop((p.topic, p.partition), None)

    def consume(self, n, timeout):
        out = super().consume(n, timeout)
        for (topic, partition), at in sorted(self.started.items()):
            first = max(at, 0)
            out = out + [m for m in self.records.get((topic, partition), ()) if m.offset() >= first]
            self.records.pop((topic, partition), None)
        return out


@pytest.mark.parametrize("exactly_once", [True, False])
@pytest.mark.parametrize("incremental", [False, True])
def test_partitions_assigned_before_their_offsets_were_read_are_assigned_again_at_them(exactly_once, incremental):
    # the read at the assignment fails: the partitions go to librdkafka without an offset, and its own
    # read fails too; once a poll reads the offsets, they are assigned again at them and loaded
    clock = Clock()
    group = {("enriched", 0): (2, ""), ("enriched", 1): (0, "")}
    records = {("enriched", 0): msgs("enriched", 0, range(6)), ("enriched", 1): msgs("enriched", 1, range(3))}
    consumer = StuckWithoutOffsets(clock, [], records, idle_polls=20, group=group, committed_failures=1)
    store = FakeStore()
    loader = Loader(consumer, store, {"enriched": "enriched", "bad": "bad"}, batch_size=100, batch_timeout=0.3,
                    clock=clock, exactly_once=exactly_once, incremental=incremental)
    consumer.loader = loader
    assert loader.run() == 0
    assert sorted(b.token for b in store.batches) == ["enriched-0-2-5", "enriched-1-0-2"]
    unplaced = [("enriched", 0, -1001), ("enriched", 1, -1001), ("bad", 0, -1001)]
    placed = [("bad", 0, -2), ("enriched", 0, 2), ("enriched", 1, 0)]
    if incremental:
        assert consumer.assigns == [("incremental_assign", unplaced),
                                    ("incremental_unassign", [(t, p, -1001) for t, p, _ in placed]),
                                    ("incremental_assign", placed)]
    else:
        assert consumer.assigns == [("assign", unplaced), ("assign", placed)]
    assert loader._unplaced == set()


def test_an_eager_assignment_replaced_whole_restarts_the_other_partitions_where_reading_reached():
    # enriched[1] was read at the assignment and its records consumed up to 6; enriched[0]'s read failed
    loader, consumer, _store, _ = make([], group={("enriched", 0): (4, ""), ("enriched", 1): (3, "")})
    loader._assigned |= {("enriched", 0), ("enriched", 1)}
    loader._starts[("enriched", 1)] = 3
    loader._unplaced.add(("enriched", 0))
    consumer.positions[("enriched", 1)] = 7
    loader._place({("enriched", 0): 4})
    assert consumer.assigns == [("assign", [("enriched", 0, 4), ("enriched", 1, 7)])]
    assert loader._starts == {("enriched", 0): 4, ("enriched", 1): 3} and loader._unplaced == set()


class GatedStore(FakeStore):
    """A store whose writes wait until ``gate`` is set; ``writing`` is set while one waits."""

    def __init__(self, **kw):
        super().__init__(**kw)
        import threading

        self.gate, self.writing = threading.Event(), threading.Event()

    def write(self, batch):
        self.writing.set()
        assert self.gate.wait(10), "the test never let the write finish"
        super().write(batch)


def test_the_loop_reads_on_while_a_batch_is_written_and_commits_in_order():
    # the write runs on the writer thread: the loop keeps consuming (and cutting the next batch) while
    # it runs; the next write waits for it, and each batch is committed after its write, in order
    store = GatedStore()
    loader, consumer, _, _ = make([msgs("enriched", 0, range(3)), msgs("enriched", 0, range(3, 5)), [], [],
                                   msgs("enriched", 0, [5])], store=store, batch_size=3)
    seen = {}

    def while_writing():
        assert store.writing.wait(10)
        seen["commits"], seen["intents"] = list(consumer.commits), list(consumer.intents)
        store.gate.set()

    consumer.hooks[4] = while_writing  # the 4th poll happens while the first batch is still being written
    assert loader.run() == 0
    # records 3-4 were read during the first write; nothing was committed past the batch being written
    assert seen == {"commits": [], "intents": [("enriched", 0, 0, "snowmelt-batch:0-2")]}
    assert [b.token for b in store.batches] == ["enriched-0-0-2", "enriched-0-3-5"]
    assert consumer.commits == [("enriched", 0, 3), ("enriched", 0, 6)]
    assert consumer.intents == [("enriched", 0, 0, "snowmelt-batch:0-2"), ("enriched", 0, 3, "snowmelt-batch:3-5")]


def test_a_partition_being_written_is_not_committed_to_its_position():
    # past-the-markers commits skip the partition whose batch is on the writer thread: its position is
    # past records that are not in the store yet
    store = GatedStore()
    loader, consumer, _, _ = make([msgs("enriched", 0, range(3)), [], [], []], store=store, batch_size=3)
    consumer.position = lambda tps: [TP(p.topic, p.partition, 4) for p in tps]
    seen = {}

    def while_writing():
        assert store.writing.wait(10)
        seen["commits"] = list(consumer.commits)
        store.gate.set()
        loader._inflight.future.result(10)  # written: the loop commits it after this poll, then the position

    consumer.hooks[4] = while_writing
    assert loader.run() == 0
    assert seen["commits"] == []
    assert consumer.commits == [("enriched", 0, 3), ("enriched", 0, 4)]


@pytest.mark.parametrize("fails", [False, True])
def test_a_revoke_waits_for_the_batch_being_written(fails):
    # a revoke during the write: a write that succeeds is committed before the partition goes; one the
    # store refused is not retried for a partition that is no longer ours
    store = GatedStore(failures=1 if fails else 0)
    loader, consumer, _, _ = make([msgs("enriched", 0, range(3))], store=store, batch_size=3)

    def revoke_while_writing():
        assert store.writing.wait(10)
        store.gate.set()
        consumer.on_revoke(consumer, [TP("enriched", 0), TP("enriched", 1), TP("bad", 0)])

    consumer.hooks[2] = revoke_while_writing
    assert loader.run() == 0
    assert store.attempts == ["enriched-0-0-2"]
    assert consumer.commits == ([] if fails else [("enriched", 0, 3)])


class PreparingStore(GatedStore):
    """A gated store that prepares batches, noting which, on what thread and which batches were written by
    then; a write of a batch without its preparation fails the test."""

    def __init__(self, off_loop=False, **kw):
        super().__init__(**kw)
        self.prepare_off_loop = off_loop
        self.prepared: list[tuple[str, str, list[str]]] = []

    def prepare(self, batch):
        import dataclasses
        import threading

        self.prepared.append((batch.token, threading.current_thread().name, [b.token for b in self.batches]))
        return dataclasses.replace(batch, prepared=f"encoded {batch.token}")

    def write(self, batch):
        assert batch.prepared == f"encoded {batch.token}", "a batch written without its preparation"
        super().write(batch)


@pytest.mark.parametrize("off_loop", [False, True])
def test_the_next_batch_is_prepared_while_the_one_before_is_written_where_the_store_says(off_loop):
    import threading

    from tests.services.wait import wait_until

    store = PreparingStore(off_loop=off_loop)
    loader, consumer, _, _ = make([msgs("enriched", 0, range(3)), msgs("enriched", 0, range(3, 6)), [], []],
                                  store=store, batch_size=3)
    # the first write waits until the second batch is prepared (or fails the test after 10 s)
    opener = threading.Thread(target=lambda: (wait_until(lambda: len(store.prepared) == 2, 10, "the 2nd prepare"),
                                              store.gate.set()), daemon=True)
    opener.start()
    assert loader.run() == 0
    opener.join(10)
    assert [(token, written) for token, _, written in store.prepared] == [("enriched-0-0-2", []),
                                                                           ("enriched-0-3-5", [])]
    threads = {thread for _, thread, _ in store.prepared}
    if off_loop:
        assert threads <= {f"snowmelt-store-write_{i}" for i in range(2)}
    else:
        assert threads == {threading.current_thread().name}
    assert [b.token for b in store.batches] == ["enriched-0-0-2", "enriched-0-3-5"]
    assert consumer.commits == [("enriched", 0, 3), ("enriched", 0, 6)]


@pytest.mark.parametrize("off_loop", [False, True])
def test_a_write_retried_after_an_outage_keeps_its_preparation(off_loop):
    store = PreparingStore(failures=2, off_loop=off_loop)
    store.gate.set()
    loader, consumer, _, _ = make([msgs("enriched", 0, range(3)), [], [], [], [], [], []], store=store,
                                  batch_size=3)
    assert loader.run() == 0
    assert store.attempts == ["enriched-0-0-2"] * 3
    assert [token for token, _, _ in store.prepared] == ["enriched-0-0-2"]  # prepared once, written on the 3rd try
    assert consumer.commits == [("enriched", 0, 3)]


@pytest.mark.parametrize("off_loop", [False, True])
def test_a_preparation_that_fails_ends_the_loader_with_its_error_and_commits_nothing(off_loop):
    # a store that cannot encode a batch is a bug, not an outage: the error comes out of run(), wherever the
    # batch was prepared, and the batch is neither written nor committed
    class BrokenPreparation(FakeStore):
        prepare_off_loop = off_loop

        def prepare(self, batch):
            raise ValueError(f"cannot encode {batch.token}")

    loader, consumer, store, _ = make([msgs("enriched", 0, range(3)), [], []], store=BrokenPreparation())
    with pytest.raises(ValueError, match="cannot encode enriched-0-0-2"):
        loader.run()
    assert store.attempts == [] and consumer.commits == []


def test_an_assignment_refused_is_made_again_at_the_next_poll():
    # librdkafka may refuse to change the assignment (a rebalance begun meanwhile): the partitions stay
    # to be placed, and the next poll's read places them
    loader, consumer, _store, _ = make([], group={("enriched", 0): (4, "")}, committed_failures=1)
    refusals = [KafkaException("Local: Erroneous state")]
    plain_assign = consumer.assign

    def assign(partitions):
        if consumer.assigns and refusals:
            raise refusals.pop()
        plain_assign(partitions)

    consumer.assign = assign
    loader.run()
    assert [call for call, _ in consumer.assigns] == ["assign", "assign"]
    assert consumer.assigns[1][1] == [("bad", 0, -2), ("enriched", 0, 4), ("enriched", 1, -2)]
    assert not refusals and loader._unplaced == set()


# ---------------------------------------------------------------------------- the progress watch


def test_stalled_for_counts_from_the_last_progress_and_not_while_stopping_the_store_is_down_or_a_write_runs():
    from loaders.runner import _InFlight

    loader, _, _, clock = make([])
    loader.progress_at = 10.0
    assert loader.stalled_for(25.0) == 15.0
    loader.stats.healthy = 0  # a store outage: paused and retried, not a stall
    assert loader.stalled_for(25.0) is None
    loader.stats.healthy = 1
    running = concurrent.futures.Future()
    loader._inflight = _InFlight(Batch("enriched", "enriched", 0, 1, 2, (b"a", b"b")), running, running, 10.0)
    assert loader.stalled_for(25.0) is None  # a write is work
    running.set_result(None)
    assert loader.stalled_for(25.0) == 15.0
    loader._inflight = None
    loader.stop.set()
    assert loader.stalled_for(25.0) is None


def test_a_commit_or_a_write_intent_committed_is_progress():
    loader, consumer, _, clock = make([])
    batch = Batch("enriched", "enriched", 0, 1, 2, (b"a", b"b"))
    for commit in (loader._commit_intent, loader._commit):
        loader.progress_at = 0.0
        clock.t += 1.0
        commit(batch)
        assert loader.progress_at == clock.t
    assert len(consumer.intents) == 1 and len(consumer.commits) == 1


def test_watch_progress_reports_a_stall_only_while_the_broker_answers(caplog):
    from loaders.runner import watch_progress

    loader, _, _, clock = make([])
    loader.progress_at = clock.t

    class Ticks:  # the watch's wait: 10 s pass on the loader's clock each time
        def wait(self, interval):
            clock.t += 10.0
            return False

    down = [True]

    def broker():
        if down[0]:
            down[0] = False
            raise RuntimeError("broker unreachable")

    reported = []
    watch_progress(loader, 30.0, broker, lambda seconds: reported.append((clock.t, seconds)), Ticks(), 1.0)
    # 30 s without progress at 1030, but the broker did not answer: an outage, counted again from there
    assert reported == [(1060.0, 30.0)]
    assert "the broker does not answer (broker unreachable): waiting for it" in caplog.text


def test_a_loader_is_excused_while_stopping_its_store_is_down_or_a_write_has_run_long():
    from loaders.runner import _InFlight

    loader, _, _, clock = make([])
    assert not loader.excused(100.0, 5.0)
    loader.stats.healthy = 0
    assert loader.excused(100.0, 5.0)
    loader.stats.healthy = 1
    running = concurrent.futures.Future()
    loader._inflight = _InFlight(Batch("enriched", "enriched", 0, 1, 2, (b"a", b"b")), running, running, 97.0)
    assert not loader.excused(100.0, 5.0)  # a write of a moment: the partitions' commits come after it
    assert loader.excused(102.0, 5.0)
    running.set_result(None)
    assert not loader.excused(102.0, 5.0)
    loader.stop.set()
    assert loader.excused(102.0, 5.0)


def test_watch_progress_reports_records_waiting_unread_on_a_partition_the_loader_holds():
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

    from loaders.runner import waiting_check, watch_progress
    from snowmelt.stall import StallWatch

    loader, _, _, clock = make([])
    e0, e1, e2, e3 = (("enriched", n) for n in range(4))
    loader._assigned = {e0, e1, e2, e3}
    loader._starts = {e0: 5, e1: OFFSET_BEGINNING, e2: OFFSET_END}  # e3's start not read yet
    loader._committed_at = {e0: 5}

    class Ticks:
        def wait(self, interval):
            clock.t += 10.0
            loader.progress_at = clock.t  # a loop turn holding nothing, each time: never late by itself
            return False

    asked = []

    def ends(partitions, first=False):
        asked.append((clock.t, partitions, first))
        if clock.t == 1030.0:
            raise RuntimeError("broker unreachable")  # an outage: counted again from the next answer
        return {tp: (3 if first else {e0: 5, e1: 9, e2: 40, e3: 40}[tp]) for tp in partitions}

    found = []
    check = waiting_check(loader, ends, StallWatch(30.0), 5.0)
    watch_progress(loader, 30.0, lambda: None, lambda seconds: found.append(("held", seconds)), Ticks(), 1.0,
                   check, found.append)
    assert asked[:2] == [(1010.0, [e0, e1, e2, e3], False), (1010.0, [e1], True)]
    # e0 caught up; e1 never committed, read from its start (3): 6 records wait; e2 started at the end and e3
    # not placed yet are not known, so not counted
    [[stalled]] = found
    assert (stalled.tp, stalled.committed, stalled.high, stalled.seconds) == (e1, 3, 9, 30.0)
    assert str(stalled) == "enriched[1]: 6 records waiting past committed offset 3, none committed for 30s"
    assert clock.t == 1070.0  # waiting from 1040, after the outage
