"""One naming scheme and one declared list: what the roles expose and what the dashboard reads.

Every metric family a role's stats object exposes is in ``METRIC_NAMES`` under
``snowmelt_<role>_``, every declared name is exposed by some role (no dead
names), and the Grafana pipeline-health dashboard queries declared names only.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from snowmelt.metrics import METRIC_NAMES, CollectorStats, EnrichStats, LoadStats, bad_row_type

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "snowmelt-pipeline-health.json"
ROLES = ("collector", "enrich", "load")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def busy_collector() -> CollectorStats:
    stats = CollectorStats()
    stats.requests[("/i", 200)] = 5
    stats.requests[("/i", 503)] = 1
    stats.request_bytes["/i"] = 1200
    stats.payloads = 5
    stats.produce_latency.observe(0.003)
    stats.sink_state = lambda: (3, True)
    return stats


def busy_enrich() -> EnrichStats:
    stats = EnrichStats()
    stats.records = 10
    stats.good, stats.bad = 8, 2
    stats.count_bad_rows([b'{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/jsonschema/2-0-0"}',
                          b'{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/adapter_failures/jsonschema/1-0-0"}'])
    stats.batch_latency.observe(0.02)
    stats.batch_records.observe(10)
    stats.in_flight, stats.in_flight_limit = 2, 4
    stats.lag[("raw", 0)] = 7
    return stats


def busy_load() -> LoadStats:
    stats = LoadStats("s3")
    stats.records["enriched"] = 9
    stats.batches = 1
    stats.batch_latency.observe(0.2)
    stats.batch_records.observe(9)
    stats.commit_delay.observe(1.5)
    stats.lag[("enriched", 1)] = 4
    stats.assigned, stats.batch_size = 2, 50_000
    return stats


def exposed(stats) -> dict[str, str]:
    """Declared-form name (counters with ``_total``) -> metric type, as a scrape sees them."""
    registry = CollectorRegistry()
    registry.register(stats)
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        name = family.name + "_total" if family.type == "counter" else family.name
        out[name] = family.type
    return out


@pytest.mark.parametrize("role,make", [("collector", busy_collector), ("enrich", busy_enrich), ("load", busy_load)])
def test_every_metric_a_role_exposes_is_declared_with_its_role_prefix(role, make):
    names = exposed(make())
    assert names, role
    undeclared = sorted(set(names) - set(METRIC_NAMES))
    assert not undeclared, f"{role} exposes undeclared metrics: {undeclared}"
    wrong_prefix = sorted(n for n in names if not n.startswith(f"snowmelt_{role}_"))
    assert not wrong_prefix, wrong_prefix
    declared_for_role = {n for n in METRIC_NAMES if n.startswith(f"snowmelt_{role}_")}
    assert declared_for_role == set(names), f"declared but not exposed: {sorted(declared_for_role - set(names))}"


def test_declared_names_follow_the_scheme():
    assert len(METRIC_NAMES) == len(set(METRIC_NAMES))
    types = {}
    for make in (busy_collector, busy_enrich, busy_load):
        types.update(exposed(make()))
    for name in METRIC_NAMES:
        assert re.fullmatch(r"snowmelt_(collector|enrich|load)_[a-z0-9_]+", name), name
        assert (types[name] == "counter") == name.endswith("_total"), name
        if types[name] == "histogram":
            assert name.endswith(("_seconds", "_records")), name


def test_every_family_registered_by_the_role_modules_is_declared():
    # importing the roles registers the collector's stats globally; the workers' stats register at run()
    from prometheus_client import REGISTRY

    import collector.app  # noqa: F401
    import loaders.runner  # noqa: F401
    import processor.worker  # noqa: F401
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        if family.name.startswith("snowmelt"):
            name = family.name + "_total" if family.type == "counter" else family.name
            assert name in METRIC_NAMES, name


def test_the_issue_metric_families_are_all_there():
    wanted = {
        "throughput": ["snowmelt_collector_requests_total", "snowmelt_enrich_records_total",
                       "snowmelt_load_records_total"],
        "latency histograms": ["snowmelt_collector_produce_latency_seconds", "snowmelt_enrich_batch_latency_seconds",
                               "snowmelt_load_batch_latency_seconds", "snowmelt_load_commit_delay_seconds"],
        "consumer lag per partition": ["snowmelt_enrich_consumer_lag_records", "snowmelt_load_consumer_lag_records"],
        "batch sizes": ["snowmelt_enrich_batch_records", "snowmelt_load_batch_records"],
        "bad rows by type": ["snowmelt_enrich_bad_rows_total"],
        "retries": ["snowmelt_load_retries_total"],
        "buffer fill": ["snowmelt_collector_buffer_records", "snowmelt_enrich_batches_in_flight",
                        "snowmelt_load_buffered_records", "snowmelt_load_buffer_limit_records"],
    }
    for what, names in wanted.items():
        assert set(names) <= set(METRIC_NAMES), what
    text = generate_latest(_registry(busy_enrich(), busy_load())).decode()
    assert 'snowmelt_enrich_bad_rows_total{type="schema_violations"} 1.0' in text
    assert 'snowmelt_enrich_consumer_lag_records{partition="0",topic="raw"} 7.0' in text
    assert 'snowmelt_load_consumer_lag_records{partition="1",store="s3",topic="enriched"} 4.0' in text
    assert 'snowmelt_load_buffer_limit_records{store="s3"} 100000.0' in text


def _registry(*stats) -> CollectorRegistry:
    registry = CollectorRegistry()
    for s in stats:
        registry.register(s)
    return registry


def test_bad_row_type_reads_the_schema_name():
    assert bad_row_type(b'{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/size_violation/jsonschema/1-0-0",'
                        b'"data":{}}') == "size_violation"
    assert bad_row_type(b'not json at all') == "unknown"


def dashboard_queries(doc) -> list[str]:
    queries = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query", "definition") and isinstance(value, str):
                    queries.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(doc)
    return queries


def referenced_metrics(query: str) -> set[str]:
    names = set()
    for name in re.findall(r"\bsnowmelt_[a-z0-9_]*[a-z0-9]", query):
        if name not in METRIC_NAMES and name.endswith(HISTOGRAM_SUFFIXES):
            name = name.rsplit("_", 1)[0]
        names.add(name)
    return names


def test_the_dashboard_queries_only_declared_metrics():
    doc = json.loads(DASHBOARD.read_text())
    queries = dashboard_queries(doc)
    used = set().union(*(referenced_metrics(q) for q in queries))
    assert used, "the dashboard queries no snowmelt metric"
    assert not sorted(used - set(METRIC_NAMES)), f"undeclared: {sorted(used - set(METRIC_NAMES))}"
    # histogram series are read through their _bucket/_sum/_count, never as a bare name
    for q in queries:
        for name in re.findall(r"\bsnowmelt_[a-z0-9_]*[a-z0-9]", q):
            if name in METRIC_NAMES and name.endswith(("_seconds", "_batch_records")) \
                    and name != "snowmelt_load_buffered_records":
                raise AssertionError(f"histogram {name} used without a series suffix in {q}")


def test_the_dashboard_covers_pipeline_health():
    doc = json.loads(DASHBOARD.read_text())
    panels = [p for p in doc["panels"] if p["type"] != "row"]
    assert all(p.get("targets") for p in panels)
    used = set().union(*(referenced_metrics(q) for q in dashboard_queries(doc)))
    for name in ("snowmelt_collector_requests_total", "snowmelt_collector_sink_unavailable_total",
                 "snowmelt_collector_produce_latency_seconds", "snowmelt_enrich_events_good_total",
                 "snowmelt_enrich_events_bad_total", "snowmelt_enrich_bad_rows_total",
                 "snowmelt_enrich_batch_latency_seconds", "snowmelt_enrich_consumer_lag_records",
                 "snowmelt_load_consumer_lag_records", "snowmelt_load_records_total", "snowmelt_load_retries_total",
                 "snowmelt_load_store_healthy", "snowmelt_load_buffered_records", "snowmelt_collector_buffer_records"):
        assert name in used, name
    # a data-source variable, not a hard-coded uid
    assert any(v["type"] == "datasource" and v["query"] == "prometheus" for v in doc["templating"]["list"])
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles))

