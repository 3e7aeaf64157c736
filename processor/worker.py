"""The Kafka enrich worker: raw topic -> :class:`processor.stage.Enricher` -> enriched / bad topics.

``snowmelt enrich`` runs one Faust app (faust-streaming, on aiokafka) with one
agent on the raw topic.  Checked against Apache Kafka 4.1 (KRaft): consumer
group join, produce and offset commit all work, so the DESIGN's Faust path is
used as is.

The agent only loops, batches, calls the stage, routes and lets Faust commit:

1. the consumer hands the agent each partition's fetched records as one
   :class:`processor.fetch_chunks.RecordChunk` (at most ``batch_size``
   records), which is a batch: no per-record pass through Faust's stream;
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

Offsets are committed only after that, and only through the worker's own
:class:`processor.ledger.OffsetLedger`: Faust commits every
``enrich.commit_interval`` seconds (and on stop), but the offsets it commits
are the ledger's, which advance over a partition only where every record's
output was acknowledged, starting from the offset the broker had committed
when the partition was assigned.  Records Faust drops on a rebalance are
noticed (the next one arrives past the expected offset) and read again by
seeking back.  A committed offset always means its records' output is on the
broker -- at-least-once; a crash between the sends and the commit produces
duplicates, never losses.  Enriched records are keyed by event_id so that
downstream deduplication can find them.  An output record larger than
``kafka.max_message_bytes`` becomes a truncated ``size_violation`` bad row
instead of a send the producer would refuse forever.

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
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from processor.analytics import parse_tsv
from processor.badrows import ENRICH_ARTIFACT, generic_error, size_violation
from processor.consumer_stop import consumer_thread_class
from processor.fetch_chunks import ChunkedGetmany, RecordChunk, fetch_waiting
from processor.ledger import OffsetLedger
from snowmelt.config import consumer_settings, producer_settings
from snowmelt.lifecycle import EXIT_STALLED, exit_now, stall_timeout
from snowmelt.membership import GroupDescriber, MembershipWatch, check_membership, exit_outside, member_id_view
from snowmelt.metrics import EnrichStats
from snowmelt.producer import LoopProducer
from snowmelt.stacks import format_stacks
from snowmelt.stall import Stalled, StallWatch

log = logging.getLogger("snowmelt.enrich")

EXIT_DELIVERY_FAILED = 3


def exit_uncommitted(reason: str) -> None:
    """End the process at once with status 3, committing nothing: a restarted worker reprocesses the records."""
    exit_now(log, EXIT_DELIVERY_FAILED, "%s; exiting without committing, so the records are processed again", reason)


def aiokafka_member_id(app) -> str | None:
    """The group member id of the worker's aiokafka consumer, read without waiting (None before there is one)."""
    consumer = getattr(getattr(app.consumer, "_thread", None), "_consumer", None)
    return getattr(getattr(consumer, "_coordinator", None), "member_id", None)


def worker_stacks(app) -> str:
    """Every thread's stack and the tasks of both the worker's loops: the main one (the agent, the commits)
    and the Kafka consumer thread's (aiokafka's fetches and group membership)."""
    thread = getattr(app.consumer, "_thread", None)
    return format_stacks({"main": asyncio.get_running_loop(),
                          "Kafka consumer thread": getattr(thread, "thread_loop", None)})


def max_known(*values: int | None) -> int | None:
    """The largest of ``values`` that is not None (None when none is known)."""
    known = [value for value in values if value is not None]
    return max(known) if known else None


