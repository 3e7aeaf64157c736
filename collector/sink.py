"""Where the collector writes: Kafka in production, memory in tests and `snowmelt up`.

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

import asyncio
import collections
import logging
import threading
import time
from typing import Iterable, Sequence

from confluent_kafka import KafkaError, KafkaException, Producer

from snowmelt.config import Config, producer_settings

log = logging.getLogger("snowmelt.collector.sink")

Record = tuple  # (key: bytes | None, value: bytes)


class SinkUnavailable(Exception):
    """The sink cannot take records now; the caller should answer 503."""


class Sink:
    """Interface of a collector sink."""

    #: Largest record value the sink accepts, in bytes.
    max_record_bytes: int

    @property
    def healthy(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def buffer_fill(self) -> int:
        """Records accepted but not yet acknowledged."""
        return 0

    async def start(self) -> None:
        """Connect; returns when ready or raises."""

    async def send(self, raw: Sequence[Record], bad: Sequence[bytes] = ()) -> None:  # pragma: no cover
        raise NotImplementedError

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


class _DeliveryPoller(threading.Thread):
    """Serves librdkafka's delivery reports and hands them to the event loop in batches.

    One ``call_soon_threadsafe`` per poll round instead of per message keeps the
    loop's wake-ups independent of the message rate.
    """

    def __init__(self, producer: Producer, loop: asyncio.AbstractEventLoop):
        super().__init__(name="snowmelt-kafka-poll", daemon=True)
        self.producer = producer
        self.loop = loop
        self.pending: collections.deque = collections.deque()
        self.stopping = threading.Event()

    def on_delivery(self, fut: asyncio.Future, err, _msg) -> None:
        self.pending.append((fut, err))

    def run(self) -> None:
        pending = self.pending
        while not self.stopping.is_set():
            self.producer.poll(0.05)
            if pending:
                batch = []
                while pending:
                    batch.append(pending.popleft())
                try:
                    self.loop.call_soon_threadsafe(_resolve, batch)
                except RuntimeError:  # loop closed during shutdown
                    return


def _resolve(batch: list) -> None:
    for fut, err in batch:
        if fut.done():
            continue
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(SinkUnavailable(f"delivery failed: {err}"))


class KafkaSink(Sink):
    """Writes raw records and bad rows to Kafka with confluent-kafka (librdkafka)."""

    def __init__(self, config: Config):
        self.config = config
        cc = config.collector
        self.raw_topic = config.topics.raw
        self.bad_topic = config.topics.bad
        self.acked = cc.delivery == "acked"
        self.produce_timeout = cc.produce_timeout
        self.max_record_bytes = min(cc.max_payload_size, config.kafka.max_message_bytes)
        self._healthy = False
        self._last_error = "not started"
        overrides = {
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": cc.buffer_max_messages,
            "queue.buffering.max.kbytes": cc.buffer_max_kbytes,
            # acked: give up (and answer 503) after produce_timeout;
            # buffered: the 2xx is already sent, so retry until delivered.
            "message.timeout.ms": int(cc.produce_timeout * 1000) if self.acked else 0,
            "error_cb": self._on_error,
        }
        self.settings = producer_settings(config.kafka, **overrides)
        self.producer: Producer | None = None
        self._poller: _DeliveryPoller | None = None
        self._probe_task: asyncio.Task | None = None
        self._probe_now = asyncio.Event()
        self.undelivered_after_ack = 0

    # -------------------------------------------------------------- health

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def last_error(self) -> str:
        return self._last_error

    def _on_error(self, err: KafkaError) -> None:
        # Runs on the poll thread.
        code = err.code()
        if code in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE,
                    KafkaError._AUTHENTICATION) or err.fatal():
            if self._healthy:
                log.warning("kafka unreachable: %s", err.str())
            self._healthy = False
            self._last_error = err.str()
            loop = self._poller.loop if self._poller else None
            if loop is not None:
                try:
                    loop.call_soon_threadsafe(self._probe_now.set)
                except RuntimeError:
                    pass

    def _probe_blocking(self) -> bool:
        try:
            md = self.producer.list_topics(self.raw_topic, timeout=2.0)
            topic = md.topics.get(self.raw_topic)
            if topic is not None and topic.error is not None and \
                    topic.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                self._last_error = topic.error.str()
                return False
            return bool(md.brokers)
        except KafkaException as exc:
            self._last_error = str(exc)
            return False

    async def probe(self) -> bool:
        """Ask the cluster for metadata; updates and returns the health flag."""
        ok = await asyncio.get_running_loop().run_in_executor(None, self._probe_blocking)
        if ok and not self._healthy:
            log.info("kafka reachable at %s", self.config.kafka.bootstrap_servers)
        self._healthy = ok
        return ok

    async def _probe_loop(self, interval: float) -> None:
        while True:
            try:
                await asyncio.wait_for(self._probe_now.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass
            self._probe_now.clear()
            try:
                await self.probe()
            except Exception:  # never let the probe loop die
                log.exception("kafka health probe failed")

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.producer = Producer(self.settings)
        self._poller = _DeliveryPoller(self.producer, loop)
        self._poller.start()
        await self.probe()
        if not self._healthy:
            log.warning("kafka not reachable yet at %s (%s); answering 503 until it is",
                        self.config.kafka.bootstrap_servers, self._last_error)
        self._probe_task = loop.create_task(self._probe_loop(self.config.collector.health_probe_interval))

    def buffer_fill(self) -> int:
        return len(self.producer) if self.producer is not None else 0

    async def close(self, grace: float) -> int:
        if self._probe_task is not None:
            self._probe_task.cancel()
        if self.producer is None:
            return 0
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + grace
        left = len(self.producer)
        while left and time.monotonic() < deadline:
            left = await loop.run_in_executor(None, self.producer.flush, min(1.0, max(deadline - time.monotonic(), 0)))
        if self._poller is not None:
            self._poller.stopping.set()
            await loop.run_in_executor(None, self._poller.join, 2.0)
        self.producer.poll(0)
        left = len(self.producer)
        if left:
            log.error("%d records were not delivered before the shutdown grace period ended", left)
        return left

    # -------------------------------------------------------------- sending

    def _produce(self, topic: str, key, value: bytes, futures: list | None) -> None:
        if futures is None:
            self.producer.produce(topic, value, key)
            return
        fut = self._poller.loop.create_future()
        self.producer.produce(topic, value, key, on_delivery=lambda err, msg, f=fut: self._poller.on_delivery(f, err, msg))
        futures.append(fut)

    async def send(self, raw: Sequence[Record], bad: Sequence[bytes] = ()) -> None:
        if not self._healthy:
            raise SinkUnavailable(f"kafka unreachable: {self._last_error}")
        futures: list | None = [] if self.acked else None
        try:
            for key, value in raw:
                self._produce(self.raw_topic, key, value, futures)
            for value in bad:
                self._produce(self.bad_topic, None, value, futures)
        except BufferError as exc:
            raise SinkUnavailable("producer buffer full") from exc
        except KafkaException as exc:
            raise SinkUnavailable(str(exc)) from exc
        if futures:
            try:
                await asyncio.wait_for(_gather(futures), timeout=self.produce_timeout + 1.0)
            except asyncio.TimeoutError as exc:
                raise SinkUnavailable("no acknowledgement from kafka in time") from exc


async def _gather(futures: Iterable[asyncio.Future]) -> None:
    results = await asyncio.gather(*futures, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
