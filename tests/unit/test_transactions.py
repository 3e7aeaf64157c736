"""The exactly-once committer: batches' output and raw offsets go in one transaction, in order."""
from __future__ import annotations

import asyncio
from collections import namedtuple

import pytest
from confluent_kafka import Consumer

from processor.ledger import OffsetLedger
from processor.transactions import TransactionalCommitter, group_metadata

TP = namedtuple("TP", "topic partition")
P0, P1 = TP("raw", 0), TP("raw", 1)


def test_group_metadata_is_what_librdkafka_writes_for_a_consumer():
    consumer = Consumer({"group.id": "snowmelt-enrich", "bootstrap.servers": "127.0.0.1:9", "log_level": 0})
    try:
        assert group_metadata("snowmelt-enrich", -1, "") == consumer.consumer_group_metadata()
    finally:
        consumer.close()
    member = group_metadata("g", 7, "m-1")
    assert member.startswith(b"CGMDv2:") and member.endswith(b"g\0m-1\0\x01")


class FakeProducer:
    """librdkafka's transactional calls, recorded; acknowledgements resolved at once."""

    def __init__(self, fail_on: str | None = None):
        self.calls: list = []
        self.fail_on = fail_on

    def _call(self, name, *args):
        self.calls.append((name, *args))
        if name == self.fail_on:
            raise RuntimeError(f"{name} refused")

    def init_transactions(self, timeout):
        self._call("init")

    def begin_transaction(self):
        self._call("begin")

    def send_offsets_to_transaction(self, positions, metadata, timeout):
        self._call("offsets", sorted((p.partition, p.offset) for p in positions), metadata)

    def commit_transaction(self, timeout):
        self._call("commit")


class FakeOutput:
    def __init__(self, producer):
        self.producer = producer
        self.started = False

    def start(self):
        self.started = True

    async def send_all(self, records):
        self.producer.calls.append(("produce", [value for _topic, _key, value in records]))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def committer(producer, ledger, fatal):
    return TransactionalCommitter(FakeOutput(producer), ledger, lambda: ("g", 3, "member"), on_fatal=fatal.append)


def owned(bases):
    ledger = OffsetLedger(exactly_once=True)
    ledger.assigned(bases, 1)
    ledger.set_bases(bases)
    return ledger


async def test_batches_waiting_together_share_one_transaction_with_their_offsets():
    producer, fatal = FakeProducer(), []
    ledger = owned({P0: 10, P1: 0})
    c = committer(producer, ledger, fatal)
    await c.submit([("enriched", b"k", b"a")], {P0: [10, 11]})
    await asyncio.gather(c.submit([("enriched", b"k", b"b")], {P0: [12]}),
                         c.submit([("bad", None, b"c")], {P1: [0, 1]}))
    assert [call[0] for call in producer.calls] == ["init", "begin", "produce", "offsets", "commit",
                                                    "begin", "produce", "offsets", "commit"]
    assert producer.calls[2] == ("produce", [b"a"])
    assert producer.calls[3][1] == [(0, 12)]
    assert producer.calls[6] == ("produce", [b"b", b"c"])
    assert producer.calls[7][1] == [(0, 13), (1, 2)]
    assert producer.calls[7][2] == group_metadata("g", 3, "member")
    assert ledger.committable() == {} and not fatal


@pytest.mark.parametrize("step", ["offsets", "commit"])
async def test_a_failed_transaction_ends_the_worker_and_commits_nothing(step):
    producer, fatal = FakeProducer(fail_on=step), []
    ledger = owned({P0: 0})
    c = committer(producer, ledger, fatal)
    with pytest.raises(RuntimeError, match="refused"):
        await c.submit([("enriched", b"k", b"a")], {P0: [0]})
    assert len(fatal) == 1 and "transaction failed" in fatal[0]
    if step == "offsets":
        assert ("commit",) not in producer.calls
    assert c.transactions == 0


def kafka_error(code, *, fatal=False, retriable=False, abort=False):
    from confluent_kafka import KafkaError, KafkaException

    return KafkaException(KafkaError(code, "test", fatal=fatal, retriable=retriable, txn_requires_abort=abort))


class FlakyProducer(FakeProducer):
    """Raises ``errors`` (in order) from the named calls, then behaves."""

    def __init__(self, errors):
        super().__init__()
        self.errors = list(errors)

    def _call(self, name, *args):
        self.calls.append((name, *args))
        if self.errors and self.errors[0][0] == name:
            raise self.errors.pop(0)[1]

    def abort_transaction(self, timeout):
        self._call("abort")


async def test_an_abortable_failure_is_aborted_and_the_same_transaction_tried_again(monkeypatch):
    from confluent_kafka import KafkaError

    import processor.transactions as transactions

    monkeypatch.setattr(transactions, "RETRY_INITIAL", 0.01)
    producer, fatal = FlakyProducer([("commit", kafka_error(KafkaError._TIMED_OUT, retriable=True, abort=True)),
                                     ("offsets", kafka_error(KafkaError.NOT_COORDINATOR, abort=True))]), []
    ledger = owned({P0: 0})
    c = committer(producer, ledger, fatal)
    await c.submit([("enriched", b"k", b"a")], {P0: [0, 1]})
    names = [call[0] for call in producer.calls]
    assert names == ["init", "begin", "produce", "offsets", "commit", "abort",
                     "begin", "produce", "offsets", "abort",
                     "begin", "produce", "offsets", "commit"]
    assert {call[1] == [(0, 2)] for call in producer.calls if call[0] == "offsets"} == {True}
    assert c.transactions == 1 and c.retries == 2 and not fatal


@pytest.mark.parametrize("error", ["fatal", "generation"])
async def test_a_fenced_producer_or_generation_is_not_tried_again(error):
    from confluent_kafka import KafkaError

    failure = (kafka_error(KafkaError._FENCED, fatal=True) if error == "fatal"
               else kafka_error(KafkaError.ILLEGAL_GENERATION, abort=True))
    producer, fatal = FlakyProducer([("offsets", failure)]), []
    c = committer(producer, owned({P0: 0}), fatal)
    with pytest.raises(Exception):
        await c.submit([("enriched", b"k", b"a")], {P0: [0]})
    assert len(fatal) == 1 and c.retries == 0
    assert "abort" not in [call[0] for call in producer.calls]


async def test_a_call_that_never_returns_ends_the_worker(monkeypatch):
    # librdkafka's send_offsets_to_transaction can wait for a dead group coordinator without end
    import threading

    import processor.transactions as transactions

    monkeypatch.setattr(transactions, "STUCK_MARGIN", 0.2)
    release = threading.Event()

    class Stuck(FakeProducer):
        def send_offsets_to_transaction(self, positions, metadata, timeout):
            release.wait(10)

    producer, fatal = Stuck(), []
    c = TransactionalCommitter(FakeOutput(producer), owned({P0: 0}), lambda: ("g", 3, "m"), timeout=0.1,
                               on_fatal=fatal.append)
    try:
        with pytest.raises(transactions.TransactionStuck):
            await c.submit([("enriched", b"k", b"a")], {P0: [0]})
    finally:
        release.set()
    assert len(fatal) == 1 and "did not return" in fatal[0] and c.retries == 0