def exit_stalled(stalled: Sequence[Stalled], stacks: str) -> None:
    """End the process at once with status 4, committing nothing: a stall (:mod:`snowmelt.stall`)."""
    exit_now(log, EXIT_STALLED, "stalled: %s; exiting without committing so that the worker is restarted and "
             "the records are read again. Where it was:\n%s", "; ".join(map(str, stalled)), stacks)


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

    def route(self, records: Sequence[bytes]) -> RoutedBatch:
        """Enrich ``records``; an output record too large for the topic becomes a size_violation bad row."""
        routed = enrich_batch(self.enricher, records, self.stats)
        # An output record too large for the topic would be refused by the producer
        # on every retry of the batch: it becomes a (truncated) size_violation instead.
        limit = self.max_record_bytes
        if any(len(value) > limit for _, value in routed.good):
            fits = []
            for key, value in routed.good:
                oversized = self._fit(value, "an enriched event")
                if oversized is None:
                    fits.append((key, value))
                else:
                    routed.bad.append(oversized)
            routed.good = fits
        if any(len(value) > limit for value in routed.bad):
            routed.bad = [self._fit(v, "a bad row") or v for v in routed.bad]
        return routed

    def output(self, routed: RoutedBatch) -> list[tuple[str, bytes | None, bytes]]:
        """``(GOOD | JSON | BAD, key, value)`` of every output record of ``routed``."""
        out: list[tuple[str, bytes | None, bytes]] = [(GOOD, key, value) for key, value in routed.good]
        if self.send_json is not None:
            out.extend((JSON, key, analytics_json(value)) for key, value in routed.good)
        out.extend((BAD, None, value) for value in routed.bad)
        return out

    def account(self, routed: RoutedBatch, records: int, started: float) -> None:
        self.stats.good += len(routed.good)
        self.stats.bad += len(routed.bad)
        self.stats.count_bad_rows(routed.bad)
        self.stats.batch_records.observe(records)
        self.stats.batch_latency.observe(time.perf_counter() - started)

    async def write(self, records: Sequence[bytes]) -> RoutedBatch:
        started = time.perf_counter()
        routed = self.route(records)
        if self.send_all is not None:
            await self._write_all(routed)
        else:
            await self._write_each(routed)
        self.account(routed, len(records), started)
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
        try:
            await (await self.send_all(self.output(routed)))
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
            exit_uncommitted(str(exc))

    task = asyncio.ensure_future(guarded())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


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


#: the longest ``enrich.fetch_max_wait``: a fetch must come back well within aiokafka's request timeout
MAX_FETCH_WAIT = 10.0


def fetch_wait_settings(enrich) -> tuple[int, int]:
    """``(fetch_min_bytes, fetch_max_wait in ms)`` of the consumer, from ``enrich``; ``ValueError`` out of range."""
    if enrich.fetch_min_bytes < 1:
        raise ValueError(f"enrich.fetch_min_bytes must be at least 1, got {enrich.fetch_min_bytes}")
    if not 0.001 <= enrich.fetch_max_wait <= MAX_FETCH_WAIT:
        raise ValueError(f"enrich.fetch_max_wait must be between 0.001 and {MAX_FETCH_WAIT:g} seconds, "
                         f"got {enrich.fetch_max_wait:g}")
    return enrich.fetch_min_bytes, round(enrich.fetch_max_wait * 1000)


def exactly_once(config) -> bool:
    return config.enrich.processing_guarantee == "exactly_once"


def transactional_id(config) -> str:
    """``enrich.transactional_id``, else ``<group_id>-<host name>`` (stable for a StatefulSet's pod)."""
    import socket

    return config.enrich.transactional_id or f"{config.enrich.group_id}-{socket.gethostname()}"


#: the librdkafka settings of the worker's output, at least once (the benches produce with them too)
OUTPUT_SETTINGS = {"acks": "all", "enable.idempotence": True, "linger.ms": 5, "compression.type": "lz4",
                   "message.timeout.ms": 300_000}


def output_producer(config) -> LoopProducer:
    """The worker's producer for enriched events and bad rows: acks=all, idempotent, lz4.

    ``message.timeout.ms`` bounds how long a record may stay unacknowledged;
    after it the batch fails and the process exits without committing.
    Transactional (``transactional.id``) with ``processing_guarantee: exactly_once``.
    """
    settings = dict(OUTPUT_SETTINGS)
    if exactly_once(config):
        timeout_ms = int(config.enrich.transaction_timeout * 1000)
        from processor.transactions import PRODUCER_SETTINGS

        settings.update({"transactional.id": transactional_id(config), "transaction.timeout.ms": timeout_ms,
                         "message.timeout.ms": timeout_ms, **PRODUCER_SETTINGS})
    return LoopProducer(producer_settings(config.kafka, **settings), error_type=DeliveryFailed)


