"""Exactly-once output of the enrich worker: batches' output and raw offsets in one Kafka transaction.

With ``enrich.processing_guarantee: exactly_once`` the worker's librdkafka
producer is transactional (``transactional.id`` = ``enrich.transactional_id``).
Each enriched batch is handed to :class:`TransactionalCommitter`, which runs
one transaction at a time, in the order batches were handed in:

1. ``begin_transaction``;
2. the output records of every batch waiting at that moment are produced
   (under load several batches share a transaction, so a transaction's fixed
   cost is spread over more records) and their acknowledgements awaited;
3. the batches' raw offsets are released to the :class:`~processor.ledger.OffsetLedger`,
   and the offsets it can commit are sent to the transaction with the
   consumer group's metadata (group, generation and member id of the
   worker's consumer, so the broker refuses them from a worker that is no
   longer the partition's owner: KIP-447 fencing);
4. ``commit_transaction``.

Readers with ``isolation.level=read_committed`` (the loaders; librdkafka's
default) see the output only once the raw offsets are committed with it:
a crash before the commit leaves an open transaction that the next start
under the same ``transactional.id`` aborts (``init_transactions``), or the
broker after ``enrich.transaction_timeout``; the restarted worker reads the
raw records again from the committed offsets.

Any error in steps 1-4 ends the process at once with status 3, without
committing (an error from step 3 includes the broker's refusal of a fenced
generation): its transaction is aborted by the broker, and a restarted
worker processes the records again.

The blocking calls (``init_transactions``, ``send_offsets_to_transaction``,
``commit_transaction``) run in a thread, so the event loop enriches the next
batches meanwhile.
"""
from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

log = logging.getLogger("snowmelt.enrich")

EXIT_TRANSACTION_FAILED = 3

# (topic, key, value) records of one batch, and its raw offsets per partition
Records = Sequence[tuple[str, bytes | None, bytes]]


def group_metadata(group_id: str, generation: int, member_id: str) -> bytes:
    """A consumer's group metadata as librdkafka serializes it for ``send_offsets_to_transaction``.

    The layout of ``rd_kafka_consumer_group_metadata_write`` (version 2): the
    magic ``CGMDv2:``, the generation as a native 32-bit integer, the group
    and member ids each ended by a NUL byte, then 1 for "no group instance id".
    The worker's consumer is aiokafka's (under Faust), so librdkafka cannot
    make this object itself.
    """
    return (b"CGMDv2:" + struct.pack("=i", generation) + group_id.encode() + b"\0"
            + member_id.encode() + b"\0" + b"\x01")


@dataclass
class _Pending:
    records: Records
    offsets: dict[Hashable, list[int]]
    done: asyncio.Future


class TransactionalCommitter:
    """Serializes batches into transactions (see the module docstring).

    ``output`` is a started-on-demand :class:`snowmelt.producer.LoopProducer`
    whose settings hold a ``transactional.id``; ``consumer_group`` returns
    ``(group_id, generation, member_id)`` of the consumer at this moment;
    ``topic_partition(tp, offset)`` makes librdkafka's ``TopicPartition``
    of a ledger key.  ``on_fatal`` ends the process (tests replace it).
    """

    def __init__(self, output, ledger, consumer_group: Callable[[], tuple[str, int, str]], *,
                 timeout: float = 30.0, stats=None, on_fatal: Callable[[str], None] | None = None):
        self.output = output
        self.ledger = ledger
        self.consumer_group = consumer_group
        self.timeout = timeout
        self.stats = stats
        self.on_fatal = on_fatal or _exit
        self._queue: list[_Pending] = []
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task | None = None
        self._ready: asyncio.Future | None = None
        self.transactions = 0

    async def start(self) -> None:
        """Start the producer and register its transactional id (aborting a predecessor's open transaction)."""
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._init())
        await self._ready

    async def _init(self) -> None:
        if not self.output.started:
            self.output.start()
        try:
            await asyncio.to_thread(self.output.producer.init_transactions, self.timeout)
        except Exception as exc:
            self.on_fatal(f"could not register the transactional producer: {exc}")
            raise
        self._wake = asyncio.Event()
        self._runner = asyncio.ensure_future(self._run())

    async def submit(self, records: Records, offsets: dict[Hashable, list[int]]) -> None:
        """Returns once ``records`` and the raw ``offsets`` are committed in a transaction."""
        await self.start()
        pending = _Pending(records, offsets, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._wake.set()
        await pending.done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                group, self._queue = self._queue, []
                try:
                    await self._transaction(group)
                except Exception as exc:  # nothing of it is visible to read_committed readers
                    self.on_fatal(f"transaction failed: {exc!r}")
                    for pending in group:
                        if not pending.done.done():
                            pending.done.set_exception(exc)
                    continue
                for pending in group:
                    pending.done.set_result(None)

    async def _transaction(self, group: list[_Pending]) -> None:
        from confluent_kafka import TopicPartition

        producer = self.output.producer
        producer.begin_transaction()
        records = [r for pending in group for r in pending.records]
        acks = await self.output.send_all(records)
        await acks
        for pending in group:
            for tp, taken in pending.offsets.items():
                self.ledger.release(tp, taken)
        offsets = self.ledger.committable()
        if offsets:
            group_id, generation, member_id = self.consumer_group()
            positions = [TopicPartition(tp.topic, tp.partition, offset) for tp, offset in offsets.items()]
            await asyncio.to_thread(producer.send_offsets_to_transaction, positions,
                                    group_metadata(group_id, generation, member_id), self.timeout)
        await asyncio.to_thread(producer.commit_transaction, self.timeout)
        self.ledger.committed(offsets)
        self.transactions += 1
        if self.stats is not None:
            self.stats.transactions += 1


def _exit(reason: str) -> None:
    log.critical("%s; exiting without committing, so the raw records are processed again", reason)
    logging.shutdown()
    os._exit(EXIT_TRANSACTION_FAILED)
