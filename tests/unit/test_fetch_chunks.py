"""The enrich worker's consumer hands the agent one message per partition per fetch, with every record in it."""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict, namedtuple

import pytest

from processor.fetch_chunks import ChunkedGetmany, RecordChunk, fetch_waiting
from processor.ledger import OffsetLedger
from processor.worker import fetch_wait_settings, seek_back_over_holes
from snowmelt.config import EnrichConfig

TP = namedtuple("TP", "topic partition")  # as Faust's
P0, P1 = TP("raw", 0), TP("raw", 1)
Record = namedtuple("Record", "topic partition offset value")


class FakeMessage:
    def __init__(self, tp, record):
        self.tp, self.offset, self.value, self.generation_id = tp, record.offset, record.value, None


class FakeFaustConsumer:
    """The parts of Faust's consumer that ``getmany`` uses."""

    def __init__(self, fetched, active=None):
        self.fetched, self.active = fetched, active
        self.app = type("App", (), {"consumer_generation_id": 7, "client_only": False,
                                    "monitor": type("M", (), {"track_tp_end_offset": lambda *a: None})()})()
        self.should_stop = False
        self.flow_active = True
        self._buffered_partitions: set = set()
        self._read_offset = defaultdict(lambda: None)  # as Faust's: the last offset its loop delivered
        self.seeks = 0

    async def _wait_next_records(self, timeout):
        return self.fetched, self.active

    def _get_active_partitions(self):
        return set(self.fetched) if self.active is None else self.active

    def highwater(self, tp):
        return 1000

    def _to_message(self, tp, record):
        return FakeMessage(tp, record)

    async def perform_seek(self):
        self.seeks += 1


class Consumer(ChunkedGetmany, FakeFaustConsumer):
    pass


def records(tp, offsets):
    return [Record(tp.topic, tp.partition, o, b"v%d" % o) for o in offsets]


async def fetch(consumer):
    return [(tp, m) async for tp, m in consumer.getmany(1.0)]


async def test_one_message_per_partition_carries_every_record_in_order():
    consumer = Consumer({P0: records(P0, [5, 6, 7]), P1: records(P1, [0])})
    got = await fetch(consumer)
    assert [tp for tp, _ in got] == [P0, P1]
    first = got[0][1]
    assert isinstance(first.value, RecordChunk)
    assert first.value.offsets == [5, 6, 7] and first.value.values == [b"v5", b"v6", b"v7"]
    assert first.offset == 7 and first.generation_id == 7  # the last record's: Faust's read offset moves past all


async def test_a_partition_no_longer_active_or_a_new_generation_gets_nothing():
    consumer = Consumer({P0: records(P0, [1]), P1: records(P1, [2])}, active={P1})
    assert [tp for tp, _ in await fetch(consumer)] == [P1]

    consumer = Consumer({P0: records(P0, [1]), P1: records(P1, [2])})
    original = consumer._to_message

    def rebalanced_meanwhile(tp, record):  # a rebalance while the first chunk is handed over
        consumer.app.consumer_generation_id = 8
        return original(tp, record)

    consumer._to_message = rebalanced_meanwhile
    assert [tp for tp, _ in await fetch(consumer)] == [P0]


async def test_a_stopped_flow_seeks_to_the_committed_offsets_instead():
    consumer = Consumer({P0: records(P0, [1])})
    consumer.flow_active = False
    assert await fetch(consumer) == [] and consumer.seeks == 1


async def delivered(consumer):
    """What Faust's consumer loop passes on of ``getmany`` (``Consumer._drain_messages`` in faust-streaming): a
    message at or past the partition's read offset, which is then set to that message's offset; others dropped."""
    out = []
    async for tp, message in consumer.getmany(1.0):
        read = consumer._read_offset[tp]
        if read is None or message.offset >= read:
            out.append((tp, message))
            consumer._read_offset[tp] = message.offset
    return out


async def test_records_read_again_reach_the_agent_past_faust_s_read_offset():
    """The ledger sought back over a hole at 100, and Faust's seek set the read offset to 100; then a delivery of
    the same partition that had waited for room in the full stream buffer returned and set it to 149, the last
    offset of a chunk from before the seek. Faust would drop the records read again up to 149: at the end of a
    partition's traffic, nothing later would arrive to show the ledger that they never came."""
    consumer = Consumer({P0: records(P0, range(100, 120))})
    consumer._read_offset[P0] = 149
    [(tp, message)] = await delivered(consumer)
    assert tp == P0 and message.value.offsets == list(range(100, 120))


class Seeks:
    def __init__(self):
        self.calls = []

    async def seek(self, tp, offset):
        self.calls.append((tp, offset))


class Stats:
    rereads = 0


