"""Where the collector writes: Kafka in production (:mod:`collector.kafka_sink`), memory in tests and `snowmelt up`.

A sink takes the raw records of one request (and any bad rows it produced)
and returns once they are safe by the sink's delivery rule:

* ``acked`` -- every record is acknowledged by the broker (``acks=all``,
  idempotent producer).  A 2xx to the tracker then means the event is in Kafka.
* ``buffered`` -- every record is in the producer's bounded buffer, which
  retries until delivered (no message timeout) and is flushed on shutdown.

When a record cannot be made safe -- buffer full, broker unreachable, no
acknowledgement within ``produce_timeout`` -- ``send`` raises
:class:`SinkUnavailable` and the collector answers 503 so that the tracker
retries.  Kafka I/O runs on librdkafka's threads; the event loop only enqueues
and awaits futures that one poll thread resolves in batches.
"""
from __future__ import annotations

import abc
import asyncio
from typing import Sequence

from snowmelt.config import Config


Record = tuple  # (key: bytes | None, value: bytes)


def record_limit(config: Config) -> int:
    """The largest raw record, in bytes: a larger request is split to fit, or becomes a size_violation bad row."""
    return min(config.collector.max_payload_size, config.kafka.max_message_bytes)


class SinkUnavailable(Exception):
    """The sink cannot take records now; the caller should answer 503."""


class Sink(abc.ABC):
    """Interface of a collector sink."""

    #: Largest record value the sink accepts, in bytes.
    max_record_bytes: int
    #: True when the sink takes a larger record whole and its consumer splits it (``snowmelt up``'s queue):
    #: the collector then leaves the split (seconds of CPU for a megabyte of events) to the consumer.
    splits_later: bool = False

    @property
    @abc.abstractmethod
    def healthy(self) -> bool:
        """True while records can be sent."""

    def buffer_fill(self) -> int:
        """Records accepted but not yet acknowledged."""
        return 0

    async def start(self) -> None:
        """Connect; returns when ready or raises."""

    @abc.abstractmethod
    async def send(self, raw: Sequence[Record], bad: Sequence[bytes] = ()) -> None:
        """Make ``raw`` (key, value) records and ``bad`` rows safe, or raise SinkUnavailable."""

    async def close(self, grace: float) -> int:
        """Flush within ``grace`` seconds; returns the number of records left undelivered."""
        return 0


class MemorySink(Sink):
    """Keeps records in lists; used by unit tests and the embedded pipeline.

    ``fail`` makes every send raise :class:`SinkUnavailable` (a broker outage).
    """

    def __init__(self, max_record_bytes: int = 1_000_000):
        self.max_record_bytes = max_record_bytes
        self.raw: list[Record] = []
        self.bad: list[bytes] = []
        self.fail = False

    @property
    def healthy(self) -> bool:
        return not self.fail

    async def send(self, raw: Sequence[Record], bad: Sequence[bytes] = ()) -> None:
        if self.fail:
            raise SinkUnavailable("memory sink is failing")
        self.raw.extend(raw)
        self.bad.extend(bad)