async def seek_back_over_holes(consumer, ledger: OffsetLedger, tp, generation: int | None, chunk: RecordChunk,
                               stats: EnrichStats) -> RecordChunk:
    """Tell the ledger what arrived of ``tp``; where records were dropped on the way, read them again.

    Returns the records to process: all of ``chunk``, or with an exactly-once
    ledger only those next in their partition (:meth:`OffsetLedger.accept`).
    """
    back = None
    if ledger.exactly_once:
        offsets: list[int] = []
        values: list[bytes] = []
        for offset, value in zip(chunk.offsets, chunk.values):
            take, hole = ledger.accept(tp, offset, generation)
            if take:
                offsets.append(offset)
                values.append(value)
            if hole is not None:
                back = hole
        chunk = RecordChunk(offsets, values)
    else:
        for offset in chunk.offsets:
            hole = ledger.arrived(tp, offset, generation)
            if hole is not None:
                back = hole
    if back is not None:
        await read_again(consumer, tp, back, stats)
    return chunk


async def read_again(consumer, tp, offset: int, stats: EnrichStats | None) -> None:
    """Seek ``tp`` back to ``offset``: records from there never reached the worker (dropped in a rebalance)."""
    if stats is not None:
        stats.rereads += 1
    log.warning("%s[%d]: records from offset %d never reached the worker (dropped in a rebalance); "
                "reading them again", tp.topic, tp.partition, offset)
    try:
        await consumer.seek(tp, offset)
    except Exception:  # no longer assigned: its new owner starts from the committed offset
        log.exception("could not seek %s[%d] back to %d", tp.topic, tp.partition, offset)


def starting_offsets(config):
    """``fetch(tps) -> {tp: offset}``: where the group's consumption of each partition starts.

    The group's committed offset, else the start or end of the partition as
    ``enrich.auto_offset_reset`` says.  A librdkafka client of its own that
    never joins the group (an offset fetch needs no membership); blocking: run
    it in a thread.  ``fetch.close()`` releases the client.
    """
    state: dict = {}
    reset = config.enrich.auto_offset_reset

    def client():
        if "client" not in state:
            from confluent_kafka import Consumer

            state["client"] = Consumer(consumer_settings(
                config.kafka, **{"group.id": config.enrich.group_id, "enable.auto.commit": False,
                                 "client.id": f"{config.kafka.client_id}-offsets"}))
        return state["client"]

    def fetch(tps) -> dict:
        from confluent_kafka import KafkaException, TopicPartition

        tps = list(tps)
        found = client().committed([TopicPartition(tp.topic, tp.partition) for tp in tps], timeout=10)
        by_key = {(p.topic, p.partition): p for p in found}
        out = {}
        for tp in tps:
            part = by_key[(tp.topic, tp.partition)]
            if part.error is not None:
                raise KafkaException(part.error)
            if part.offset >= 0:
                out[tp] = part.offset
            else:
                low, high = client().get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
                out[tp] = low if reset == "earliest" else high
        return out

    def close() -> None:
        if "client" in state:
            state.pop("client").close()

    fetch.close = close  # type: ignore[attr-defined]
    return fetch


def ledger_consumer(base: type, ledger: OffsetLedger, fetch_starts, stats: EnrichStats | None = None,
                    before_revoke: Callable[[], Awaitable[None]] | None = None,
                    before_assign: Callable[[], Awaitable[None]] | None = None,
                    fetch_wait: tuple[int, int] | None = None) -> type:
    """Faust's consumer class, committing the ledger's offsets instead of its own count of acks.

    It delivers each partition's fetched records as one :class:`RecordChunk`
    (:mod:`processor.fetch_chunks`).

    With an exactly-once ledger it commits nothing itself (the offsets go in the
    output's transactions), ``before_revoke`` lets the batches in hand commit
    before their partitions are given up, and ``before_assign`` registers the
    transactional producer before the committed offsets are read (the broker
    holds those back while a dead predecessor's transaction is open; the
    registration aborts it).

    ``fetch_wait`` is ``(min bytes, max wait ms)`` of each fetch (:func:`processor.fetch_chunks.fetch_waiting`);
    None leaves Faust's.
    """

    thread_class = consumer_thread_class()
    if fetch_wait is not None:
        thread_class = fetch_waiting(thread_class, *fetch_wait)

    class LedgerConsumer(ChunkedGetmany, base):  # type: ignore[valid-type, misc]
        def _new_consumer_thread(self):
            return thread_class(self, loop=self.loop, beacon=self.beacon)

        async def on_partitions_revoked(self, revoked) -> None:
            if before_revoke is not None:
                await before_revoke()
            ledger.revoked(revoked)
            await super().on_partitions_revoked(revoked)

        async def on_partitions_assigned(self, assigned, generation_id: int = 0) -> None:
            if before_assign is not None:
                await before_assign()
            ledger.assigned(assigned, self.app.consumer_generation_id)
            await self._read_starts()
            await super().on_partitions_assigned(assigned, generation_id)

        async def _read_starts(self) -> None:
            tps = ledger.without_base()
            if not tps:
                return
            try:
                starts = await asyncio.to_thread(fetch_starts, tps)
            except Exception as exc:  # retried before the next commit; nothing is committed for them till then
                log.warning("could not read the committed offsets of %d partitions: %s", len(tps), exc)
                return
            for tp, offset in ledger.set_bases(starts).items():
                await read_again(self, tp, offset, stats)

        async def _commit_tps(self, tps, start_new_transaction: bool) -> bool:
            # Faust's record of acknowledged offsets is not what is committed: the ledger's is.
            self._acked.clear()
            self._acked_index.clear()
            await self._read_starts()
            if ledger.exactly_once:
                return False
            offsets = ledger.committable()
            if not offsets:
                return False
            did_commit = await self._commit_offsets(offsets, start_new_transaction=start_new_transaction)
            if did_commit:
                ledger.committed(offsets)
            return did_commit

    return LedgerConsumer


