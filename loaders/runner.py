"""The loader loop: the enriched and bad topics -> batches -> a :class:`~loaders.base.Store`.

``snowmelt load clickhouse|s3`` runs one :class:`Loader`: a confluent-kafka
consumer in the loader kind's own group (``load.clickhouse_group_id`` ...),
subscribed to ``topics.enriched`` and ``topics.bad``.  Per partition it
buffers records until ``load.batch_size`` of them or ``load.batch_timeout``
seconds, hands the :class:`~loaders.base.Batch` to the store, and only then
commits the offset after the batch (flush, then commit: at least once).

The store writes on a thread of its own while the loop reads, cuts and
prepares the next batch (:meth:`~loaders.base.Store.prepare`: parsing the
lines, compressing them): that work and fetching overlap the write.  A store
whose preparation mostly lets go of the interpreter's lock (gzip TSV into S3)
is prepared on a second writer thread instead, so that the loop reads on
meanwhile.  One batch is written at a time; the next write starts only once
the one before is committed, so commits come in the order a serial loop makes
them.
A partition whose batch is being written is never committed past it, a
revoke waits for that write (and commits it while the partition is still
owned), and shutdown finishes it within the grace period.

- Store unavailable (:class:`~loaders.base.StoreUnavailable`): every assigned
  partition is paused, the same batch is retried with exponential backoff
  (``retry_initial`` .. ``retry_max``) for as long as it takes, polling the
  consumer meanwhile so that the process stays in its group; then consumption
  resumes.  Memory stays bounded by ``batch_size`` records per partition.
- Rebalance: buffers of revoked partitions are dropped unwritten and
  uncommitted; the partition's new owner reads them again.
- Assignment: the loader reads the group's committed offsets itself and
  assigns each partition at its offset (or, with none committed, at the
  start or end of the partition as ``auto.offset.reset`` says), so that
  librdkafka fetches at once.  Left to find the offset itself, librdkafka
  never starts a partition whose offset read the coordinator refused as a
  whole (NOT_COORDINATOR after a broker stall: librdkafka issue 5586), and
  the loader would wait on it for ever.  A partition whose offset the
  loader could not read is assigned without one (librdkafka reads it) and
  assigned again at its offset once a later poll reads it.
- Crash (kill -9): what was written but not committed is written again by the
  next owner, and the batch token (topic, partition, offset range) makes that
  rewrite idempotent in the store (the S3 object key, ClickHouse's
  ``insert_deduplication_token``) as long as the batch is cut the same way.
  With ``load.exactly_once`` (the default) it always is: before
  ``store.write`` the loader commits, synchronously, the batch's *first*
  offset with the write intent ``snowmelt-batch:<first>-<last>`` as the
  offset-commit metadata; the commit of ``last + 1`` after the write clears
  it.  When a partition is assigned, the loader reads the group's committed
  offsets with their metadata; where an intent is pending (the committed
  offset is its first offset), the partition's first batch is cut exactly
  at its last offset: no time, size or shutdown cut before the record at or
  past that offset arrives, and a record past it starts the next batch (the
  re-read delivers the same offsets; transaction markers may leave gaps).
  Then the partition is cut as usual.  A pending batch incomplete at
  shutdown is left unwritten and uncommitted (the intent stays), and a
  revoke drops the rule with the buffer.  If the committed offsets cannot be
  read at assignment, the partition's records are held back (and the
  partition paused) until a later poll reads them.  This costs one more
  synchronous commit per batch; ``load.exactly_once: false`` goes without
  it, and then a batch cut by time, shutdown or rebalance may be cut
  differently when it is re-read and stored twice under two tokens (S3 keeps
  both objects; ClickHouse's ReplacingMergeTree merges the events).
- SIGTERM: the loop stops reading, writes and commits what it holds (within
  ``load.shutdown_grace``), leaves the group and returns 0.
- ``load.metrics_port``: ``/metrics``, ``/health`` and ``/ready`` (200 while
  the broker answers with both topics and the store answers, 503 otherwise
  and from SIGTERM on; see :mod:`snowmelt.health`).
- Any other exception from the store stops the loader without committing the
  batch (exit status 1): it is a bug or a configuration error, and a restart
  reprocesses the batch.

Batches are cut at offsets that are multiples of ``batch_size`` whenever the
size limit cuts them, so that a partition re-read after a crash is cut into
the same batches (same tokens) as before even without a write intent.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable

from ext import take_run
from loaders.base import BAD, ENRICHED, Batch, Store, StoreUnavailable
from snowmelt.membership import GroupDescriber, JoinState, MembershipWatch, Verdict, exit_outside, watch_membership
from snowmelt.metrics import LoadStats
from snowmelt.stall import Stalled, StallWatch

log = logging.getLogger("snowmelt.load")

# how many records one consume() call may return
CONSUME_MAX = 10_000
#: threads of the loader's store: one writes a batch while another may prepare the next (Loader._start_write)
WRITER_THREADS = 2

#: how the loaders fetch (bench.load_kafka_bench reads the topic with the same)
FETCH_SETTINGS = {
    # large fetches: a batch is tens of thousands of ~1.5 KB records
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    # one such fetch fills the local queue past its thresholds (queued.min.messages,
    # queued.max.messages.kbytes), and librdkafka then waits this long before fetching again
    # (1 s by default): a loader catching up spent half its time waiting (bench/RESULTS.md)
    "fetch.queue.backoff.ms": 10,
}

#: the offset-commit metadata of a write intent: ``snowmelt-batch:<first offset>-<last offset>``
INTENT_PREFIX = "snowmelt-batch:"
_INTENT = re.compile(r"snowmelt-batch:(\d+)-(\d+)")


def intent_metadata(batch: Batch) -> str:
    """The write intent of ``batch``, committed with its first offset before it is written."""
    return f"{INTENT_PREFIX}{batch.first_offset}-{batch.last_offset}"


def parse_intent(metadata: str | None) -> tuple[int, int] | None:
    """(first offset, last offset) of a write intent's metadata; None for anything else."""
    match = _INTENT.fullmatch(metadata or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


class _IntentNotCommitted(Exception):
    """The write intent of a batch could not be committed (retried like an unavailable store)."""


@dataclass
class _Buffer:
    """The records of one partition read and not yet written."""

    kind: str
    topic: str
    partition: int
    values: list[bytes] = field(default_factory=list)
    first_offset: int = -1
    last_offset: int = -1
    first_timestamp_ms: int = 0
    started: float = 0.0

    def add(self, value: bytes, offset: int, timestamp_ms: int, now: float) -> None:
        if not self.values:
            self.first_offset, self.first_timestamp_ms, self.started = offset, timestamp_ms, now
        self.values.append(value)
        self.last_offset = offset

    def cut(self) -> Batch:
        batch = Batch(self.kind, self.topic, self.partition, self.first_offset, self.last_offset,
                      tuple(self.values), self.first_timestamp_ms)
        self.values = []
        return batch


@dataclass
class _InFlight:
    """The batch being written on a writer thread (``future``), once ``prepared``
    (:meth:`~loaders.base.Store.prepare`: on the loop, done already, or on the other writer thread)."""

    batch: Batch
    prepared: Future
    future: Future
    started: float

    @property
    def tp(self) -> tuple[str, int]:
        return self.batch.topic, self.batch.partition


class Loader:
    """One loader process's loop (see the module docstring).

    ``consumer`` is a confluent-kafka ``Consumer`` (or anything with its
    ``subscribe/consume/commit/pause/resume/assignment/close`` methods);
    ``topics`` maps each topic name to the kind of its records.

    ``exactly_once`` turns on the write intents (the consumer then needs
    ``committed`` too); ``intent_timeout`` bounds each read of the committed
    offsets.  ``writer`` runs ``store.prepare`` and ``store.write``
    (:data:`WRITER_THREADS` threads of its own unless given).
    ``incremental``: the group rebalances cooperatively (partitions are
    added and taken away, not the whole assignment replaced);
    ``offset_reset`` is the consumer's ``auto.offset.reset``.
    """

    def __init__(self, consumer: Any, store: Store, topics: dict[str, str], *, batch_size: int,
                 batch_timeout: float, retry_initial: float = 0.5, retry_max: float = 30.0,
                 shutdown_grace: float = 30.0, stats: LoadStats | None = None,
                 clock: Callable[[], float] = time.monotonic, exactly_once: bool = True,
                 intent_timeout: float = 10.0, writer: Executor | None = None, incremental: bool = False,
                 offset_reset: str = "earliest"):
        self.consumer = consumer
        self.store = store
        self.topics = dict(topics)
        self.batch_size = max(1, batch_size)
        self.batch_timeout = batch_timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.shutdown_grace = shutdown_grace
        self.stats = stats or LoadStats(store.name)
        self.stats.batch_size = self.batch_size
        self.clock = clock
        self.stop = threading.Event()
        self._buffers: dict[tuple[str, int], _Buffer] = {}
        self._revoked: set[tuple[str, int]] = set()
        self._assigned: set[tuple[str, int]] = set()
        self._opened = False
        self.exactly_once = exactly_once
        self.intent_timeout = intent_timeout
        # partition -> the last offset its first batch must end at (a pending write intent)
        self._pending: dict[tuple[str, int], int] = {}
        # a pending partition's first batch, complete and not yet written
        self._ready: dict[tuple[str, int], Batch] = {}
        # partitions whose committed offsets could not be read yet, and their records held back
        self._unchecked: set[tuple[str, int]] = set()
        self._held: dict[tuple[str, int], list] = {}
        self._paused_unchecked: set[tuple[str, int]] = set()
        # partition -> the offset this loader last committed for it
        self._committed_at: dict[tuple[str, int], int] = {}
        self.incremental = incremental
        self._reset_offset = _logical_offset(offset_reset)
        # partition -> the offset it was assigned at; partitions assigned without one (librdkafka reads it)
        self._starts: dict[tuple[str, int], int] = {}
        self._unplaced: set[tuple[str, int]] = set()
        # the one batch whose write may run while the loop reads on (see _start_write)
        self._writer = writer
        self._inflight: _InFlight | None = None
        # when the loader last made progress: committed something, or held nothing (see stalled_for)
        self.progress_at = clock()

    # ------------------------------------------------------------------ group membership

    def _on_assign(self, consumer, partitions) -> None:
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing")
        for p in partitions:
            self._revoked.discard((p.topic, p.partition))
            self._assigned.add((p.topic, p.partition))
        self.stats.assigned = len(self._assigned)
        if not partitions:
            return
        # librdkafka keeps a partition's pause across a revoke and a new assignment: one paused
        # by a retry that ended with its revocation would never be read again
        consumer.resume(partitions)
        tps = {(p.topic, p.partition) for p in partitions}
        if self.exactly_once:
            self._unchecked |= tps
        starts = self._read_committed(sorted(tps))
        self._unplaced |= tps - starts.keys()
        for p in partitions:
            if (start := starts.get((p.topic, p.partition))) is not None:
                p.offset = self._starts[(p.topic, p.partition)] = start
        self._assign(partitions)

    def _assign(self, partitions) -> None:
        """Hand librdkafka ``partitions`` (with their offsets): added to a cooperative group's assignment, the
        whole assignment of an eager one."""
        if self.incremental:
            self.consumer.incremental_assign(partitions)
        else:
            self.consumer.assign(partitions)

    def _read_committed(self, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        """Read the group's committed offsets of ``wanted``: where each partition starts.

        A partition with none committed starts where ``auto.offset.reset``
        says (None for \"error\": librdkafka reports it when it finds no
        offset).  Pending write intents of unchecked partitions are noted.  A
        partition that could not be read is left out (and stays unchecked:
        its records are held back until a later call, at the next poll,
        reads it).
        """
        from confluent_kafka import TopicPartition

        try:
            committed = self.consumer.committed([TopicPartition(t, p) for t, p in wanted],
                                                timeout=self.intent_timeout)
        except Exception as exc:  # KafkaException (timeout, coordinator unavailable, ...)
            log.warning("cannot read the committed offsets of %s (%s): retried at the next poll%s",
                        _names(wanted), exc,
                        "; their records wait until then" if self.exactly_once else "")
            return {}
        starts = {}
        for p in committed:
            tp = (p.topic, p.partition)
            if p.error is not None:
                log.warning("cannot read the committed offset of %s[%d] (%s): retried at the next poll",
                            p.topic, p.partition, p.error)
                continue
            starts[tp] = p.offset if p.offset >= 0 else self._reset_offset
            if tp in self._unchecked:
                self._unchecked.discard(tp)
                self._note_intent(p)
        return starts

    def _note_intent(self, p) -> None:
        """Note the pending write intent in a partition's committed offset, if it has one."""
        intent = parse_intent(p.metadata)
        if intent is None:
            return
        first, last = intent
        if first != p.offset:
            log.warning("%s[%d]: write intent %r does not start at the committed offset %d: ignored",
                        p.topic, p.partition, p.metadata, p.offset)
            return
        self._pending[(p.topic, p.partition)] = last
        log.info("%s[%d]: a batch of offsets %d-%d was being written; it is cut the same way again",
                 p.topic, p.partition, first, last)

    def _place(self, starts: dict[tuple[str, int], int]) -> None:
        """Assign again, at their offsets, partitions first assigned without one (see the module docstring).

        A partition librdkafka started meanwhile restarts where the loop's
        reading reached (its position), so nothing is read twice or skipped.
        An eager group's assignment is replaced whole, the other partitions
        likewise at their positions, or where they were assigned if nothing
        was read from them yet.
        """
        from confluent_kafka import TopicPartition

        moved = sorted(starts)
        keys = moved if self.incremental else sorted(self._assigned)
        try:
            positions = {(p.topic, p.partition): p.offset
                         for p in self.consumer.position([TopicPartition(t, p) for t, p in keys])}
        except Exception as exc:  # KafkaException: tried again at the next poll
            log.warning("cannot read the positions of %s (%s): retried at the next poll",
                        _names(keys), exc)
            return
        offsets = {}
        for tp in keys:
            at = positions.get(tp, -1)
            offsets[tp] = at if at >= 0 else starts.get(tp, self._starts.get(tp))
        parts = [TopicPartition(t, p) if offsets[(t, p)] is None else TopicPartition(t, p, offsets[(t, p)])
                 for t, p in keys]
        try:
            if self.incremental:
                self.consumer.incremental_unassign([TopicPartition(t, p) for t, p in moved])
            self._assign(parts)
        except Exception as exc:  # KafkaException (a rebalance begun meanwhile, ...): tried again at the next poll
            log.warning("cannot assign %s again (%s): retried at the next poll",
                        _names(moved), exc)
            return
        for tp in moved:
            self._starts[tp] = offsets[tp]
            self._unplaced.discard(tp)
        log.info("assigned again where their committed offsets say, read after their assignment: %s",
                 ", ".join(f"{t}[{p}] at {_offset_text(offsets[(t, p)])}" for t, p in moved))

    def _recheck(self) -> None:
        """At a poll: read the committed offsets not read yet, assign again the partitions assigned without
        one, pause the unchecked partitions still unread and release the rest."""
        from confluent_kafka import TopicPartition

        starts = self._read_committed(sorted(self._unchecked | self._unplaced))
        placed = {tp: at for tp, at in starts.items() if tp in self._unplaced and at is not None}
        self._unplaced -= starts.keys() - placed.keys()  # none committed and no reset: librdkafka's to report
        if placed:
            self._place(placed)
        still = {tp for tp in self._unchecked if tp not in self._paused_unchecked}
        if still:
            self.consumer.pause([TopicPartition(t, p) for t, p in sorted(still)])
            self._paused_unchecked |= still
        done = sorted(self._paused_unchecked - self._unchecked)
        if done:
            self.consumer.resume([TopicPartition(t, p) for t, p in done])
            self._paused_unchecked -= set(done)
        held = [m for tp in list(self._held) if tp not in self._unchecked for m in self._held.pop(tp)]
        if held:
            self._take(held)

    def _on_revoke(self, consumer, partitions) -> None:
        # Unwritten records of a revoked partition are dropped: not committed, the new owner reads them.
        # A batch of one being written is waited for and committed while the partition is still ours
        # (a write that failed is left to the next owner, as a write retried across a revocation is).
        if self._inflight is not None and self._inflight.tp in {(p.topic, p.partition) for p in partitions}:
            self._finish_inflight(retry=False)
        for p in partitions:
            tp = (p.topic, p.partition)
            self._revoked.add(tp)
            self._assigned.discard(tp)
            self.stats.lag.pop(tp, None)  # its next owner reports it
            # a pending write intent stays in the group for the next owner
            self._pending.pop(tp, None)
            self._ready.pop(tp, None)
            self._committed_at.pop(tp, None)
            self._starts.pop(tp, None)
            self._unplaced.discard(tp)
            self._unchecked.discard(tp)
            self._paused_unchecked.discard(tp)
            self._held.pop(tp, None)
            buffer = self._buffers.pop(tp, None)
            if buffer is not None and buffer.values:
                log.info("%s[%d] revoked: %d unwritten records left to its next owner",
                         p.topic, p.partition, len(buffer.values))
        self.stats.assigned = len(self._assigned)
        self._update_buffered()

    # ------------------------------------------------------------------ the loop

    def open(self) -> None:
        """Open the store (create or migrate tables, check the bucket), waiting while it is unavailable."""
        delay = self.retry_initial
        while True:
            try:
                self.store.open()
                break
            except StoreUnavailable as exc:
                if self.stop.is_set():
                    raise
                log.warning("%s unavailable at start-up (%s); retrying in %.1fs", self.store.name, exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, self.retry_max)
        self._opened = True

    def run(self) -> int:
        """Load until :attr:`stop` is set; returns the exit status (opens the store if not yet open)."""
        if not self._opened:
            self.open()
        own_writer = self._writer is None
        if own_writer:
            self._writer = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="snowmelt-store-write")
        self.consumer.subscribe(list(self.topics), on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.progress_at = self.clock()
        try:
            while not self.stop.is_set():
                if self._unchecked or self._unplaced:
                    self._recheck()
                messages = self.consumer.consume(CONSUME_MAX, self._poll_timeout(self.clock()))
                self._take(messages)
                self._flush_due(self.clock())
                self._finish_inflight(block=False)
                self._commit_past_markers()
                if not self.stats.buffered and self._inflight is None:
                    self.progress_at = self.clock()  # nothing held: nothing to be late with
            self._flush_all()
            return 0
        finally:
            try:
                if own_writer:
                    self._writer.shutdown(wait=True)  # a write still running ends before the store closes
                    self._writer = None
                self.consumer.close()  # leaves the group; commits nothing (auto-commit is off)
            finally:
                self.store.close()

    def committed_offsets(self) -> dict[tuple[str, int], int | None]:
        """``(topic, partition) -> offset`` of each partition the consumer holds: the last offset the loader
        committed, else the committed offset it started from, else ``OFFSET_BEGINNING`` or ``OFFSET_END``
        (nothing committed: where ``auto.offset.reset`` starts) or None (not read yet).  Safe from another
        thread."""
        committed, starts = self._committed_at, self._starts
        return {tp: committed.get(tp, starts.get(tp)) for tp in sorted(self._assigned)}

    def excused(self, now: float, long_write: float) -> bool:
        """Whether the loader may be committing nothing for a reason of its own: it is stopping, its store does
        not answer, or a write has been running for ``long_write`` seconds or more (safe from another thread)."""
        flight = self._inflight
        return (self.stop.is_set() or not self.stats.healthy
                or (flight is not None and not flight.future.done() and now - flight.started >= long_write))

    def stalled_for(self, now: float) -> float | None:
        """Seconds since the loader last made progress as of ``now`` (a commit, or a turn of its loop holding
        nothing, so a loader with nothing in hand never counts), while the store answers, no write is running
        and it is not stopping; else None.

        Safe from another thread (it reads a few attributes): the loader's own thread may be the one stuck,
        as in a synchronous commit that never returns.
        """
        return None if self.excused(now, 0.0) else now - self.progress_at

    def _poll_timeout(self, now: float) -> float:
        """How long the next poll may wait: until the oldest batch is due (at most 0.2 s).

        ``consume`` waits its whole timeout unless it fills up, so a longer
        wait would add its remainder to a due batch's latency.
        """
        wait = 0.2 if self._inflight is None else 0.02  # a finished write is committed soon after
        for tp, buffer in self._buffers.items():
            if buffer.values and tp not in self._pending:
                wait = min(wait, buffer.started + self.batch_timeout - now)
        return max(wait, 0.005)

    def _buffer(self, message, now: float) -> _Buffer | None:
        """Add one consumed record to its partition's buffer (None for an error or a revoked partition).

        A record of a partition whose committed offset is not read yet is
        held back (None).  For a partition with a pending write intent, the
        record at the intent's last offset completes the first batch, and a
        record past it completes the batch without itself; the batch goes to
        :attr:`_ready` and the partition is cut as usual from then on.
        """
        err = message.error()
        if err is not None:
            if err.code() != _partition_eof():
                log.warning("consumer error: %s", err)
            return None
        tp = (message.topic(), message.partition())
        if tp in self._revoked:
            return None
        if tp in self._unchecked:
            self._held.setdefault(tp, []).append(message)
            return None
        buffer = self._buffers.get(tp)
        if buffer is None:
            buffer = self._buffers[tp] = _Buffer(self.topics.get(tp[0], ENRICHED), tp[0], tp[1])
        offset = message.offset()
        end = self._pending.get(tp)
        if end is not None and offset > end:
            del self._pending[tp]
            if buffer.values:
                self._ready[tp] = buffer.cut()
        buffer.add(message.value() or b"", offset, message.timestamp()[1], now)
        if end is not None and offset == end:
            del self._pending[tp]
            self._ready[tp] = buffer.cut()
        return buffer

    def _take(self, messages) -> None:
        now = self.clock()
        buffers, pending, revoked, unchecked = self._buffers, self._pending, self._revoked, self._unchecked
        size = self.batch_size
        index, count = 0, len(messages)
        while index < count:
            message = messages[index]
            tp = (message.topic(), message.partition())
            buffer = buffers.get(tp)
            if (buffer is not None and buffer.values and message.error() is None and tp not in pending
                    and tp not in revoked and tp not in unchecked):
                # the common case, compiled (ext.take_run): the run of records of a partition with records
                # buffered, no write intent pending and nothing held back, up to the end of its batch
                index, offset = take_run(messages, index, tp[0], tp[1], buffer.values, size)
                buffer.last_offset = offset
            else:
                index += 1
                buffer = self._buffer(message, now)
                if self._ready:
                    self._write_ready()
                if buffer is None or not buffer.values or (buffer.topic, buffer.partition) in pending:
                    continue
                offset = buffer.last_offset
            # cut at multiples of batch_size: a re-read after a crash cuts the same batches
            if (offset + 1) % size == 0 or len(buffer.values) >= size:
                self._write(buffer)
        self._update_buffered()

    def _write_ready(self, deadline: float | None = None) -> None:
        """Write the completed first batches of the partitions that had a pending write intent."""
        while self._ready:
            tp = next(iter(self._ready))
            self._write_batch(self._ready.pop(tp), deadline)

    def _flush_due(self, now: float) -> None:
        self._write_ready()
        for tp, buffer in list(self._buffers.items()):
            if buffer.values and tp not in self._pending and now - buffer.started >= self.batch_timeout:
                self._write(buffer)
        self._update_buffered()

    def _flush_all(self) -> None:
        deadline = self.clock() + self.shutdown_grace
        self._finish_inflight(deadline)
        self._write_ready(deadline)
        for tp, buffer in list(self._buffers.items()):
            if buffer.values:
                if tp in self._pending:
                    log.info("%s[%d]: %d records of the batch ending at offset %d left unwritten and uncommitted "
                             "(its write intent stays for the next owner)", tp[0], tp[1], len(buffer.values),
                             self._pending[tp])
                    continue
                if self.clock() > deadline:
                    log.warning("shutdown grace over: %d records left unwritten (uncommitted, will be re-read)",
                                sum(len(b.values) for b in self._buffers.values()))
                    return
                self._write(buffer, deadline=deadline)

    def _update_buffered(self) -> None:
        self.stats.buffered = (sum(len(b.values) for b in self._buffers.values())
                               + sum(len(b) for b in self._ready.values())
                               + sum(len(held) for held in self._held.values()))

    # ------------------------------------------------------------------ writing

    def _write(self, buffer: _Buffer, deadline: float | None = None) -> None:
        """Write one partition's batch (retrying while the store is unavailable), then commit it: on the
        writer threads while the loop reads on, or, at shutdown (``deadline``), here."""
        if deadline is None:
            self._start_write(buffer.cut())
        else:
            self._write_batch(buffer.cut(), deadline)

    def _start_write(self, batch: Batch) -> None:
        """Prepare the batch at once; once the batch before is written and committed, commit the batch's
        write intent and start its write on a writer thread.

        The preparation (:meth:`~loaders.base.Store.prepare`: parsing,
        compressing) runs while the batch before is written: on the loop, or,
        for a store whose preparation mostly lets go of the interpreter's lock
        (:attr:`~loaders.base.Store.prepare_off_loop`), on a writer thread,
        where the write waits for it, so the loop reads on meanwhile.

        One batch is written at a time: the one before is finished (written
        and committed) first, so commits keep the order of the serial loop and
        the same partition's offsets never go back.  A partition whose batch
        is being written is not committed past it (:meth:`_commit_past_markers`).
        """
        if self.store.prepare_off_loop:
            prepared = self._writer.submit(self.store.prepare, batch)
        else:  # here, while the batch before is still being written
            prepared = Future()
            prepared.set_result(self.store.prepare(batch))
        self._finish_inflight()
        if self.exactly_once:
            try:
                self._commit_intent(batch)
            except _IntentNotCommitted as exc:
                self._write_batch(prepared.result(), failure=exc)  # the intent retried, then the write, here
                return
        self._inflight = _InFlight(batch, prepared, self._writer.submit(self._write_prepared, prepared), self.clock())

    def _write_prepared(self, prepared: Future) -> None:
        """On a writer thread: the batch written once prepared (a preparation that failed raises here)."""
        self.store.write(prepared.result())

    def _finish_inflight(self, deadline: float | None = None, *, block: bool = True, retry: bool = True) -> None:
        """The batch being written, once written: committed.  If the store was unavailable, it is
        retried here like any write (``retry``; else left uncommitted to the partition's next owner).
        ``block=False`` returns at once while the write runs; ``deadline`` bounds the wait."""
        flight = self._inflight
        if flight is None or (not block and not flight.future.done()):
            return
        self._inflight = None
        try:
            flight.future.result(timeout=None if deadline is None else max(deadline - self.clock(), 0.0))
        except FutureTimeout:
            log.warning("shutdown grace over while batch %s is being written: left uncommitted", flight.batch.token)
            return
        except StoreUnavailable as exc:
            if retry:
                # the write failed after its preparation, which it waited for: retried with it
                self._write_batch(flight.prepared.result(), deadline, intent=False, started=flight.started,
                                  failure=exc)
            else:
                log.info("%s[%d] revoked while its batch %s could not be written: left to its next owner",
                         flight.batch.topic, flight.batch.partition, flight.batch.token)
            return
        self._written(flight.batch, flight.started)

    def _write_batch(self, batch: Batch, deadline: float | None = None, *, intent: bool | None = None,
                     started: float | None = None,
                     failure: StoreUnavailable | _IntentNotCommitted | None = None) -> None:
        """Commit the batch's write intent (``exactly_once``; ``intent=False`` when it already is), write
        it (retrying while the store is unavailable; ``failure``: how a first attempt, made elsewhere,
        failed), then commit the offset after it."""
        self._finish_inflight(deadline)
        tp = (batch.topic, batch.partition)
        started = self.clock() if started is None else started
        delay = self.retry_initial
        paused = False
        intent = self.exactly_once if intent is None else intent
        try:
            while True:
                try:
                    if failure is not None:  # the first attempt, made elsewhere: handled as one made here
                        exc, failure = failure, None
                        raise exc
                    if intent:
                        self._commit_intent(batch)
                        intent = False
                    self.store.write(batch)
                    break
                except (StoreUnavailable, _IntentNotCommitted) as exc:
                    self.stats.retries += 1
                    unavailable = isinstance(exc, StoreUnavailable)
                    if unavailable:
                        self.stats.healthy = 0
                    if not paused:
                        if unavailable:
                            log.warning("%s unavailable (%s): pausing consumption, retrying batch %s",
                                        self.store.name, exc, batch.token)
                        else:
                            log.warning("%s: pausing consumption, retrying it", exc)
                        self._pause()
                        paused = True
                    if deadline is None and self.stop.is_set():  # SIGTERM during an outage
                        deadline = self.clock() + self.shutdown_grace
                    if deadline is not None and self.clock() + delay > deadline:
                        log.warning("shutdown grace over while %s: batch %s left uncommitted",
                                    f"{self.store.name} is unavailable" if unavailable
                                    else "its write intent is not committed", batch.token)
                        return
                    self._wait(delay)
                    delay = min(delay * 2, self.retry_max)
                    if tp in self._revoked:
                        log.info("%s[%d] revoked while retrying: batch %s left to its next owner",
                                 batch.topic, batch.partition, batch.token)
                        return
        finally:
            if paused:
                self._resume()
        if paused:
            log.info("%s available again: batch %s written", self.store.name, batch.token)
        self._written(batch, started)

    def _written(self, batch: Batch, started: float) -> None:
        """After a batch's write: commit the offset after it, count it."""
        self.stats.healthy = 1
        self._commit(batch)
        self.stats.batches += 1
        self.stats.records[batch.kind] = self.stats.records.get(batch.kind, 0) + len(batch)
        self.stats.batch_latency.observe(self.clock() - started)
        self.stats.batch_records.observe(len(batch))
        if batch.first_timestamp_ms > 0:
            self.stats.commit_delay.observe(max(time.time() - batch.first_timestamp_ms / 1000.0, 0.0))
        self._update_lag(batch)

    def _update_lag(self, batch: Batch) -> None:
        """Records of the batch's partition after the committed offset (from the last fetch's high watermark)."""
        from confluent_kafka import TopicPartition

        try:
            _low, high = self.consumer.get_watermark_offsets(TopicPartition(batch.topic, batch.partition),
                                                             cached=True)
        except Exception:  # a stand-in consumer, or no fetch yet: no figure rather than a wrong one
            return
        if high is not None and high >= 0:
            self.stats.lag[(batch.topic, batch.partition)] = max(int(high) - batch.last_offset - 1, 0)

    def _commit_intent(self, batch: Batch) -> None:
        """Commit the batch's first offset with its write intent as metadata (synchronously)."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            self.consumer.commit(offsets=[TopicPartition(batch.topic, batch.partition, batch.first_offset,
                                                         intent_metadata(batch))], asynchronous=False)
        except KafkaException as exc:
            raise _IntentNotCommitted(f"the write intent of batch {batch.token} was not committed ({exc})") from exc
        self.progress_at = self.clock()

    def _commit(self, batch: Batch) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            self.consumer.commit(offsets=[TopicPartition(batch.topic, batch.partition, batch.last_offset + 1)],
                                 asynchronous=False)
        except KafkaException as exc:
            # e.g. the partition moved during a rebalance: its next owner rewrites the batch
            log.warning("commit of batch %s failed (%s); it will be written again", batch.token, exc)
            return
        self._committed_at[(batch.topic, batch.partition)] = batch.last_offset + 1
        self.progress_at = self.clock()

    def _commit_past_markers(self) -> None:
        """Commit the consumer's position of partitions with nothing buffered, where it passed the last commit.

        A topic written in transactions (enrich's ``exactly_once``) ends each
        transaction with a marker that takes an offset and is never delivered:
        after a batch ending at offset N the position is past N + 1 once the
        marker is read.  Everything before the position was written and
        committed, or is a marker, so committing the position shows the
        partition with no lag (what lag monitors and ``committed == end``
        checks expect).
        """
        from confluent_kafka import KafkaException, TopicPartition

        writing = self._inflight.tp if self._inflight is not None else None
        idle = [tp for tp, at in self._committed_at.items()
                if tp in self._assigned and tp != writing and tp not in self._pending and tp not in self._ready
                and tp not in self._unchecked and tp not in self._held
                and not (tp in self._buffers and self._buffers[tp].values)]
        if not idle:
            return
        try:
            positions = self.consumer.position([TopicPartition(topic, partition) for topic, partition in idle])
        except (AttributeError, KafkaException):  # a stand-in consumer, or no position yet
            return
        ahead = [p for p in positions if p.error is None and p.offset > self._committed_at[(p.topic, p.partition)]]
        if not ahead:
            return
        try:
            self.consumer.commit(offsets=[TopicPartition(p.topic, p.partition, p.offset) for p in ahead],
                                 asynchronous=False)
        except KafkaException as exc:
            log.warning("commit past transaction markers failed (%s); tried again at the next poll", exc)
            return
        for p in ahead:
            self._committed_at[(p.topic, p.partition)] = p.offset
            self.stats.lag[(p.topic, p.partition)] = 0
        self.progress_at = self.clock()

    def _pause(self) -> None:
        self.consumer.pause(self.consumer.assignment())

    def _resume(self) -> None:
        assignment = self.consumer.assignment()
        if self._paused_unchecked:  # those stay paused until their committed offsets are read
            assignment = [p for p in assignment if (p.topic, p.partition) not in self._paused_unchecked]
        self.consumer.resume(assignment)

    def _wait(self, seconds: float) -> None:
        """Sleep while staying in the group: consume() on paused partitions returns nothing but serves
        heartbeats and rebalances (records of newly assigned partitions are kept for later)."""
        end = self.clock() + seconds
        while (left := end - self.clock()) > 0:
            messages = self.consumer.consume(CONSUME_MAX, min(left, 0.5))
            if messages:
                self._hold(messages)

    def _hold(self, messages) -> None:
        """Records that arrive while paused (a newly assigned partition): buffered without writing."""
        now = self.clock()
        for message in messages:
            self._buffer(message, now)
        self._pause()


def _names(tps) -> str:
    """``topic[partition], ...`` for a log line."""
    return ", ".join(f"{t}[{p}]" for t, p in tps)


def _logical_offset(reset: str) -> int | None:
    """Where ``auto.offset.reset`` starts a partition with no committed offset, as a logical offset
    (None for \"error\": librdkafka's own read then says so)."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

    return {"smallest": OFFSET_BEGINNING, "earliest": OFFSET_BEGINNING, "beginning": OFFSET_BEGINNING,
            "largest": OFFSET_END, "latest": OFFSET_END, "end": OFFSET_END}.get(reset)


def _offset_text(offset: int | None) -> str:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

    return {OFFSET_BEGINNING: "the start", OFFSET_END: "the end", None: "the offset librdkafka reads"}.get(
        offset, str(offset))


def incremental_rebalancing(settings: dict) -> bool:
    """Whether a consumer of these librdkafka ``settings`` is rebalanced incrementally (cooperatively)."""
    return ("cooperative" in str(settings.get("partition.assignment.strategy", ""))
            or str(settings.get("group.protocol", "classic")) == "consumer")


def _partition_eof() -> int:
    from confluent_kafka import KafkaError

    return KafkaError._PARTITION_EOF


def build_loader(config, kind: str, stats: LoadStats | None = None, join_state: JoinState | None = None,
                 statistics_interval: float = 5.0) -> Loader:
    """The loader of ``kind`` ("clickhouse" or "s3") as ``config`` describes it; with ``join_state``, its
    consumer reports its group join state there (librdkafka's statistics) every ``statistics_interval`` s."""
    from confluent_kafka import Consumer

    from snowmelt.config import consumer_settings

    if kind == "clickhouse":
        from loaders.clickhouse import ClickHouseStore
        store: Store = ClickHouseStore(config.clickhouse)
    elif kind == "s3":
        from loaders.s3 import S3Store
        store = S3Store(config.s3, connect_timeout=config.s3.connect_timeout,
                        read_timeout=config.s3.read_timeout, max_attempts=config.s3.max_attempts)
    else:
        raise ValueError(f"unknown loader {kind!r} (clickhouse or s3)")
    group = group_id(config, kind)
    load = config.load
    from snowmelt.producer import kafka_log

    settings = consumer_settings(config.kafka, **{
        # librdkafka's lines through logging: one per distinct message a minute, not one
        # per reconnect attempt for as long as the broker is down
        "logger": kafka_log,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": load.auto_offset_reset,
        # a store outage is waited out while polling; a process that stops polling is dropped
        "max.poll.interval.ms": 300_000,
        # a loader killed (-9) is noticed in 6 s, the broker's minimum (group.min.session.timeout.ms),
        # and its partitions move to the others: heartbeats come from librdkafka's own thread, so a
        # long write does not miss them (kafka.consumer may set longer ones)
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        **FETCH_SETTINGS,
        **({"stats_cb": join_state.on_stats, "statistics.interval.ms": max(int(statistics_interval * 1000), 100)}
           if join_state is not None else {}),
    })
    consumer = Consumer(settings)
    topics = {config.topics.enriched: ENRICHED, config.topics.bad: BAD}
    return Loader(consumer, store, topics, batch_size=load.batch_size, batch_timeout=load.batch_timeout,
                  retry_initial=load.retry_initial, retry_max=load.retry_max, shutdown_grace=load.shutdown_grace,
                  stats=stats or LoadStats(store.name), exactly_once=load.exactly_once,
                  incremental=incremental_rebalancing(settings),
                  offset_reset=str(settings.get("auto.offset.reset", "latest")))


def group_id(config, kind: str) -> str:
    """The consumer group of the loaders of ``kind``."""
    return config.load.clickhouse_group_id if kind == "clickhouse" else config.load.s3_group_id


def start_stall_watches(config, kind: str, loader: Loader, join_state: JoinState, broker: Callable[[], None],
                        timeout: float, interval: float) -> Callable[..., None]:
    """Two daemon threads that end the process with status 4 (a stall, its supervisor restarts it) when the
    loader's consumer has been left outside its group for ``timeout`` seconds (:mod:`snowmelt.membership`),
    or when the loader has held records that long with nothing committed while ``broker`` (the readiness
    check's) answers (:func:`watch_progress`), checked every ``interval``.  Returns ``stop(wait=True)``:
    the threads end at their next check, and with ``wait`` it waits for them (a broker request in flight
    takes at most :data:`WATCH_JOIN_SECONDS`): a thread left inside a librdkafka call while the interpreter
    exits can crash the process."""
    from snowmelt.lifecycle import EXIT_STALLED, exit_now
    from snowmelt.stacks import format_stacks

    group = group_id(config, kind)
    done = threading.Event()

    def on_outside(verdict: Verdict, seconds: float) -> None:
        exit_outside(log, group, verdict, seconds, format_stacks({}))

    def on_stalled(seconds: float) -> None:
        exit_now(log, EXIT_STALLED, "stalled: records in hand (%d buffered) and nothing committed for %.0fs while "
                 "the store and the broker answer; exiting without committing so that the loader is restarted and "
                 "the records are read again. Where it was:\n%s", loader.stats.buffered, seconds, format_stacks({}))

    def on_waiting(stalled: list[Stalled]) -> None:
        exit_now(log, EXIT_STALLED, "stalled: %s, while the loader holds the partition and its store and the broker "
                 "answer; exiting so that the loader is restarted and reads from its committed offsets. Where it "
                 "was:\n%s", "; ".join(map(str, stalled)), format_stacks({}))

    # a batch may wait batch_timeout to be due before it is written and committed
    late = timeout + config.load.batch_timeout
    # a describer of its own: the membership watch's is used from its thread
    waiting = waiting_check(loader, GroupDescriber.of(config.kafka, group).ends, StallWatch(late), interval)
    threads = [
        threading.Thread(target=watch_membership, name="snowmelt-membership-watch", daemon=True,
                         args=(join_state, GroupDescriber.of(config.kafka, group), MembershipWatch(timeout),
                               loader.stop.is_set, on_outside, done, interval)),
        threading.Thread(target=watch_progress, name="snowmelt-progress-watch", daemon=True,
                         args=(loader, late, broker, on_stalled, done, interval, waiting, on_waiting)),
    ]
    for thread in threads:
        thread.start()

    def stop(wait: bool = True) -> None:
        done.set()
        if wait:
            deadline = time.monotonic() + WATCH_JOIN_SECONDS
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
    return stop


#: the longest a stall watch's broker request takes (a request's timeout, then its result's), waited for at exit
WATCH_JOIN_SECONDS = 20.0


def watch_progress(loader: Loader, timeout: float, broker: Callable[[], None],
                   on_stalled: Callable[[float], None], done: threading.Event, interval: float,
                   waiting: Callable[[float], list[Stalled]] | None = None,
                   on_waiting: Callable[[list[Stalled]], None] | None = None) -> None:
    """Every ``interval`` seconds until ``done``: ``on_stalled(seconds)`` once the loader has held records
    for ``timeout`` seconds with nothing committed (:meth:`Loader.stalled_for`), a commit that never returns
    for one, while ``broker`` (raises when the broker does not answer) says the broker answers: an outage
    starts the count again; and ``on_waiting(stalled)`` once ``waiting(now)`` finds partitions of the
    loader's whose records wait unread (:func:`waiting_check`).  A thread's body."""
    while not done.wait(interval):
        now = loader.clock()
        seconds = loader.stalled_for(now)
        if seconds is not None and seconds >= timeout:
            try:
                broker()
            except Exception as exc:
                log.warning("records held and nothing committed for %.0fs, but the broker does not answer (%s): "
                            "waiting for it", seconds, exc)
                loader.progress_at = loader.clock()
                continue
            on_stalled(seconds)
            return
        stalled = waiting(now) if waiting is not None else []
        if stalled:
            on_waiting(stalled)
            return


def waiting_check(loader: Loader, ends: Callable[..., dict], watch: StallWatch,
                  long_write: float) -> Callable[[float], list[Stalled]]:
    """``check(now)``: the partitions the loader holds whose records have waited past a committed offset
    that has not moved for the watch's timeout (:class:`snowmelt.stall.StallWatch`).  The committed offsets
    are the loader's own (:meth:`Loader.committed_offsets`; a partition never committed, read from its
    start, counts from its first offset); the ends are the broker's (``ends``,
    :meth:`snowmelt.membership.GroupDescriber.ends`): a loader that no longer fetches a partition holds
    nothing, and its consumer's own view of the end is stale.  Every count starts again while the loader is
    excused (:meth:`Loader.excused`: stopping, its store down, a write running ``long_write`` seconds) and
    when the broker does not answer."""
    from confluent_kafka import OFFSET_BEGINNING

    def check(now: float) -> list[Stalled]:
        if loader.excused(now, long_write):
            watch.reset()
            return []
        held = loader.committed_offsets()
        from_start = [tp for tp, offset in held.items() if offset == OFFSET_BEGINNING]
        try:
            last = ends(list(held))
            firsts = ends(from_start, first=True) if from_start else {}
        except Exception as exc:  # an outage: not counted
            log.debug("waiting records not checked: %s", exc)
            watch.reset()
            return []
        committed = {}
        for tp, offset in held.items():
            if offset == OFFSET_BEGINNING:
                committed[tp] = firsts.get(tp)
            else:  # a logical offset other than the start (the end at assignment) is not known: not counted
                committed[tp] = offset if offset is not None and offset >= 0 else None
        return watch.check(committed, last.get, 0, now)
    return check


def broker_check(config) -> Callable[[], None]:
    """A check (:func:`snowmelt.health.kafka_check`) that the broker answers with the loader's topics."""
    from snowmelt import health

    return health.kafka_check(health.kafka_client_settings(config.kafka), [config.topics.enriched, config.topics.bad])


def readiness(config, kind: str, loader: Loader, kafka: Callable[[], None]):
    """``/ready`` of a loader: the broker answers with both topics (``kafka``), the store answers, not
    stopping."""
    from snowmelt import health

    checks = {
        "kafka": kafka,
        "store": (health.clickhouse_check(config.clickhouse) if kind == "clickhouse"
                  else health.s3_check(config.s3)),
        "stopping": health.flag_check(loader.stop.is_set, "stopping (SIGTERM): finishing the batches in hand"),
    }
    return health.Readiness(checks)


def run(config, kind: str, *, serve: Callable[[Store], Callable[..., None]] | None = None) -> int:
    """``snowmelt load clickhouse|s3``: load until SIGTERM/SIGINT; returns the exit status.

    ``serve(store)``, when given, is called once the store is open and returns
    a ``stop(wait=True)`` called at shutdown: the application above the loader
    serves SQL over a chdb store through it (``snowmelt.sql_endpoint.serve_loader_sql``).
    """
    import signal

    from prometheus_client import REGISTRY

    from snowmelt import health
    from snowmelt.lifecycle import on_stop_signals, stall_timeout

    watch_timeout = stall_timeout("load", config.load.stall_timeout)  # refused before anything is made
    watch_interval = min(5.0, watch_timeout / 4)
    # three statistics missed: the loader's thread is not polling, and its view is unknown
    join_state = JoinState(max_age=3 * watch_interval) if watch_timeout else None
    loader = build_loader(config, kind, join_state=join_state, statistics_interval=watch_interval)
    # the store is opened first (tables created, bucket checked): /metrics answers once it is usable,
    # /ready while the broker and the store answer now
    loader.open()
    stop_sql = serve(loader.store) if serve is not None else None
    kafka = broker_check(config)  # one client for /ready and the stall watch
    if config.load.metrics_port:
        REGISTRY.register(loader.stats)
        health.serve(config.load.metrics_host, config.load.metrics_port, readiness(config, kind, loader, kafka))

    watching: Callable[..., None] | None = None  # the stall watches' stop, once they run

    def on_signal(signum: int) -> None:
        log.info("stopping on %s: writing and committing the batches in hand", signal.Signals(signum).name)
        loader.stop.set()
        if watching is not None:
            watching(wait=False)  # nothing is judged while stopping: the watches end while the loader drains
        if stop_sql is not None:
            stop_sql(wait=False)

    on_stop_signals(on_signal)
    log.info("loading %s and %s into %s (group %s)", config.topics.enriched, config.topics.bad, kind,
             group_id(config, kind))
    if join_state is not None:
        watching = start_stall_watches(config, kind, loader, join_state, kafka, watch_timeout, watch_interval)
    try:
        status = loader.run()
    finally:
        if watching is not None:
            watching()
        if stop_sql is not None:
            stop_sql()
    log.info("stopped: the batches in hand are written and committed")
    return status
