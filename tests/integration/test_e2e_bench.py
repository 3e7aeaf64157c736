"""The end-to-end benchmark's harness, run small: so that ``bench/e2e_bench.py`` cannot rot.

One short open-loop step through the real processes (collector -> Kafka ->
enrich -> ClickHouse via chdb and S3 via SeaweedFS), then the harness's own
accounting: every accepted event is enriched or a bad row, the bad-on-purpose
events are exactly the bad rows, ClickHouse and S3 hold every enriched event
once, and every marker event became queryable in ClickHouse.
"""
from __future__ import annotations

import json

from bench.e2e_bench import bad_row_event_ids, report_text, run_bench


def test_e2e_harness_accounts_for_every_event(kafka_broker, seaweedfs):
    results = run_bench([300], 5, batch_timeout=0.5, partitions=2, drain_limit=60, bad_share=0.05,
                        marker_rate=5, latency_step=False, progress=False, broker=kafka_broker, s3=seaweedfs)
    print(report_text(results))
    (step,) = results["steps"]
    load, markers, counts = step["load"], step["markers"], results["accounting"]["counts"]

    assert results["accounting"]["every_event_accounted_for"], results["accounting"]["differences"]
    assert load["events_sent"] >= 0.9 * 300 * 5 and load["status_2xx"] == load["requests_sent"]
    assert counts["events accepted (2xx)"] == counts["events sent"]
    # the bad events sent on purpose are the bad rows, one each; the rest are enriched, once everywhere
    assert load["bad_events_sent"] > 10
    assert counts["bad rows on topic"] == counts["bad on purpose, accepted"] == load["bad_events_sent"]
    good = counts["events accepted (2xx)"] - counts["bad on purpose, accepted"]
    assert counts["enriched distinct event ids"] == counts["clickhouse distinct event ids"] == good
    assert counts["s3 distinct event ids"] == good
    # markers: ~5/s, every one seen in ClickHouse with a measured latency
    assert markers["markers_sent"] >= 10 and markers["markers_lost"] == 0, markers
    assert 0 < markers["latency_ms"]["p50"] <= markers["latency_ms"]["max"]
    assert step["drain_seconds"] is not None and step["sustained"], step["why_not"]
    assert step["cpu_seconds"]["enrich"] > 0 and step["cpu_seconds"]["load-clickhouse"] > 0
    threads = step["cpu_by_thread"]
    assert {"collector", "enrich", "load-clickhouse", "load-s3", "kafka"} <= set(threads), threads
    assert sum(threads["kafka"].values()) > 0, threads["kafka"]  # the broker's JVM threads served the step
    assert threads["enrich"]["main"] > 0 and threads["load-clickhouse"]["main"] > 0, threads
    assert all(step["rss_mb"][name]["peak"] > 20 for name in step["cpu_seconds"] if name in step["rss_mb"])
    assert {"collector", "enrich", "load-clickhouse", "load-s3"} <= set(step["rss_mb"]), step["rss_mb"]
    json.dumps(results)  # what --json writes


def test_bad_row_ids_come_from_the_event_not_the_whole_payload():
    known = {"11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"}
    a, b = sorted(known)
    protocol = {"schema": "iglu:com.snowplowanalytics.snowplow.badrows/tracker_protocol_violations/jsonschema/1-0-1",
                "data": {"payload": {"querystring": [{"name": "e", "value": "zz"}, {"name": "eid", "value": a}],
                                     "body": json.dumps([{"eid": a}, {"eid": b}])}}}
    schema = {"schema": "iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/jsonschema/2-0-1",
              "data": {"payload": {"enriched": {"event_id": b}, "raw": {"body": a}}}}
    whole = {"schema": "iglu:com.snowplowanalytics.snowplow.badrows/size_violation/jsonschema/1-0-0",
             "data": {"payload": {"event": f"{a} {b}"}}}
    assert bad_row_event_ids(json.dumps(protocol).encode(), known) == {a}
    assert bad_row_event_ids(json.dumps(schema).encode(), known) == {b}
    assert bad_row_event_ids(json.dumps(whole).encode(), known) == known