def build_app(config, enricher, stats: EnrichStats, drain: Drain, datadir: str | None = None,
              output: LoopProducer | None = None, ledger: OffsetLedger | None = None, fetch_starts=None,
              broker_check: Callable[[], None] | None = None,
              describe_group: Callable[[], tuple] | None = None):
    """The Faust app: one agent on the raw topic writing to the enriched and bad topics.

    With ``processing_guarantee: exactly_once`` a record is processed only in
    its partition's order (:meth:`OffsetLedger.accept`) and each group of
    batches is committed by a :class:`processor.transactions.TransactionalCommitter`.

    ``datadir`` is Faust's working folder (it keeps nothing there: no tables);
    by default Faust would make ``<group_id>-data`` in the current directory.

    With ``enrich.stall_timeout`` the app checks for a stall every second
    (:class:`snowmelt.stall.StallWatch`) and exits on one
    (:func:`exit_stalled`), unless ``broker_check`` (blocking; raises when the
    broker does not answer) says the broker is away: then it is an outage and
    the count starts again.  With ``describe_group`` too (blocking: the
    broker's description of the group, :class:`snowmelt.membership.GroupDescriber`),
    it checks every few seconds that the worker's consumer is not left outside
    its group, holding no partition for that watch to see (:mod:`snowmelt.membership`),
    and, when it has ``ends`` (:meth:`~snowmelt.membership.GroupDescriber.ends`),
    reads the broker's ends of the partitions the worker holds: the stall watch
    takes the larger of that and its consumer's high watermark, so that records
    the consumer never fetched count as waiting (its high watermark comes from
    its own fetches).
    """
    import faust

    enrich = config.enrich
    fetch_wait = fetch_wait_settings(enrich)
    output = output if output is not None else output_producer(config)
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
        broker_max_poll_records=max(1, enrich.batch_size),  # a fetch, so a chunk, so a batch, is at most this
        # chunks the agent has not taken yet (beyond them Faust pauses the partition)
        stream_buffer_maxsize=2 * max(1, enrich.max_batches_in_flight),
        stream_wait_empty=False,     # on stop, commit what was acked; unread buffers are redelivered
        **kafka_security_settings(config.kafka.common),
    )
    eos = exactly_once(config)
    ledger = ledger if ledger is not None else OffsetLedger(exactly_once=eos)

    async def before_revoke() -> None:
        # the batches in hand commit (with this generation) before the partitions go to another worker
        if not await drain.wait_idle(enrich.shutdown_grace):
            log.warning("batches still in hand %.1fs into a rebalance", enrich.shutdown_grace)

    fetch_starts = fetch_starts if fetch_starts is not None else starting_offsets(config)
    committer = None
    if eos:
        from processor.transactions import TransactionalCommitter

        def consumer_group() -> tuple[str, int, str]:
            coordinator = app.consumer._thread._ensure_consumer()._coordinator
            return enrich.group_id, coordinator.generation, coordinator.member_id

        committer = TransactionalCommitter(output, ledger, consumer_group, on_fatal=exit_uncommitted,
                                           timeout=enrich.transaction_timeout, stats=stats)
    app.transport.Consumer = ledger_consumer(app.transport.Consumer, ledger, fetch_starts, stats,
                                             before_revoke=before_revoke if eos else None,
                                             before_assign=committer.start if eos else None,
                                             fetch_wait=fetch_wait)
    # Faust's acknowledgements off: the ledger says what is committed (processor.fetch_chunks)
    raw_topic = app.topic(config.topics.raw, value_serializer="raw", key_serializer="raw", acks=False)
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
    # agent enriches the next ones; each batch's task releases its offsets to the
    # ledger once its output is acknowledged (the ledger keeps them contiguous).
    slots = asyncio.Semaphore(max(1, enrich.max_batches_in_flight))
    in_flight: set[asyncio.Task] = set()
    stats.in_flight_limit = max(1, enrich.max_batches_in_flight)

    def report_lag(tp, offsets: list[int]) -> None:
        high = app.consumer.highwater(tp)
        if high is not None:
            stats.lag[(tp.topic, tp.partition)] = max(int(high) - offsets[-1] - 1, 0)

    async def finish(tp, chunk: RecordChunk) -> None:
        try:
            await run_batch(writer, chunk.values)
            ledger.release(tp, chunk.offsets)
            report_lag(tp, chunk.offsets)
        finally:
            slots.release()  # a batch that failed releases no offset: the ledger commits nothing past it

    if committer is not None:
        async def finish_in_transaction(tp, chunk: RecordChunk) -> None:
            try:
                started = time.perf_counter()
                routed = writer.route(chunk.values)
                await committer.submit([(topic_of[kind], key, value) for kind, key, value in writer.output(routed)],
                                       {tp: chunk.offsets})
                writer.account(routed, len(chunk), started)
                report_lag(tp, chunk.offsets)
            finally:
                slots.release()

    def done(task: asyncio.Task) -> None:
        in_flight.discard(task)
        stats.in_flight = len(in_flight)
        if not in_flight:
            drain.idle.set()

    timeout = stall_timeout("enrich", enrich.stall_timeout)
    if timeout:
        watch = StallWatch(timeout)
        # (topic, partition) -> end of the partitions held, as the broker last said (or empty)
        broker_ends: dict[tuple[str, int], int] = {}

        def high(tp) -> int | None:
            # a partition is Faust's TP, a (topic, partition) named tuple: the broker's ends' key as it is
            return max_known(app.consumer.highwater(tp), broker_ends.get(tp))

        @app.timer(min(1.0, timeout / 4), name="watch_for_stalls")
        async def watch_for_stalls() -> None:
            if drain.requested:
                return  # stopping: the agent takes no more batches on purpose, within shutdown_grace
            stalled = watch.check(ledger.committed_offsets(), high, len(in_flight), time.monotonic())
            if not stalled:
                return
            if broker_check is not None:
                try:
                    await asyncio.to_thread(broker_check)
                except Exception as exc:
                    log.warning("records waiting and nothing committed for %.0fs, but the broker does not answer "
                                "(%s): waiting for it", stalled[0].seconds, exc)
                    watch.reset()
                    return
            exit_stalled(stalled, worker_stacks(app))

        if describe_group is not None:
            membership = MembershipWatch(timeout)
            view = member_id_view(lambda: aiokafka_member_id(app))

            ends = getattr(describe_group, "ends", None)

            def look(held: list[tuple[str, int]]):
                """On a thread: the membership check, then the broker's ends of ``held`` (None when it does not
                answer)."""
                verdict, seconds = check_membership(view, describe_group, membership, drain.requested,
                                                    time.monotonic())
                answer = None
                if ends is not None:
                    try:
                        answer = ends(held)
                    except Exception as exc:  # an outage: the consumer's own view only
                        log.debug("the broker's ends not read: %s", exc)
                return verdict, seconds, answer

            @app.timer(min(5.0, timeout / 4), name="watch_membership")
            async def watch_membership() -> None:
                held = list(ledger.committed_offsets())
                verdict, seconds, answer = await asyncio.to_thread(look, held)
                broker_ends.clear()
                broker_ends.update(answer or {})
                if seconds is not None:
                    exit_outside(log, enrich.group_id, verdict, seconds, worker_stacks(app))

    @app.agent(raw_topic, name="enrich_raw")
    async def enrich_raw(stream):
        # one event per partition per fetch: its value is the RecordChunk of the records fetched (at most
        # enrich.batch_size, Faust's broker_max_poll_records), which is one batch
        async for event in stream.events():
            message = event.message
            chunk = await seek_back_over_holes(app.consumer, ledger, message.tp, message.generation_id,
                                               event.value, stats)
            if not chunk:
                continue
            if drain.requested:
                continue  # shutting down: never released, so never committed; redelivered to the next owner
            await slots.acquire()
            if drain.requested:  # SIGTERM while waiting for a slot
                slots.release()
                continue
            drain.idle.clear()
            task = asyncio.ensure_future(finish_in_transaction(message.tp, chunk) if eos
                                         else finish(message.tp, chunk))
            in_flight.add(task)
            stats.in_flight = len(in_flight)
            task.add_done_callback(done)

    return app