async def test_a_chunk_past_a_hole_reads_the_hole_again_and_exactly_once_keeps_only_the_next_records():
    ledger = OffsetLedger()
    ledger.assigned([P0], 1)
    ledger.set_bases({P0: 10})
    consumer = Seeks()
    chunk = RecordChunk([10, 11], [b"a", b"b"])
    assert await seek_back_over_holes(consumer, ledger, P0, 1, chunk, Stats()) is chunk
    await seek_back_over_holes(consumer, ledger, P0, 1, RecordChunk([14, 15], [b"e", b"f"]), Stats())
    assert consumer.calls == [(P0, 12)]  # 12 and 13 never arrived

    ledger = OffsetLedger(exactly_once=True)
    ledger.assigned([P0], 1)
    ledger.set_bases({P0: 10})
    consumer = Seeks()
    kept = await seek_back_over_holes(consumer, ledger, P0, 1, RecordChunk([9, 10, 11, 13], [b"z", b"a", b"b", b"d"]),
                                      Stats())
    assert kept.offsets == [10, 11] and kept.values == [b"a", b"b"]  # 9 committed before; 13 follows a hole
    assert consumer.calls == [(P0, 12)]


class FlowControlledConsumer:
    """Faust's consumer as far as its buffer flow control goes: a partition whose stream buffer is nearly full
    leaves the active set (``on_buffer_full``) until it drains (``on_buffer_drop``); with none active, Faust's
    ``_wait_next_records`` sleeps a second (counted here in ``idle_seconds``, not slept)."""

    def __init__(self, active):
        self.active = set(active)
        self.app = type("App", (), {"client_only": False})()
        self.flow_active = True
        self.fetches: list[set] = []
        self.idle_seconds = 0

    def _get_active_partitions(self):
        return self.active

    def on_buffer_drop(self, tp):
        self.active.add(tp)

    def resume_partitions(self, tps):
        self.active.update(tps)

    async def _wait_next_records(self, timeout):
        if not self.active:
            self.idle_seconds += 1  # Faust's await self.sleep(1)
            return {}, self.active
        self.fetches.append(set(self.active))
        return {tp: records(tp, [0]) for tp in self.active}, self.active


class HeldBack(ChunkedGetmany, FlowControlledConsumer):
    pass


async def test_with_every_partition_held_back_the_fetch_waits_for_a_buffer_to_drain_not_a_second():
    consumer = HeldBack(active=[])
    asyncio.get_running_loop().call_later(0.05, consumer.on_buffer_drop, P0)
    started = time.monotonic()
    fetched, active = await consumer._wait_next_records(1.0)
    assert time.monotonic() - started < 0.5
    assert list(fetched) == [P0] and consumer.fetches == [{P0}]  # fetched as soon as it drained
    assert consumer.idle_seconds == 0


async def test_a_resumed_partition_ends_the_wait_too_and_without_one_the_wait_ends_at_the_timeout():
    consumer = HeldBack(active=[])
    asyncio.get_running_loop().call_later(0.05, consumer.resume_partitions, {P1})
    fetched, _ = await consumer._wait_next_records(1.0)
    assert list(fetched) == [P1]

    consumer = HeldBack(active=[])
    started = time.monotonic()
    assert await consumer._wait_next_records(0.1) == ({}, set())
    assert 0.1 <= time.monotonic() - started < 0.5 and consumer.fetches == []
    assert consumer.idle_seconds == 0


async def test_with_a_partition_active_the_fetch_is_faust_s():
    consumer = HeldBack(active=[P0])
    fetched, _ = await consumer._wait_next_records(1.0)
    assert list(fetched) == [P0] and consumer.fetches == [{P0}]


def _thread_making(consumer):
    class FaustThread:  # the part of Faust's consumer thread that makes the aiokafka consumer
        def _create_worker_consumer(self, transport):
            return consumer
    return FaustThread


async def test_the_consumer_faust_makes_is_given_the_fetch_wait():
    import aiokafka

    made = aiokafka.AIOKafkaConsumer(bootstrap_servers="localhost:1", fetch_max_wait_ms=1500)  # as Faust makes it
    try:
        consumer = fetch_waiting(_thread_making(made), 1 << 20, 100)()._create_worker_consumer(None)
        assert consumer is made
        assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (1 << 20, 100)
    finally:
        await made.stop()


def test_an_aiokafka_keeping_the_fetch_settings_elsewhere_is_refused_not_ignored():
    thread = fetch_waiting(_thread_making(object()), 1 << 20, 100)()
    with pytest.raises(RuntimeError, match="cannot set the enrich fetch settings"):
        thread._create_worker_consumer(None)


@pytest.mark.parametrize("min_bytes, max_wait, expected", [
    (1, 0.001, (1, 1)), (1 << 20, 0.1, (1 << 20, 100)), (500, 10.0, (500, 10_000)),
    (0, 0.1, "fetch_min_bytes must be at least 1"), (1, 0.0, "fetch_max_wait must be between"),
    (1, 10.5, "fetch_max_wait must be between"), (1, -1.0, "fetch_max_wait must be between"),
])
def test_fetch_wait_settings_in_milliseconds_or_a_message(min_bytes, max_wait, expected):
    enrich = EnrichConfig(fetch_min_bytes=min_bytes, fetch_max_wait=max_wait)
    if isinstance(expected, tuple):
        assert fetch_wait_settings(enrich) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            fetch_wait_settings(enrich)
