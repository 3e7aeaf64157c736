"""Every Prometheus metric snowmelt exports, declared in one place.

Names follow one scheme: ``snowmelt_<role>_<what>_<unit>``, counters ending in
``_total``.  ``METRIC_NAMES`` is the declared list; a test checks that what a
role exposes at ``/metrics`` is drawn from it.
"""
from __future__ import annotations

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, disable_created_metrics,
                               generate_latest)

# The *_created series double every counter's cardinality and nothing reads them.
disable_created_metrics()

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

COLLECTOR_REQUESTS = Counter(
    "snowmelt_collector_requests_total", "HTTP requests answered, by route and status", ["route", "status"]
)
COLLECTOR_REQUEST_BYTES = Counter(
    "snowmelt_collector_request_bytes_total", "Bytes of request bodies and query strings received", ["route"]
)
COLLECTOR_PAYLOADS = Counter(
    "snowmelt_collector_payloads_total", "Raw CollectorPayload records written to the raw topic"
)
COLLECTOR_SIZE_VIOLATIONS = Counter(
    "snowmelt_collector_size_violations_total", "Payloads too large for the raw topic, written as bad rows"
)
COLLECTOR_SPLITS = Counter(
    "snowmelt_collector_split_requests_total", "POST batches split into several payloads to fit the record limit"
)
COLLECTOR_SINK_ERRORS = Counter(
    "snowmelt_collector_sink_unavailable_total", "Requests answered 503 because the sink could not take them"
)
COLLECTOR_PRODUCE_LATENCY = Histogram(
    "snowmelt_collector_produce_latency_seconds",
    "Time from handing a request's records to the sink until they are safe",
    buckets=LATENCY_BUCKETS,
)
COLLECTOR_BUFFER_FILL = Gauge(
    "snowmelt_collector_buffer_records", "Records accepted by the producer and not yet acknowledged"
)
COLLECTOR_SINK_HEALTHY = Gauge("snowmelt_collector_sink_healthy", "1 while the broker is reachable")

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
)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every registered metric and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