def broker_check(config):
    """A check (:func:`snowmelt.health.kafka_check`) that the broker answers with the worker's topics."""
    from snowmelt import health

    topics = [config.topics.raw, config.topics.enriched, config.topics.bad, config.topics.enriched_json]
    return health.kafka_check(health.kafka_client_settings(config.kafka), topics)


def readiness(config, drain: Drain, kafka=None):
    """``/ready`` of an enrich worker: the broker answers with its three topics (``kafka``, else a
    :func:`broker_check` of its own), and it is not stopping."""
    from snowmelt import health

    return health.Readiness({
        "kafka": kafka if kafka is not None else broker_check(config),
        "stopping": health.flag_check(lambda: drain.requested, "stopping (SIGTERM): finishing the batch in hand"),
    })


def run(config, resolver_path: str | None = None, enrichments_dir: str | None = None) -> int:
    """``snowmelt enrich``: run the worker until SIGTERM/SIGINT; returns the exit status."""
    import shutil
    import signal
    import sys
    import tempfile

    import faust
    from prometheus_client import REGISTRY

    from snowmelt import health

    from processor.stage import Enricher
    from snowmelt.metrics import ENRICH

    fetch_wait_settings(config.enrich)  # a setting out of range stops start-up before anything is made
    stall_timeout("enrich", config.enrich.stall_timeout)
    try:
        import uvloop  # type: ignore  # the "fast" extra, as for the collector
        uvloop.install()
    except ImportError:
        pass
    from snowmelt.config import schema_cache_dir
    enricher = Enricher.from_files(resolver_path or config.enrich.resolver,
                                   enrichments_dir or config.enrich.enrichments, config.enrich.remote_adapters,
                                   schema_cache_dir(config))
    log.info("enrichments: %s", ", ".join(e.name for e in enricher.enrichments) or "none")
    drain = Drain()
    datadir = tempfile.mkdtemp(prefix="snowmelt-enrich-")
    output = output_producer(config)
    fetch_starts = starting_offsets(config)
    kafka = broker_check(config)  # one client for /ready and the stall watch
    app = build_app(config, enricher, ENRICH, drain, datadir=datadir, output=output, fetch_starts=fetch_starts,
                    broker_check=kafka, describe_group=GroupDescriber.of(config.kafka, config.enrich.group_id))
    if config.enrich.metrics_port:
        REGISTRY.register(ENRICH)
        health.serve(config.enrich.metrics_host, config.enrich.metrics_port, readiness(config, drain, kafka))
    grace = config.enrich.shutdown_grace

    class EnrichWorker(faust.Worker):
        """Faust's worker with a shutdown that first finishes and commits the batch in hand."""

        _draining = False

        def _on_sigterm(self) -> None:
            self._begin_drain(signal.SIGTERM)

        def _on_sigint(self) -> None:
            self._begin_drain(signal.SIGINT)

        def _on_sigusr1(self) -> None:
            # mode's dump leaves out the Kafka consumer thread's loop, where aiokafka's fetches and group
            # membership run; this one has it, and no frame's local variables (a batch's records are large)
            sys.stderr.write(worker_stacks(app))
            sys.stderr.flush()

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
            # The agent acked the finished batch before going idle: commit it (exactly once: it is).
            if not exactly_once(config):
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
        fetch_starts.close()
        enricher.close()
        shutil.rmtree(datadir, ignore_errors=True)
    return 0
