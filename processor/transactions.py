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

An error in steps 1-4 that leaves the worker the partitions' owner (a
record not acknowledged, a timeout, the broker away) aborts the transaction
and tries the same records and offsets again, with back-off, for as long as
it takes.  Any other (the broker refused the offsets for the group's
generation or member: the partitions may be another worker's now; another
producer registered the same transactional id) ends the process at once
with status 3: its transaction is aborted, and the records are processed
again by whoever owns them next.  So does a blocking call that does not
return 15 s past its timeout (:class:`TransactionStuck`: librdkafka can wait
for a dead group coordinator without end); a restart under the same
transactional id aborts the open transaction.

The blocking calls (``init_transactions``, ``send_offsets_to_transaction``,
``commit_transaction``) run in a thread, so the event loop enriches the next
batches meanwhile.
"""
from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

log = logging.getLogger("snowmelt.enrich")

# back-off between attempts at a transaction the broker could not take (seconds)
RETRY_INITIAL, RETRY_MAX = 0.5, 5.0
# seconds past its own timeout after which a blocking transactional call counts as stuck
STUCK_MARGIN = 15.0


class TransactionStuck(RuntimeError):
    """A transactional call of librdkafka did not return: the worker must be restarted."""

# librdkafka settings of a transactional producer.  The broker answers the first
# partition a transaction adds with CONCURRENT_TRANSACTIONS until the previous
# one's markers are written (a few ms), and librdkafka waits retry.backoff.ms
# before asking again: 100 ms by default, which made every transaction last
# about 100 ms (bench/txn_producers.py: 100 ms -> 28 ms each at 10 ms).  Other
# retries still back off exponentially up to retry.backoff.max.ms (1 s).
PRODUCER_SETTINGS = {"retry.backoff.ms": 10}

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
    ``on_fatal(reason)`` ends the process (the worker's
    :func:`processor.worker.exit_uncommitted`; tests record the reason).
    """

    def __init__(self, output, ledger, consumer_group: Callable[[], tuple[str, int, str]], *,
                 on_fatal: Callable[[str], None], timeout: float = 30.0, stats=None):
        self.output = output
        self.ledger = ledger
        self.consumer_group = consumer_group
        self.timeout = timeout
        self.stats = stats
        self.on_fatal = on_fatal
        self._queue: list[_Pending] = []
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task | None = None
        self._ready: asyncio.Future | None = None
        self.transactions = 0
        self.retries = 0

    async def start(self) -> None:
        """Start the producer and register its transactional id (aborting a predecessor's open transaction)."""
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._init())
        await self._ready

    async def _init(self) -> None:
        if not self.output.started:
            self.output.start()
        try:
            await self._until_done(self.output.producer.init_transactions, "registering the transactional producer",
                                   give_up=lambda error: not error.retriable())
        except Exception as exc:
            self.on_fatal(f"could not register the transactional producer: {exc!r}")
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
                    await self._commit_group(group)
                except Exception as exc:  # nothing of it is visible to read_committed readers
                    self.on_fatal(f"transaction failed: {exc!r}")
                    for pending in group:
                        if not pending.done.done():
                            pending.done.set_exception(exc)
                    continue
                for pending in group:
                    pending.done.set_result(None)

    async def _commit_group(self, group: list[_Pending]) -> None:
        """One transaction for ``group``, tried again (same records, offsets and generation) after an abort."""
        records = [r for pending in group for r in pending.records]
        for pending in group:
            for tp, taken in pending.offsets.items():
                self.ledger.release(tp, taken)
        offsets = self.ledger.committable()
        # the generation the records were read in: a rebalance since makes the broker refuse the offsets
        metadata = group_metadata(*self.consumer_group()) if offsets else None
        for delay in back_off():
            try:
                await self._transaction(records, offsets, metadata)
                break
            except Exception as exc:
                if not may_try_again(exc, getattr(self.output, "error_type", None)):
                    raise
                self.retries += 1
                if self.stats is not None:
                    self.stats.transaction_retries += 1
                log.warning("transaction aborted (%s); trying it again in %.1fs", exc, delay)
                await self._abort()
                await asyncio.sleep(delay)
        self.ledger.committed(offsets)
        self.transactions += 1
        if self.stats is not None:
            self.stats.transactions += 1

    async def _transaction(self, records: Records, offsets: dict, metadata: bytes | None) -> None:
        from confluent_kafka import TopicPartition

        producer = self.output.producer
        producer.begin_transaction()
        acks = await self.output.send_all(list(records))
        await acks
        if offsets:
            positions = [TopicPartition(tp.topic, tp.partition, offset) for tp, offset in offsets.items()]
            await self._blocking(producer.send_offsets_to_transaction, positions, metadata, self.timeout)
        await self._blocking(producer.commit_transaction, self.timeout)

    async def _blocking(self, call, *args) -> None:
        """``call(*args)`` in a thread; :class:`TransactionStuck` when it outlives its own timeout by 15 s.

        librdkafka's ``send_offsets_to_transaction`` can wait without end when
        the group coordinator's broker died (its timeout is not applied to the
        coordinator look-up: librdkafka issues 5456 and 5511, open); nothing
        else can be called on the producer meanwhile, so the worker must end
        and be restarted (its transactional id then aborts the transaction).
        """
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.to_thread(call, *args)), self.timeout + STUCK_MARGIN)
        except asyncio.TimeoutError:
            raise TransactionStuck(f"{call.__name__} did not return {self.timeout + STUCK_MARGIN:.0f} s after it "
                                   "was called (librdkafka waits for a coordinator it no longer looks up)") from None

    async def _abort(self) -> None:
        """Abort the transaction in progress (its records are dropped), waiting while the broker is away."""
        from confluent_kafka import KafkaError, KafkaException

        try:
            await self._until_done(self.output.producer.abort_transaction, "aborting the transaction",
                                   give_up=lambda error: error.fatal() or error.code() == KafkaError._STATE)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._STATE:  # _STATE: no transaction in progress
                raise

    async def _until_done(self, call, what: str, give_up: Callable) -> None:
        """``call(timeout)`` (see :meth:`_blocking`) again, with back-off, after each error ``give_up`` lets pass."""
        from confluent_kafka import KafkaException

        for delay in back_off():
            try:
                await self._blocking(call, self.timeout)
                return
            except KafkaException as exc:
                if give_up(exc.args[0]):
                    raise
                log.warning("%s: %s; trying again in %.1fs", what, exc.args[0], delay)
                await asyncio.sleep(delay)


def back_off():
    """Seconds to wait before each next attempt: RETRY_INITIAL, doubling up to RETRY_MAX."""
    delay = RETRY_INITIAL
    while True:
        yield delay
        delay = min(delay * 2, RETRY_MAX)


def may_try_again(exc: BaseException, delivery_error: type | None = None) -> bool:
    """Whether a failed transaction may be aborted and tried again by this worker.

    Not after a fatal error (another worker registered the same transactional
    id) nor when the broker refused the offsets for the group's membership:
    the partitions may belong to another worker now, which reads them again.
    A record the broker did not acknowledge (``delivery_error``, the
    producer's), a timeout or a broker away: yes.
    """
    from confluent_kafka import KafkaError, KafkaException

    if isinstance(exc, TransactionStuck):
        return False
    if not isinstance(exc, KafkaException):
        return isinstance(exc, asyncio.TimeoutError) or (
            isinstance(delivery_error, type) and isinstance(exc, delivery_error))
    error = exc.args[0]
    if not isinstance(error, KafkaError) or error.fatal():
        return False
    if error.code() in (KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID,
                        KafkaError.FENCED_INSTANCE_ID, KafkaError.REBALANCE_IN_PROGRESS):
        return False
    return error.txn_requires_abort() or error.retriable()