class QueueSink(Sink):
    """A bounded in-process queue: the collector end of ``snowmelt up``.

    ``send`` puts the request's raw records and bad rows on one bounded
    :class:`asyncio.Queue` and returns, so a 2xx means the records are in the
    queue.  Items are ``("raw", value, seq)`` or ``("bad", row, seq)``; the
    consumer (``snowmelt.up``) takes them off in order.  A request whose records
    do not all fit is refused whole with :class:`SinkUnavailable` (the collector
    answers 503 and the tracker retries), so nothing is half-accepted.  After
    :meth:`close` every send is refused.

    With a write-ahead ``log`` (:class:`snowmelt.wal.WriteAheadLog`) the
    records are appended to it first and queued only once it says they are
    durable, so a 2xx means the records survive a crash; ``seq`` is their
    sequence number in the log (0 without one).  A failed append (a full disk)
    is refused with :class:`SinkUnavailable`.  The log resolves appends in
    order, so the queue holds records in sequence order.

    With ``split_later`` a record over ``max_record_bytes`` is taken whole, for
    the consumer to split (:func:`collector.payloads.refit`) where it enriches.

    The queue is bounded in records (``max_records``) and in bytes
    (``max_bytes``): the bytes of a request stay counted from :meth:`send` until
    the consumer calls :meth:`release` for them (once written), so records being
    logged or enriched count too.  While ``refusing`` holds a reason
    (``snowmelt up`` sets it when its memory nears its bound), every send is
    refused with it.
    """

    #: an item's kind by its number in the log, and back
    ITEM_KINDS = ("raw", "bad")
    LOG_KINDS = {"raw": 0, "bad": 1}

    def __init__(self, max_records: int = 10_000, max_record_bytes: int = 1_000_000,
                 max_bytes: int = 64 * 1024 * 1024, log=None, split_later: bool = False):
        if max_records < 1:
            raise ValueError("the queue must hold at least one record")
        self.max_record_bytes = max_record_bytes
        self.splits_later = split_later
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.log = log
        self.held_bytes = 0
        self.reserved = 0  # records of requests waiting for the log, counted against the queue's bound
        self.refusing: str | None = None
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=max_records)
        self.closed = False
        #: raw records and bad rows accepted so far
        self.accepted_raw = 0
        self.accepted_bad = 0

    @property
    def healthy(self) -> bool:
        return not self.closed and self.queue.qsize() + self.reserved < self.max_records and \
            self.refusing is None and self.held_bytes < self.max_bytes

    def buffer_fill(self) -> int:
        return self.queue.qsize() + self.reserved

    async def send(self, raw: Sequence[Record], bad: Sequence[bytes] = ()) -> None:
        if self.closed:
            raise SinkUnavailable("shutting down")
        if self.refusing is not None:
            raise SinkUnavailable(self.refusing)
        queue = self.queue
        count = len(raw) + len(bad)
        if queue.maxsize - queue.qsize() - self.reserved < count:
            raise SinkUnavailable("queue full")
        size = sum(len(value) for _key, value in raw) + sum(len(row) for row in bad)
        if self.held_bytes and self.held_bytes + size > self.max_bytes:
            raise SinkUnavailable("queue full (bytes)")
        items = [("raw", value) for _key, value in raw] + [("bad", row) for row in bad]
        self.held_bytes += size
        if self.log is None:
            self._enqueue(items, 0, len(raw))
            return
        try:
            first, durable = self.log.append([(self.LOG_KINDS[kind], value) for kind, value in items])
        except OSError as exc:
            self.held_bytes = max(0, self.held_bytes - size)
            raise SinkUnavailable(f"cannot write the write-ahead log: {exc}") from exc
        if durable is None:  # written; the log's policy does not wait for a sync
            self._enqueue(items, first, len(raw))
            return
        # Queued from the log's callback, which runs for each request in sequence order, even
        # when the request's handler is cancelled meanwhile (what is in the log gets processed).
        self.reserved += count

        def logged(future: asyncio.Future) -> None:
            self.reserved -= count
            if future.cancelled() or future.exception() is not None:
                self.held_bytes = max(0, self.held_bytes - size)
                return
            self._enqueue(items, first, len(raw))

        durable.add_done_callback(logged)
        try:
            await asyncio.shield(durable)
        except OSError as exc:
            raise SinkUnavailable(f"cannot sync the write-ahead log: {exc}") from exc

    def _enqueue(self, items: list[tuple[str, bytes]], first: int, raw: int) -> None:
        # the room was checked (and reserved) in send: put_nowait cannot find the queue full
        put = self.queue.put_nowait
        for i, (kind, value) in enumerate(items):
            put((kind, value, first + i if first else 0))
        self.accepted_raw += raw
        self.accepted_bad += len(items) - raw

    def release(self, items: Sequence[tuple]) -> None:
        """The consumer is done with ``items`` (taken off the queue): their bytes no longer count."""
        self.held_bytes = max(0, self.held_bytes - sum(len(item[1]) for item in items))

    async def close(self, grace: float) -> int:
        """Refuse further sends; what is queued stays for the consumer to drain."""
        self.closed = True
        return 0
