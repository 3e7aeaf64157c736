"""The Kafka enrich worker: raw topic -> :class:`processor.stage.Enricher` -> enriched / bad topics.

``snowmelt enrich`` runs one Faust app (faust-streaming, on aiokafka) with one
agent on the raw topic.  Checked against Apache Kafka 4.1 (KRaft): consumer
group join, produce and offset commit all work, so the DESIGN's Faust path is
used as is.

The agent only loops, batches, calls the stage, routes and lets Faust commit:

1. ``stream.take_events(batch_size, within=batch_timeout)`` cuts a batch of
   raw records;
2. :func:`enrich_batch` runs the stage on each record (a plain function, no
   Kafka): good TSV lines are keyed by their event_id, bad rows go as they are.
   A record on which the stage *raises* (a bug, not bad input: the stage turns
   bad input into bad rows itself) becomes a ``generic_error`` bad row, so one
   poison record never stops a partition;
3. :meth:`BatchWriter.write` sends every output record and awaits every
   delivery acknowledgement (``acks=all``) before it returns.  Up to
   ``enrich.max_batches_in_flight`` batches wait for their acknowledgements
   while the next ones are enriched, so the broker's round trip does not idle
   the worker.

Offsets are committed only after that.  Faust commits acknowledged offsets
only (every ``enrich.commit_interval`` seconds, on rebalance and on stop), and
``take_events`` would acknowledge a batch whenever its generator is resumed or
closed -- a cancelled agent included.  So the agent pins each event of a batch
(one extra reference) as it receives it and releases the pin only once the
broker has acknowledged the batch's output; an abandoned batch stays pinned,
uncommitted, and is redelivered.  A committed offset always means its records'
output is on the broker -- at-least-once; a crash between the sends and the
commit produces duplicates, never losses.  Enriched records are keyed by
event_id so that downstream deduplication can find them.  An output record
larger than ``kafka.max_message_bytes`` becomes a truncated ``size_violation``
bad row instead of a send the producer would refuse forever.

If the broker refuses an output record for good (aiokafka gave up retrying),
the process exits at once with status 3 and commits nothing: acknowledging
the batch would lose those records, and a restarted worker reprocesses them.

SIGTERM / SIGINT: the batches in hand are written to the end (up to
``enrich.shutdown_grace`` seconds), its offsets are committed, the consumer
leaves the group and the process exits 0.

Metrics (``snowmelt_enrich_*``, see :mod:`snowmelt.metrics`) are served over
HTTP on ``enrich.metrics_port`` when it is not 0, with ``/ready`` (200 while
the broker answers with the worker's topics and no SIGTERM was received; see
:mod:`snowmelt.health`) and ``/health``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from processor.analytics import parse_tsv
from processor.badrows import ENRICH_ARTIFACT, generic_error, size_violation
from snowmelt.config import producer_settings
from snowmelt.metrics import EnrichStats
from snowmelt.producer import LoopProducer

log = logging.getLogger("snowmelt.enrich")

EXIT_DELIVERY_FAILED = 3


@dataclass
class RoutedBatch:
    """What a batch of raw records became: (key, TSV) pairs and bad rows."""

    good: list[tuple[bytes, bytes]] = field(default_factory=list)
    bad: list[bytes] = field(default_factory=list)


def event_id_of(tsv: str) -> str:
    """The event_id (7th column) of an enriched TSV line."""
    return tsv.split("\t", 7)[6]


def enrich_batch(enricher, records: Iterable[bytes], stats: EnrichStats | None = None) -> RoutedBatch:
    """Run the stage on each raw record; an exception from it becomes a generic_error bad row.

    The records share one time budget for schema look-ups (:meth:`processor.stage.Enricher.batch`).
    """
    out = RoutedBatch()
    good, bad = out.good, out.bad
    n = errors = 0
    with enricher.batch():
        for raw in records:
            n += 1
            try:
                result = enricher.enrich(raw)
                if len(result.event_ids) == len(result.good):
                    # a lone surrogate (a JSON escape such as \\udcff) is written as '?', as Java's encoder does
                    lines = [(key.encode("utf-8"), line.encode("utf-8", "replace"))
                             for key, line in zip(result.event_ids, result.good)]
                else:
                    lines = [(event_id_of(line).encode("utf-8"), line.encode("utf-8", "replace"))
                             for line in result.good]
            except Exception as exc:  # a stage bug must not stop the partition
                errors += 1
                log.exception("stage raised on a raw record; writing a generic_error bad row")
                bad.append(generic_error(raw if isinstance(raw, (bytes, bytearray)) else b"",
                                         [f"{type(exc).__name__}: {exc}"]))
                continue
            good.extend(lines)
            bad.extend(result.bad)
    if stats is not None:
        stats.records += n
        stats.stage_errors += errors
    return out


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge an output record; the batch must not be committed."""


