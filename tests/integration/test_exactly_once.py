"""Exactly once from the raw topic to ClickHouse and S3, through kill -9 of every stage.

Tracker traffic flows through collector -> enrich (``processing_guarantee:
exactly_once``) -> the ClickHouse loader (chdb) and the S3 loader (SeaweedFS),
both with ``load.exactly_once``.  While it flows, the enrich worker and each
loader are killed (-9) and replaced, twice each, at moments of the stream.
What must hold, counted by event_id: every event answered 2xx is enriched and
loaded; the enriched topic read committed, ClickHouse's events table (every
inserted row, no ``FINAL``) and S3's objects each hold every event exactly
once (rows = distinct event ids).
"""
from __future__ import annotations

import time

from tests.services.pipeline import (Traffic, assert_nothing_accepted_lost, chdb_event_ids, metric_sum, pipeline,
                                     report)
from tests.services.s3 import s3_enriched_event_ids
from tests.services.wait import wait_until

EXACTLY_ONCE = {"enrich": {"enrich.processing_guarantee": "exactly_once"}, "load": {"load.exactly_once": "true"}}


def test_every_stage_killed_twice_leaves_each_event_once_in_clickhouse_and_s3(
        kafka_broker, seaweedfs, make_s3_bucket, tmp_path):
    bucket = make_s3_bucket(seaweedfs)
    chdb = tmp_path / "ch"
    with pipeline(kafka_broker, bucket, seaweedfs.endpoint_url, chdb_path=str(chdb), **EXACTLY_ONCE) as p:
        traffic = Traffic(p.collector.port, rate=60, max_requests=100_000).start()
        kills = []
        try:
            for role in ("enrich", "s3", "clickhouse") * 2:
                traffic.wait_accepted(250, 60, f"events accepted before the kill of {role}")
                if role == "enrich":  # mid-stream: it has committed transactions of its own
                    worker = p.workers[-1]
                    wait_until(lambda: metric_sum(worker.metrics(), "snowmelt_enrich_transactions_total") > 0,
                               60, "the enrich worker committing transactions")
                started = time.monotonic()
                p.replace(role)
                kills.append(f"{role} {time.monotonic() - started:.1f}s")
            traffic.wait_accepted(250, 60, "events accepted after the last replacement")
        finally:
            traffic.stop()
        enriched, bad = p.settle(180)
        p.stop()
        in_s3 = s3_enriched_event_ids(seaweedfs.client(), bucket)
    in_clickhouse = chdb_event_ids(chdb)
    report("every stage killed twice, exactly once", traffic, enriched, in_s3, bad,
           f"clickhouse rows {len(in_clickhouse)} ({len(in_clickhouse) - len(set(in_clickhouse))} duplicates); "
           f"replacements (kill to ready): {', '.join(kills)}")
    for loaded in (in_s3, in_clickhouse):
        assert_nothing_accepted_lost(traffic, enriched, loaded)
    assert set(enriched) == set(traffic.accepted) and bad == 0
    assert len(enriched) == len(set(enriched)), f"{len(enriched) - len(set(enriched))} enriched twice"
    assert len(in_s3) == len(set(in_s3)), f"{len(in_s3) - len(set(in_s3))} duplicate rows in S3"
    assert len(in_clickhouse) == len(set(in_clickhouse)), \
        f"{len(in_clickhouse) - len(set(in_clickhouse))} duplicate rows in ClickHouse"
