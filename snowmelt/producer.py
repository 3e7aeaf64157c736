"""A librdkafka producer served by the asyncio event loop it runs on.

confluent-kafka's :class:`~confluent_kafka.Producer` does its network I/O on
librdkafka's threads; delivery reports are handed to Python by ``poll()``.
:class:`LoopProducer` calls ``poll(0)`` from the event loop -- every
millisecond while acknowledgements are awaited, every 100 ms otherwise -- so
delivery callbacks resolve asyncio futures directly, with no extra Python
thread contending for the GIL.  Used by the collector (raw records) and by the
enrich worker (enriched events and bad rows): both need "this record is on the
broker" as an awaitable, at a few microseconds per record.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from confluent_kafka import Producer

from snowmelt.logs import RepeatFilter

# librdkafka logs each reconnect attempt; keep one line per distinct message a minute.
kafka_log = logging.getLogger("snowmelt.kafka")
kafka_log.addFilter(RepeatFilter(60.0))
log = logging.getLogger("snowmelt.producer")
log.addFilter(RepeatFilter(60.0))  # a callback that raises at every poll: one line a minute, not a thousand a second

#: librdkafka's RD_KAFKA_PARTITION_UA, ``produce``'s own default: the configured partitioner picks the partition.
#: Passed with the delivery callback as positional arguments: confluent-kafka parses a keyword argument by name
#: on every call, which cost 0.1-0.3 µs a record more in send_all.
ANY_PARTITION = -1


class LoopProducer:
    """``produce_acked`` returns a future resolved (on this loop) by the broker's acknowledgement.

    ``settings`` are librdkafka's (see :func:`snowmelt.config.producer_settings`);
    a failed delivery sets ``error_type(message)`` on the record's future.
    :meth:`start` must run on the loop that awaits the futures.
    """

    FAST_POLL = 0.001
    IDLE_POLL = 0.1

    def __init__(self, settings: dict[str, Any], error_type: Callable[[str], BaseException] = RuntimeError):
        self.settings = {"logger": kafka_log, **settings}
        self.error_type = error_type
        self.producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outstanding = 0
        self._pump_handle: asyncio.TimerHandle | None = None
        self._closed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.producer = Producer(self.settings)
        self._pump()

    @property
    def started(self) -> bool:
        return self.producer is not None

    def __len__(self) -> int:
        """Records not yet acknowledged (or failed) by the broker."""
        return len(self.producer) if self.producer is not None else 0

    # -------------------------------------------------------------- polling

    def _pump(self) -> None:
        self._pump_handle = None
        if self._closed:
            return
        try:
            self.producer.poll(0)
        except Exception:  # what a callback raised, re-raised by poll(): the pump must go on serving the others
            log.exception("a Kafka producer callback raised; polling goes on")
        finally:
            delay = self.FAST_POLL if self._outstanding else self.IDLE_POLL
            self._pump_handle = self._loop.call_later(delay, self._pump)

    def wake(self) -> None:
        """An acknowledgement is now awaited: make sure the next poll is a fast one."""
        handle = self._pump_handle
        if handle is not None and handle.when() - self._loop.time() > self.FAST_POLL:
            handle.cancel()
            self._pump_handle = self._loop.call_later(self.FAST_POLL, self._pump)

    def poll(self) -> None:
        """Serve the delivery reports that are ready now."""
        self.producer.poll(0)

    def _on_delivery(self, fut: asyncio.Future, err) -> None:
        self._outstanding -= 1
        if fut.done():
            return
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(self.error_type(f"delivery failed: {err}"))

    # -------------------------------------------------------------- producing

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Enqueue without awaiting the acknowledgement (``BufferError`` when the buffer is full)."""
        self.producer.produce(topic, value, key)

    def produce_acked(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        """Enqueue; the future resolves when the broker acknowledged the record.

        Raises ``BufferError`` when librdkafka's buffer is full and
        ``KafkaException`` for a record it refuses outright; call :meth:`wake`
        after a burst so that the acknowledgements are polled for promptly.
        """
        fut = self._loop.create_future()
        on_delivery = self._on_delivery
        self.producer.produce(topic, value, key, ANY_PARTITION, lambda err, _msg: on_delivery(fut, err))
        self._outstanding += 1
        return fut

    async def send_all(self, records: list[tuple[str, bytes | None, bytes]]) -> asyncio.Future:
        """Enqueue ``(topic, key, value)`` records; one future for all their acknowledgements.

        The future resolves to ``None`` once the broker acknowledged every
        record, or to ``error_type("N of M records not acknowledged: first
        error")``.  One delivery callback serves the group, so a record costs
        a ``produce`` call and a counter, not a future of its own.  Waits for
        room while librdkafka's buffer is full (backpressure).
        """
        acks = _GroupAcks(self, len(records))
        produce = self.producer.produce
        for topic, key, value in records:
            while True:
                try:
                    produce(topic, value, key, ANY_PARTITION, acks)
                    self._outstanding += 1
                    break
                except BufferError:
                    self.wake()
                    self.producer.poll(0)
                    await asyncio.sleep(self.FAST_POLL)
                except Exception as exc:  # refused outright (e.g. too large): never delivered
                    acks(exc, None, produced=False)
                    break
        self.wake()
        return acks.future

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        """:meth:`produce_acked`, waiting for room while the buffer is full (backpressure)."""
        while True:
            try:
                return self.produce_acked(topic, value, key)
            except BufferError:
                self.wake()
                self.producer.poll(0)
                await asyncio.sleep(self.FAST_POLL)

    async def close(self, grace: float) -> int:
        """Deliver what is buffered within ``grace`` seconds; the number of records left undelivered."""
        if self.producer is None:
            return 0
        self._closed = True
        if self._pump_handle is not None:
            self._pump_handle.cancel()
        deadline = time.monotonic() + grace
        while len(self.producer) and time.monotonic() < deadline:
            self.producer.poll(0)
            await asyncio.sleep(0.005)
        self.producer.poll(0)
        return len(self.producer)


class _GroupAcks:
    """The delivery callback of one :meth:`LoopProducer.send_all` group."""

    __slots__ = ("owner", "future", "left", "total", "failed", "first_error")

    def __init__(self, owner: LoopProducer, total: int):
        self.owner = owner
        self.future = owner._loop.create_future()
        self.left = self.total = total
        self.failed = 0
        self.first_error = None
        if total == 0:
            self.future.set_result(None)

    def __call__(self, err, _msg, produced: bool = True) -> None:
        if produced:
            self.owner._outstanding -= 1
        self.left -= 1
        if err is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = err
        if self.left == 0 and not self.future.done():
            if self.failed:
                self.future.set_exception(self.owner.error_type(
                    f"{self.failed} of {self.total} records not acknowledged: {self.first_error}"))
            else:
                self.future.set_result(None)
