"""Every Prometheus metric snowmelt exports, declared in one place.

Names follow one scheme: ``snowmelt_<role>_<what>_<unit>``, counters ending in
``_total``.  ``METRIC_NAMES`` is the declared list; a test checks that what a
role exposes at ``/metrics`` is drawn from it.

Hot paths do not touch prometheus_client objects (each ``inc`` takes a lock
and costs microseconds per request).  They bump plain attributes of a stats
object instead, and a registered collector turns those into metric families
when ``/metrics`` is scraped.  The event loop is single-threaded, so plain
integers are exact.
"""
from __future__ import annotations

from bisect import bisect_left

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

BATCH_SIZE_BUCKETS = (1, 10, 100, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

METRIC_NAMES = (
    "snowmelt_collector_requests_total",
    "snowmelt_collector_request_bytes_total",
    "snowmelt_collector_payloads_total",
    "snowmelt_collector_size_violations_total",
    "snowmelt_collector_split_requests_total",
    "snowmelt_collector_sink_unavailable_total",
    "snowmelt_collector_produce_latency_seconds",
    "snowmelt_collector_buffer_records",
    "snowmelt_collector_sink_healthy",
    "snowmelt_enrich_records_total",
    "snowmelt_enrich_events_good_total",
    "snowmelt_enrich_events_bad_total",
    "snowmelt_enrich_stage_errors_total",
    "snowmelt_enrich_batch_latency_seconds",
    "snowmelt_enrich_consumer_lag_records",
    "snowmelt_enrich_bad_rows_total",
    "snowmelt_enrich_batch_records",
    "snowmelt_enrich_batches_in_flight",
    "snowmelt_enrich_batches_in_flight_limit",
    "snowmelt_enrich_rereads_total",
    "snowmelt_enrich_transactions_total",
    "snowmelt_enrich_transaction_retries_total",
    "snowmelt_load_records_total",
    "snowmelt_load_batches_total",
    "snowmelt_load_retries_total",
    "snowmelt_load_batch_latency_seconds",
    "snowmelt_load_batch_records",
    "snowmelt_load_store_healthy",
    "snowmelt_load_buffered_records",
    "snowmelt_load_consumer_lag_records",
    "snowmelt_load_commit_delay_seconds",
    "snowmelt_load_assigned_partitions",
    "snowmelt_load_buffer_limit_records",
)

#: seconds from a record reaching Kafka until the loader committed it (minutes, not milliseconds)
DELAY_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


class Histogram:
    """A cumulative-bucket histogram updated without locks."""

    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds=LATENCY_BUCKETS):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        """This histogram as a Prometheus metric family, for a collector's ``collect()``."""
        return HistogramMetricFamily(name, documentation, buckets=self.buckets(), sum_value=self.total)

    def buckets(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip(self.bounds + (float("inf"),), self.counts):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class CollectorStats:
    """The collector's counters; one per process, exported at scrape time."""

    def __init__(self):
        self.requests: dict[tuple[str, int], int] = {}
        self.request_bytes: dict[str, int] = {}
        self.payloads = 0
        self.size_violations = 0
        self.splits = 0
        self.sink_unavailable = 0
        self.produce_latency = Histogram()
        # set by the running collector: () -> (buffered records, healthy)
        self.sink_state = lambda: (0, False)

    def collect(self):
        requests = CounterMetricFamily("snowmelt_collector_requests",
                                       "HTTP requests answered, by route and status", labels=["route", "status"])
        for (route, status), n in sorted(self.requests.items()):
            requests.add_metric([route, str(status)], n)
        yield requests
        size = CounterMetricFamily("snowmelt_collector_request_bytes",
                                   "Bytes of request bodies and query strings recorded", labels=["route"])
        for route, n in sorted(self.request_bytes.items()):
            size.add_metric([route], n)
        yield size
        yield CounterMetricFamily("snowmelt_collector_payloads",
                                  "Raw CollectorPayload records made safe on the raw topic", value=self.payloads)
        yield CounterMetricFamily("snowmelt_collector_size_violations",
                                  "Payloads too large for the raw topic, written as bad rows",
                                  value=self.size_violations)
        yield CounterMetricFamily("snowmelt_collector_split_requests",
                                  "POST batches split into several payloads to fit the record limit",
                                  value=self.splits)
        yield CounterMetricFamily("snowmelt_collector_sink_unavailable",
                                  "Requests answered 503 because the sink could not take them",
                                  value=self.sink_unavailable)
        yield self.produce_latency.family("snowmelt_collector_produce_latency_seconds",
                                          "Time from handing a request's records to the sink until they are safe")
        buffered, healthy = self.sink_state()
        yield GaugeMetricFamily("snowmelt_collector_buffer_records",
                                "Records accepted by the producer and not yet acknowledged", value=buffered)
        yield GaugeMetricFamily("snowmelt_collector_sink_healthy", "1 while the broker is reachable",
                                value=1 if healthy else 0)


COLLECTOR = CollectorStats()
REGISTRY.register(COLLECTOR)


class EnrichStats:
    """The enrich worker's counters; registered only by the process that runs one."""

    def __init__(self):
        self.records = 0
        self.good = 0
        self.bad = 0
        self.stage_errors = 0
        self.batch_latency = Histogram()
        self.batch_records = Histogram(BATCH_SIZE_BUCKETS)
        # bad row type (schema_violations, adapter_failures, ...) -> bad rows written
        self.bad_by_type: dict[str, int] = {}
        # batches whose output awaits the broker's acknowledgement, and how many may
        self.in_flight = 0
        self.in_flight_limit = 0
        # (topic, partition) -> records between the last one processed and the high watermark
        self.lag: dict[tuple[str, int], int] = {}
        # partitions sought back because records were dropped before reaching the worker
        self.rereads = 0
        # exactly_once: Kafka transactions committed (each holds one or more batches), and aborted to be tried again
        self.transactions = 0
        self.transaction_retries = 0

    def count_bad_rows(self, rows) -> None:
        """Count written bad rows by their type (the name in their ``badrows/<type>/`` schema)."""
        by_type = self.bad_by_type
        for row in rows:
            kind = bad_row_type(row)
            by_type[kind] = by_type.get(kind, 0) + 1

    def collect(self):
        yield CounterMetricFamily("snowmelt_enrich_records",
                                  "Raw records read from the raw topic and run through the stage",
                                  value=self.records)
        yield CounterMetricFamily("snowmelt_enrich_events_good",
                                  "Enriched events written to the enriched topic", value=self.good)
        yield CounterMetricFamily("snowmelt_enrich_events_bad",
                                  "Bad rows written to the bad topic", value=self.bad)
        yield CounterMetricFamily("snowmelt_enrich_stage_errors",
                                  "Records on which the stage raised, written as generic_error bad rows",
                                  value=self.stage_errors)
        yield self.batch_latency.family("snowmelt_enrich_batch_latency_seconds",
                                        "Time from a batch being cut until its output is acknowledged by the broker")
        lag = GaugeMetricFamily("snowmelt_enrich_consumer_lag_records",
                                "Records of a raw-topic partition not yet processed (high watermark - position)",
                                labels=["topic", "partition"])
        for (topic, partition), n in sorted(self.lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        by_type = CounterMetricFamily("snowmelt_enrich_bad_rows", "Bad rows written to the bad topic, by type",
                                      labels=["type"])
        for kind, n in sorted(self.bad_by_type.items()):
            by_type.add_metric([kind], n)
        yield by_type
        yield self.batch_records.family("snowmelt_enrich_batch_records", "Raw records per batch enriched")
        yield GaugeMetricFamily("snowmelt_enrich_batches_in_flight",
                                "Batches enriched whose output awaits the broker's acknowledgement",
                                value=self.in_flight)
        yield GaugeMetricFamily("snowmelt_enrich_batches_in_flight_limit",
                                "enrich.max_batches_in_flight: when in flight reaches it, reading waits",
                                value=self.in_flight_limit)
        yield CounterMetricFamily("snowmelt_enrich_rereads",
                                  "Partitions read again from an offset whose records never reached the worker "
                                  "(dropped by the consumer in a rebalance)", value=self.rereads)
        yield CounterMetricFamily("snowmelt_enrich_transactions",
                                  "Kafka transactions committed (processing_guarantee exactly_once), each holding "
                                  "the output and raw offsets of one or more batches", value=self.transactions)
        yield CounterMetricFamily("snowmelt_enrich_transaction_retries",
                                  "Transactions aborted and tried again (a record not acknowledged, a timeout, "
                                  "the broker away)", value=self.transaction_retries)


def bad_row_type(row: bytes) -> str:
    """``schema_violations`` for a bad row whose schema is ``iglu:...badrows/schema_violations/...``."""
    start = row.find(b"badrows/", 0, 200)
    if start < 0:
        return "unknown"
    start += 8
    end = row.find(b"/", start, start + 64)
    return row[start:end].decode("ascii", "replace") if end > start else "unknown"


ENRICH = EnrichStats()


class LoadStats:
    """A loader's counters (``store`` labels them: clickhouse, s3); registered by the process that runs one."""

    def __init__(self, store: str = "store"):
        self.store = store
        self.records: dict[str, int] = {}  # kind -> records written
        self.batches = 0
        self.retries = 0
        self.healthy = 1
        self.buffered = 0
        self.batch_latency = Histogram()
        self.batch_records = Histogram(BATCH_SIZE_BUCKETS)
        self.commit_delay = Histogram(DELAY_BUCKETS)
        self.lag: dict[tuple[str, int], int] = {}
        self.assigned = 0
        self.batch_size = 0

    def collect(self):
        records = CounterMetricFamily("snowmelt_load_records", "Records written to the store and committed",
                                      labels=["store", "kind"])
        for kind, n in sorted(self.records.items()):
            records.add_metric([self.store, kind], n)
        yield records
        yield _labelled(CounterMetricFamily("snowmelt_load_batches", "Batches written to the store",
                                            labels=["store"]), self.store, self.batches)
        yield _labelled(CounterMetricFamily("snowmelt_load_retries",
                                            "Writes that failed with the store unavailable and were retried",
                                            labels=["store"]), self.store, self.retries)
        yield _labelled(GaugeMetricFamily("snowmelt_load_store_healthy",
                                          "1 when the last write succeeded, 0 while retrying", labels=["store"]),
                        self.store, self.healthy)
        yield _labelled(GaugeMetricFamily("snowmelt_load_buffered_records",
                                          "Records read and not yet written (bounded by load.batch_size per partition)",
                                          labels=["store"]), self.store, self.buffered)
        yield self.batch_latency.family("snowmelt_load_batch_latency_seconds",
                                        "Time to write one batch to the store (retries included)")
        yield self.batch_records.family("snowmelt_load_batch_records", "Records per batch written")
        lag = GaugeMetricFamily("snowmelt_load_consumer_lag_records",
                                "Records of a partition not yet loaded (high watermark - committed position)",
                                labels=["store", "topic", "partition"])
        for (topic, partition), n in sorted(self.lag.items()):
            lag.add_metric([self.store, topic, str(partition)], n)
        yield lag
        yield self.commit_delay.family("snowmelt_load_commit_delay_seconds",
                                       "Age of a batch's oldest record (its Kafka timestamp) when the batch is committed")
        yield _labelled(GaugeMetricFamily("snowmelt_load_assigned_partitions", "Partitions assigned to this loader",
                                          labels=["store"]), self.store, self.assigned)
        yield _labelled(GaugeMetricFamily("snowmelt_load_buffer_limit_records",
                                          "Most records this loader buffers (load.batch_size x assigned partitions)",
                                          labels=["store"]), self.store, self.batch_size * self.assigned)


def _labelled(family, label: str, value: float):
    family.add_metric([label], value)
    return family


def exposition() -> tuple[bytes, str]:
    """The text exposition of every registered metric and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
