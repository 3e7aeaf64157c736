"""The loader loop without Kafka or a store: batching, commit after write, backoff, rebalance, shutdown."""
from __future__ import annotations

import pytest

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
    def __init__(self, topic, partition):
        self.topic, self.partition = topic, partition


class FakeConsumer:
    """Hands out scripted messages; each empty consume() advances the clock by its timeout.

    ``script`` is a list of message lists, one per consume() call; after it runs out,
    ``idle_polls`` empty polls later the loader is told to stop.
    """

    def __init__(self, clock, script, idle_polls=3):
        self.clock, self.script, self.idle_polls = clock, list(script), idle_polls
        self.commits: list[tuple[str, int, int]] = []
        self.paused = 0
        self.resumed = 0
        self.closed = False
        self.loader: Loader | None = None
        self.on_assign = self.on_revoke = None
        self.hooks: dict[int, callable] = {}
        self.calls = 0

    def subscribe(self, topics, on_assign=None, on_revoke=None):
        self.topics, self.on_assign, self.on_revoke = topics, on_assign, on_revoke
        on_assign(self, [TP("enriched", 0), TP("enriched", 1), TP("bad", 0)])

    def consume(self, n, timeout):
        self.calls += 1
        hook = self.hooks.pop(self.calls, None)
        if hook:
            hook()
        if self.script:
            return self.script.pop(0)
        self.clock.t += timeout
        self.idle_polls -= 1
        if self.idle_polls <= 0:
            self.loader.stop.set()
        return []

    def commit(self, offsets, asynchronous):
        assert asynchronous is False
        for o in offsets:
            self.commits.append((o.topic, o.partition, o.offset))

    def assignment(self):
        return ["all"]

    def pause(self, partitions):
        self.paused += 1

    def resume(self, partitions):
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


def make(script, store=None, batch_size=3, batch_timeout=5.0, idle_polls=3, **kw):
    clock = Clock()
    consumer = FakeConsumer(clock, script, idle_polls)
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
                                          batch_timeout=0.3, idle_polls=10)
    timeouts = []
    original = consumer.consume

    def consume(n, timeout):
        timeouts.append(timeout)
        return original(n, timeout)

    consumer.consume = consume
    assert loader.run() == 0
    assert written_at and 1000.3 - 1e-9 <= written_at[0] <= 1000.31  # not at the next 0.2 s poll (1000.4)
    assert timeouts[0] == 0.2 and timeouts[1] == pytest.approx(0.2) and timeouts[2] == pytest.approx(0.1)