# send(key, value) -> awaitable that returns once the record is put in the
# producer, giving an awaitable that resolves when the broker acknowledged it.
SendFn = Callable[[bytes | None, bytes], Awaitable[Awaitable]]
# send_all([(GOOD | BAD | JSON, key, value), ...]) -> awaitable that returns once every
# record is put in the producer, giving one awaitable for all their acknowledgements.
SendAllFn = Callable[[list[tuple[str, bytes | None, bytes]]], Awaitable[Awaitable]]
GOOD, BAD, JSON = "enriched", "bad", "enriched_json"


class BatchWriter:
    """Routes a batch's output and returns only when the broker acknowledged all of it.

    Kafka-client agnostic: ``send_good`` / ``send_bad`` are Faust's
    ``Topic.send`` in the worker and fakes in the unit tests.
    """

    def __init__(self, enricher, send_good: SendFn, send_bad: SendFn, stats: EnrichStats,
                 max_record_bytes: int = 1_000_000, send_json: SendFn | None = None,
                 send_all: SendAllFn | None = None):
        self.enricher = enricher
        self.send_good = send_good
        self.send_bad = send_bad
        # Optional: each good event also as analytics-SDK JSON (topics.enriched_json).
        self.send_json = send_json
        # Optional: the whole batch's output in one call, acknowledged as a group
        # (the worker's librdkafka producer); else a send per record.
        self.send_all = send_all
        self.stats = stats
        self.max_record_bytes = max_record_bytes

    def _fit(self, value: bytes, what: str) -> bytes | None:
        """``None`` when ``value`` fits in a record, else the size_violation bad row replacing it."""
        if len(value) <= self.max_record_bytes:
            return None
        return size_violation(ENRICH_ARTIFACT, self.max_record_bytes, len(value), value,
                              f"{what} must fit in one Kafka record")

    async def write(self, records: Sequence[bytes]) -> RoutedBatch:
        started = time.perf_counter()
        routed = enrich_batch(self.enricher, records, self.stats)
        # An output record too large for the topic would be refused by the producer
        # on every retry of the batch: it becomes a (truncated) size_violation instead.
        fits = []
        for key, value in routed.good:
            oversized = self._fit(value, "an enriched event")
            if oversized is None:
                fits.append((key, value))
            else:
                routed.bad.append(oversized)
        routed.good = fits
        routed.bad = [self._fit(v, "a bad row") or v for v in routed.bad]
        if self.send_all is not None:
            await self._write_all(routed)
        else:
            await self._write_each(routed)
        self.stats.good += len(routed.good)
        self.stats.bad += len(routed.bad)
        self.stats.count_bad_rows(routed.bad)
        self.stats.batch_records.observe(len(records))
        self.stats.batch_latency.observe(time.perf_counter() - started)
        return routed


    async def _write_each(self, routed: RoutedBatch) -> None:
        pending = []
        for key, value in routed.good:
            pending.append(await self.send_good(key, value))
            if self.send_json is not None:
                pending.append(await self.send_json(key, analytics_json(value)))
        for value in routed.bad:
            pending.append(await self.send_bad(None, value))
        results = await asyncio.gather(*pending, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise DeliveryFailed(f"{len(failed)} of {len(pending)} output records not acknowledged: {failed[0]!r}")

    async def _write_all(self, routed: RoutedBatch) -> None:
        out: list[tuple[str, bytes | None, bytes]] = [(GOOD, key, value) for key, value in routed.good]
        if self.send_json is not None:
            out.extend((JSON, key, analytics_json(value)) for key, value in routed.good)
        out.extend((BAD, None, value) for value in routed.bad)
        try:
            await (await self.send_all(out))
        except Exception as exc:
            raise DeliveryFailed(f"output records not acknowledged: {exc}") from exc


def analytics_json(tsv_line: bytes) -> bytes:
    """An enriched TSV line as the JSON Snowplow's analytics SDKs make of it."""
    return json.dumps(parse_tsv(tsv_line.decode("utf-8")), ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


class Drain:
    """Tells the agent to stop taking batches, and waits for the batch in hand."""

    def __init__(self):
        self.requested = False
        self.idle = asyncio.Event()
        self.idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


async def run_batch(writer: BatchWriter, records: Sequence[bytes]) -> None:
    """Write one batch; a cancellation (shutdown) waits for the batch to finish first.

    A :class:`DeliveryFailed` ends the process without any commit (see the module doc).
    """
    async def guarded():
        try:
            await writer.write(records)
        except DeliveryFailed as exc:
            log.critical("%s; exiting without committing so the batch is reprocessed", exc)
            logging.shutdown()
            os._exit(EXIT_DELIVERY_FAILED)

    task = asyncio.ensure_future(guarded())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


class InOrder:
    """Lets batches release their offsets for commit in the order they were taken.

    Batches in flight may have their output acknowledged out of order.  Faust
    commits the first run of consecutive acknowledged offsets, and on a
    partition with no commit yet (or committed at 0) it does so even past
    offsets not yet acknowledged, so a later batch released first could be
    committed ahead of an earlier one still waiting for the broker, and a crash
    then would lose the earlier one.  ``turn()`` gives each batch its place;
    ``async with place:`` waits until every earlier batch has released its
    offsets, then lets this one.  A batch that never releases (it failed) holds
    the ones after it: they stay uncommitted and are redelivered, never skipped.
    """

    def __init__(self) -> None:
        self._last: asyncio.Future | None = None

    def turn(self) -> "_Turn":
        loop = asyncio.get_running_loop()
        mine = loop.create_future()
        turn = _Turn(self._last, mine)
        self._last = mine
        return turn


class _Turn:
    def __init__(self, before: asyncio.Future | None, mine: asyncio.Future) -> None:
        self.before, self.mine = before, mine

    async def __aenter__(self) -> None:
        if self.before is not None:
            await asyncio.shield(self.before)

    async def __aexit__(self, *exc) -> None:
        if not self.mine.done():
            self.mine.set_result(None)


def kafka_security_settings(common) -> dict:
    """aiokafka-side equivalents of the PLAINTEXT/SSL/SASL keys of ``kafka.common``.

    The enrich worker's client is aiokafka, not librdkafka: only these keys are
    understood; any other ``kafka.common`` key is refused at start-up rather
    than silently ignored.
    """
    import ssl

    import faust

    known = {"security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username",
             "sasl.password", "ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
             "ssl.key.password", "ssl.endpoint.identification.algorithm"}
    unknown = sorted(set(common) - known)
    if unknown:
        raise ValueError(f"kafka.common.{unknown[0]} is not supported by the enrich worker "
                         f"(supported: {', '.join(sorted(known))})")
    protocol = str(common.get("security.protocol", "PLAINTEXT")).upper()
    if protocol == "PLAINTEXT":
        return {}
    context = ssl.create_default_context(cafile=common.get("ssl.ca.location"))
    if common.get("ssl.certificate.location"):  # a client certificate (mutual TLS)
        context.load_cert_chain(common["ssl.certificate.location"], common.get("ssl.key.location"),
                                common.get("ssl.key.password"))
    if str(common.get("ssl.endpoint.identification.algorithm", "https")).lower() == "none":
        context.check_hostname = False
    if protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(context)}
    mechanism = str(common.get("sasl.mechanism", common.get("sasl.mechanisms", "PLAIN"))).upper()
    creds = faust.SASLCredentials(username=common.get("sasl.username"), password=common.get("sasl.password"),
                                  mechanism=mechanism,
                                  ssl_context=context if protocol == "SASL_SSL" else None)
    return {"broker_credentials": creds}


def output_producer(config) -> LoopProducer:
    """The worker's producer for enriched events and bad rows: acks=all, idempotent, lz4.

    ``message.timeout.ms`` bounds how long a record may stay unacknowledged;
    after it the batch fails and the process exits without committing.
    """
    return LoopProducer(producer_settings(
        config.kafka, **{"acks": "all", "enable.idempotence": True, "linger.ms": 5, "compression.type": "lz4",
                         "message.timeout.ms": 300_000}), error_type=DeliveryFailed)


def build_app(config, enricher, stats: EnrichStats, drain: Drain, datadir: str | None = None,
              output: LoopProducer | None = None):
    """The Faust app: one agent on the raw topic writing to the enriched and bad topics.

    ``datadir`` is Faust's working folder (it keeps nothing there: no tables);
    by default Faust would make ``<group_id>-data`` in the current directory.
    """
    import faust

    output = output if output is not None else output_producer(config)
    enrich = config.enrich
    servers = [f"kafka://{s.strip()}" for s in config.kafka.bootstrap_servers.split(",") if s.strip()]
    app = faust.App(
        enrich.group_id,
        broker=servers,
        broker_client_id=config.kafka.client_id,
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        **({"datadir": datadir} if datadir else {}),
        web_enabled=False,
        topic_allow_declare=False,   # the topics are the operator's; never create them
        topic_disable_leader=True,   # no internal "__assignor-__leader" topic
        broker_commit_interval=enrich.commit_interval,
        broker_session_timeout=enrich.session_timeout,
        broker_heartbeat_interval=min(2.0, enrich.session_timeout / 3),
        producer_acks=-1,
        producer_max_request_size=max(config.kafka.max_message_bytes + 4096, 1_000_000),
        consumer_auto_offset_reset=enrich.auto_offset_reset,
        stream_wait_empty=False,     # on stop, commit what was acked; unread buffers are redelivered
        **kafka_security_settings(config.kafka.common),
    )
    raw_topic = app.topic(config.topics.raw, value_serializer="raw", key_serializer="raw")
    enriched_topic = app.topic(config.topics.enriched, value_serializer="raw", key_serializer="raw")
    bad_topic = app.topic(config.topics.bad, value_serializer="raw", key_serializer="raw")

    # Output goes through librdkafka (idempotent, acks=all), served on this loop:
    # a record costs a few microseconds, against tens through aiokafka's producer.
    enriched_name, bad_name = enriched_topic.get_topic_name(), bad_topic.get_topic_name()

    def sender(topic: str) -> SendFn:
        async def send(key, value):
            if not output.started:
                output.start()
            fut = await output.send(topic, value, key)
            output.wake()
            return fut
        return send

    send_good, send_bad = sender(enriched_name), sender(bad_name)
    send_json = sender(config.topics.enriched_json) if config.topics.enriched_json else None

    topic_of = {GOOD: enriched_name, BAD: bad_name, JSON: config.topics.enriched_json}

    async def send_all(records):
        if not output.started:
            output.start()
        return await output.send_all([(topic_of[kind], key, value) for kind, key, value in records])

    writer = BatchWriter(enricher, send_good, send_bad, stats, max_record_bytes=config.kafka.max_message_bytes,
                         send_json=send_json, send_all=send_all)

    # Up to max_batches_in_flight batches await their acknowledgements while the
    # agent enriches the next ones; each batch's events are released for commit
    # by its own task once its output is acknowledged (Faust commits only the
    # contiguous acknowledged offsets, so order is kept).
    slots = asyncio.Semaphore(max(1, enrich.max_batches_in_flight))
    in_flight: set[asyncio.Task] = set()
    stats.in_flight_limit = max(1, enrich.max_batches_in_flight)

    order = InOrder()

    async def finish(events, turn: _Turn) -> None:
        try:
            await run_batch(writer, [e.message.value for e in events])
            last: dict = {}
            consumer = app.consumer
            async with turn:  # after every earlier batch: Faust may commit past an unacknowledged gap
                for e in events:
                    e.message.ack(consumer, n=2)  # our pin and the stream's reference: committable now
                    last[e.message.tp] = e.message.offset
            for tp, offset in last.items():
                high = consumer.highwater(tp)
                if high is not None:
                    stats.lag[(tp.topic, tp.partition)] = max(int(high) - offset - 1, 0)
        finally:
            # a batch that failed releases nothing, and the ones after it wait (pinned, redelivered
            # after a restart) rather than be committed past it
            slots.release()

    def done(task: asyncio.Task) -> None:
        in_flight.discard(task)
        stats.in_flight = len(in_flight)
        if not in_flight:
            drain.idle.set()

    @app.agent(raw_topic, name="enrich_raw")
    async def enrich_raw(stream):
        async for events in stream.take_events(enrich.batch_size, within=enrich.batch_timeout):
            # Pin every event: take_events acks a batch whenever its generator is
            # resumed *or closed* (a cancelled agent), which alone must never make
            # an offset committable.  Only finish(), after the broker has
            # acknowledged the batch's output, releases it.
            for e in events:
                e.message.incref()
            if drain.requested:
                continue  # shutting down: stays pinned, uncommitted, redelivered to the next owner
            await slots.acquire()
            if drain.requested:  # SIGTERM while waiting for a slot
                slots.release()
                continue
            drain.idle.clear()
            task = asyncio.ensure_future(finish(events, order.turn()))
            in_flight.add(task)
            stats.in_flight = len(in_flight)
            task.add_done_callback(done)

    return app


def readiness(config, drain: Drain):
    """``/ready`` of an enrich worker: the broker answers with its three topics, and it is not stopping."""
    from snowmelt import health

    topics = [config.topics.raw, config.topics.enriched, config.topics.bad, config.topics.enriched_json]
    return health.Readiness({
        "kafka": health.kafka_check(health.kafka_client_settings(config.kafka), topics),
        "stopping": health.flag_check(lambda: drain.requested, "stopping (SIGTERM): finishing the batch in hand"),
    })


def run(config, resolver_path: str | None = None, enrichments_dir: str | None = None) -> int:
    """``snowmelt enrich``: run the worker until SIGTERM/SIGINT; returns the exit status."""
    import shutil
    import signal
    import tempfile

    import faust
    from prometheus_client import REGISTRY

    from snowmelt import health

    from processor.stage import Enricher
    from snowmelt.metrics import ENRICH

    try:
        import uvloop  # type: ignore  # the "fast" extra, as for the collector
        uvloop.install()
    except ImportError:
        pass
    enricher = Enricher.from_files(resolver_path or config.enrich.resolver,
                                   enrichments_dir or config.enrich.enrichments, config.enrich.remote_adapters)
    log.info("enrichments: %s", ", ".join(e.name for e in enricher.enrichments) or "none")
    drain = Drain()
    datadir = tempfile.mkdtemp(prefix="snowmelt-enrich-")
    output = output_producer(config)
    app = build_app(config, enricher, ENRICH, drain, datadir=datadir, output=output)
    if config.enrich.metrics_port:
        REGISTRY.register(ENRICH)
        health.serve(config.enrich.metrics_host, config.enrich.metrics_port, readiness(config, drain))
    grace = config.enrich.shutdown_grace

    class EnrichWorker(faust.Worker):
        """Faust's worker with a shutdown that first finishes and commits the batch in hand."""

        _draining = False

        def _on_sigterm(self) -> None:
            self._begin_drain(signal.SIGTERM)

        def _on_sigint(self) -> None:
            self._begin_drain(signal.SIGINT)

        def _begin_drain(self, signum) -> None:
            if self._draining:
                return
            self._draining = True
            asyncio.ensure_future(self._drain_then_stop(signum))

        async def _drain_then_stop(self, signum) -> None:
            drain.requested = True
            log.info("stopping: finishing the batch in hand")
            if not await drain.wait_idle(grace):
                log.warning("the batch in hand did not finish within %.1fs", grace)
            # The agent acked the finished batch before going idle: commit it.
            try:
                await app.consumer.commit()
            except Exception:
                log.exception("final commit failed; uncommitted records will be redelivered")
            await output.close(grace)
            self._schedule_shutdown(signum)

    worker = EnrichWorker(app, loglevel=logging.getLevelName(logging.getLogger().level),
                          override_logging=False, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        enricher.close()
        shutil.rmtree(datadir, ignore_errors=True)
    return 0
