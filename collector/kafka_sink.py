"""The collector's Kafka sink: raw records and bad rows written with confluent-kafka (librdkafka).

Its own module so that importing the collector's app (``snowmelt up`` does, with
a :class:`~collector.sink.QueueSink`) does not load librdkafka; see
:mod:`collector.sink` for the delivery rules a sink keeps.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Iterable, Sequence

from confluent_kafka import KafkaError, KafkaException

from collector.sink import Record, Sink, SinkUnavailable, record_limit
from snowmelt.config import Config, producer_settings
from snowmelt.producer import LoopProducer

log = logging.getLogger("snowmelt.collector.sink")


class KafkaSink(Sink):
    """Writes raw records and bad rows to Kafka with confluent-kafka (librdkafka).

    Delivery reports are served on the event loop (:class:`~snowmelt.producer.LoopProducer`).
    """

    def __init__(self, config: Config):
        self.config = config
        cc = config.collector
        self.raw_topic = config.topics.raw
        self.bad_topic = config.topics.bad
        self.acked = cc.delivery == "acked"
        self.produce_timeout = cc.produce_timeout
        self.max_record_bytes = record_limit(config)
        self._healthy = False
        self._last_error = "not started"
        overrides = {
            "acks": "all",
            "enable.idempotence": True,
            # acked: each request waits for its batch; 0.5 ms batches well under load
            # without adding latency (0 floods the broker with tiny requests and
            # costs more CPU; bench/RESULTS.md). buffered: nobody waits, batch 5 ms.
            "linger.ms": 0.5 if cc.delivery == "acked" else 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": cc.buffer_max_messages,
            "queue.buffering.max.kbytes": cc.buffer_max_kbytes,
            # acked: give up (and answer 503) after produce_timeout;
            # buffered: the 2xx is already sent, so retry until delivered.
            "message.timeout.ms": int(cc.produce_timeout * 1000) if self.acked else 0,
            # a record waiting for a dead leader is timed out only when its broker's thread wakes, which is
            # up to the reconnect back-off (librdkafka's default: 10 s): capped so that the 503 comes within
            # about produce_timeout + 1 s, and a broker that returns is found within a second
            "reconnect.backoff.max.ms": 1000,
            "error_cb": self._on_error,
            "on_delivery": self._on_buffered_delivery,
        }
        self.settings = producer_settings(config.kafka, **overrides)
        self.output = LoopProducer(self.settings, error_type=SinkUnavailable)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._probe_task: asyncio.Task | None = None
        self._probe_now = asyncio.Event()
        #: records answered 2xx in buffered mode that librdkafka then failed to deliver
        self.failed_after_ack = 0

    @property
    def producer(self):
        return self.output.producer

    def _on_buffered_delivery(self, err, _msg) -> None:
        # Records produced without a future were already answered 2xx.
        if err is not None:
            self.failed_after_ack += 1
            log.error("a record answered 2xx was not delivered: %s", err)

    # -------------------------------------------------------------- health

    @property
    def healthy(self) -> bool:
        return self._healthy

    def _on_error(self, err: KafkaError) -> None:
        # Served by poll() on the loop thread.
        code = err.code()
        if code in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE,
                    KafkaError._AUTHENTICATION) or err.fatal():
            if self._healthy:
                log.warning("kafka unreachable: %s", err.str())
            self._healthy = False
            self._last_error = err.str()
            self._probe_now.set()

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
        self._loop = asyncio.get_running_loop()
        self.output.start()
        await self.probe()
        if not self._healthy:
            log.warning("kafka not reachable yet at %s (%s); answering 503 until it is",
                        self.config.kafka.bootstrap_servers, self._last_error)
        self._probe_task = self._loop.create_task(self._probe_loop(self.config.collector.health_probe_interval))

    def buffer_fill(self) -> int:
        return len(self.output)

    async def close(self, grace: float) -> int:
        """Deliver what is buffered within ``grace`` seconds (polling on this loop)."""
        if self._probe_task is not None:
            self._probe_task.cancel()
        left = await self.output.close(grace)
        if left:
            log.error("%d records were not delivered before the shutdown grace period ended", left)
        # the client goes now, while the interpreter is whole: left to the end of the process, librdkafka's
        # threads could call the log callback into an interpreter being torn down (a segfault at exit)
        self.output.producer = None
        return left

    # -------------------------------------------------------------- sending

    async def send(self, raw: Sequence[Record], bad: Sequence[bytes] = ()) -> None:
        if not self._healthy:
            raise SinkUnavailable(f"kafka unreachable: {self._last_error}")
        output = self.output
        try:
            if not self.acked:
                for key, value in raw:
                    output.produce(self.raw_topic, value, key)
                for value in bad:
                    output.produce(self.bad_topic, value)
                return
            # Serve earlier requests' acknowledgements now: under load this
            # resolves them sooner than the 1 ms poll timer would.
            output.poll()
            futures = [output.produce_acked(self.raw_topic, value, key) for key, value in raw]
            futures.extend(output.produce_acked(self.bad_topic, value) for value in bad)
        except BufferError as exc:
            raise SinkUnavailable("producer buffer full") from exc
        except KafkaException as exc:
            raise SinkUnavailable(str(exc)) from exc
        output.wake()
        # No asyncio timeout: librdkafka reports every message by message.timeout.ms
        # (= produce_timeout), delivered or failed, so each future resolves in time.
        if len(futures) == 1:
            await futures[0]
        else:
            await _gather(futures)


async def _gather(futures: Iterable[asyncio.Future]) -> None:
    results = await asyncio.gather(*futures, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
