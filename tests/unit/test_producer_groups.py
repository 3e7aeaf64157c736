"""LoopProducer.send_all: one future for a group of records, resolved by the broker's acknowledgements."""
from __future__ import annotations

import asyncio

import pytest

from snowmelt.producer import LoopProducer


class FakeProducer:
    """librdkafka's Producer as send_all uses it: callbacks run on poll(), BufferError when full."""

    def __init__(self, room: int = 1_000, refuse: set[bytes] = frozenset()):
        self.room = room
        self.refuse = refuse
        self.queued: list[tuple] = []
        self.delivered: list[tuple] = []

    def produce(self, topic, value=None, key=None, partition=-1, on_delivery=None):  # confluent-kafka's order
        # -1 is librdkafka's "any partition": the partitioner hashes the key (the enriched events' event_id)
        assert partition == -1, f"records must be left to the key's partitioner, not sent to partition {partition}"
        if value in self.refuse:
            raise ValueError("Message size too large")
        if len(self.queued) >= self.room:
            raise BufferError("Local: Queue full")
        self.queued.append((topic, key, value, on_delivery))

    def poll(self, _timeout=0):
        return 0

    def ack(self, n: int | None = None, error=None):
        for topic, key, value, cb in self.queued[:n]:
            self.delivered.append((topic, key, value))
            cb(error, None)
        del self.queued[:n]
        return n

    def __len__(self):
        return len(self.queued)


def started(fake: FakeProducer) -> LoopProducer:
    producer = LoopProducer({}, error_type=RuntimeError)
    producer._loop = asyncio.get_running_loop()
    producer.producer = fake
    return producer


async def test_the_group_resolves_only_when_every_record_is_acknowledged():
    fake = FakeProducer()
    producer = started(fake)
    fut = await producer.send_all([("t", b"k1", b"v1"), ("t", b"k2", b"v2"), ("bad", None, b"v3")])
    assert [q[:3] for q in fake.queued] == [("t", b"k1", b"v1"), ("t", b"k2", b"v2"), ("bad", None, b"v3")]
    assert producer._outstanding == 3
    fake.ack(2)
    assert not fut.done()
    fake.ack()
    assert fut.done() and fut.result() is None
    assert producer._outstanding == 0


async def test_one_failed_delivery_fails_the_group_after_all_reports():
    fake = FakeProducer()
    producer = started(fake)
    fut = await producer.send_all([("t", None, b"a"), ("t", None, b"b")])
    fake.ack(1, error="NOT_ENOUGH_REPLICAS")
    assert not fut.done()
    fake.ack()
    with pytest.raises(RuntimeError, match="1 of 2 records not acknowledged: NOT_ENOUGH_REPLICAS"):
        fut.result()


async def test_a_record_refused_outright_fails_the_group_and_is_not_outstanding():
    fake = FakeProducer(refuse={b"huge"})
    producer = started(fake)
    fut = await producer.send_all([("t", None, b"huge"), ("t", None, b"ok")])
    assert producer._outstanding == 1
    fake.ack()
    with pytest.raises(RuntimeError, match="1 of 2 records not acknowledged: Message size too large"):
        fut.result()


async def test_a_full_buffer_waits_for_room_then_sends_everything_in_order():
    fake = FakeProducer(room=2)
    producer = started(fake)
    task = asyncio.ensure_future(producer.send_all([("t", None, bytes([i])) for i in range(5)]))
    await asyncio.sleep(0.01)
    assert not task.done() and len(fake.queued) == 2  # backpressure: waiting for room
    while not task.done():
        fake.ack()
        await asyncio.sleep(0.002)
    fut = task.result()
    fake.ack()
    await asyncio.wait_for(fut, 1)
    assert [v for _, _, v in fake.delivered] == [bytes([i]) for i in range(5)]


async def test_an_empty_group_is_already_acknowledged():
    producer = started(FakeProducer())
    fut = await producer.send_all([])
    assert fut.done() and fut.result() is None


async def test_the_pump_goes_on_polling_after_a_poll_that_raised():
    """confluent-kafka re-raises from poll() what a callback raised; the pump is the only thing that serves
    acknowledgements, so one such poll must not end it (every later batch would wait for ever)."""

    class RaisingOnce(FakeProducer):
        polls = 0
        raised = False

        def poll(self, _timeout=0):
            self.polls += 1
            if self.polls == 2:  # the first poll after start()
                self.raised = True
                raise RuntimeError("a callback raised")
            return self.ack()

    fake = RaisingOnce()
    producer = started(fake)
    producer._pump()
    fut = await producer.send_all([("t", b"k", b"v")])
    await asyncio.wait_for(fut, 2)
    assert fake.raised and fake.delivered == [("t", b"k", b"v")]
    producer._closed = True
