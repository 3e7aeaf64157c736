"""A rolling restart of every role under load, as the Helm chart's rollout does it.

A Deployment's rolling update with ``maxSurge: 1`` starts the new pod, then
sends SIGTERM to the old one (which drains within its grace period).  Here,
with tracker traffic flowing through collector -> enrich -> S3 and ClickHouse loaders on one
broker: a new collector starts and the traffic's new connections go to it
(the Service's endpoints), then the old one gets SIGTERM; a second worker
joins the enrich group and the first is stopped with SIGTERM; then the same
for the S3 loader; the ClickHouse loader (chdb: one process per data folder) is stopped
with SIGTERM and then started.  What must hold, by distinct event_id: every event answered
2xx is enriched and loaded, nothing is enriched or loaded twice (a graceful
hand-over commits what it wrote before the partitions move), no request gets
an HTTP error (a keep-alive connection the old collector closes is the only
failure allowed: a tracker sends again), and each group's committed offsets
never stand still for more than 10 s while records wait.  The longest
stand-still of each group is printed (``-s``).
"""
from __future__ import annotations

import threading
import time

import pytest

from tests.services.pipeline import PARTITIONS, Traffic, chdb_event_ids, end_offsets, metric_sum, pipeline, report
from tests.services.collector import CollectorProcess
from tests.services.load import committed_offsets
from tests.services.s3 import s3_enriched_event_ids
from tests.services.wait import wait_until

STALL_LIMIT = 10.0


class StallWatch:
    """Samples a group's committed offsets every ``interval`` seconds: the longest time they did not move
    while the topic had records past them."""

    def __init__(self, bootstrap: str, group: str, topic: str, interval: float = 0.25):
        self.bootstrap, self.group, self.topic, self.interval = bootstrap, group, topic, interval
        self.longest = 0.0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last, since = None, time.monotonic()
        while not self.stopping.wait(self.interval):
            committed = committed_offsets(self.bootstrap, self.group, self.topic, PARTITIONS)
            ends = end_offsets(self.bootstrap, [self.topic])[self.topic]
            now = time.monotonic()
            waiting = any(end > max(c, 0) for c, end in zip(committed, ends))
            if committed != last or not waiting:
                last, since = committed, now
            self.longest = max(self.longest, now - since)

    def __enter__(self) -> StallWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(30)


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_rolling_restart_of_every_role_loses_and_duplicates_nothing(
        kafka_broker, seaweedfs, make_s3_bucket, tmp_path, guarantee):
    bucket = make_s3_bucket(seaweedfs)
    with pipeline(kafka_broker, bucket, seaweedfs.endpoint_url, enrich={"enrich.processing_guarantee": guarantee},
                  load={"load.exactly_once": str(guarantee == "exactly_once").lower()},
                  chdb_path=str(tmp_path / "ch")) as p:
        traffic = Traffic(p.collector.port, rate=40, max_requests=100_000).start()
        try:
            old_worker = p.workers[0]
            wait_until(lambda: metric_sum(old_worker.metrics(), "snowmelt_enrich_events_good_total") >= 300, 90,
                       "the first worker enriching")
            with StallWatch(p.bootstrap, p.enrich_group, p.topics.raw) as enrich_watch, \
                    StallWatch(p.bootstrap, p.load_group, p.topics.enriched) as load_watch:
                # the collector: the new pod takes the new connections, then SIGTERM to the old one
                new_collector = CollectorProcess(p.bootstrap, p.topics, p.collector_settings)
                p.processes.append(new_collector)
                new_collector.start(60)
                traffic.port = new_collector.port
                assert p.collector.terminate(60) == 0, p.collector.output()
                p.collector = new_collector
                traffic.wait_accepted(200, 60, "events accepted after the collector hand-over")
                # enrich: the new pod, then SIGTERM to the old one
                new_worker = p.new_worker(transactional_id=f"{p.enrich_group}-1").start(90)
                assert old_worker.terminate(60) == 0, old_worker.output()
                wait_until(lambda: metric_sum(new_worker.metrics(), "snowmelt_enrich_events_good_total") > 0, 60,
                           "the new worker enriching")
                traffic.wait_accepted(200, 60, "events accepted after the enrich hand-over")
                # the S3 loader likewise
                old_loader = p.loader
                new_loader = p.new_loader("s3")
                new_loader.start(90)
                assert old_loader.terminate(60) == 0, old_loader.output()
                p.loader = new_loader
                traffic.wait_accepted(200, 60, "events accepted after the loader hand-over")
                # the ClickHouse loader on chdb: one process per data folder, so SIGTERM first, then start
                # (a loader of a ClickHouse server is handed over like the S3 one)
                assert p.ch_loader.terminate(60) == 0, p.ch_loader.output()
                p.ch_loader = p.new_loader("clickhouse")
                p.ch_loader.start(90)
                traffic.wait_accepted(200, 60, "events accepted after the ClickHouse loader's restart")
        finally:
            traffic.stop()
        enriched, bad = p.settle()
        p.stop()
        loaded = s3_enriched_event_ids(seaweedfs.client(), bucket)
    in_clickhouse = chdb_event_ids(tmp_path / "ch")
    report(f"rolling restart, {guarantee}", traffic, enriched, loaded, bad,
           f"longest stand-still of the enrich group {enrich_watch.longest:.1f} s, "
           f"of the S3 loader's {load_watch.longest:.1f} s; ClickHouse rows {len(in_clickhouse)} "
           f"({len(in_clickhouse) - len(set(in_clickhouse))} duplicates); "
           f"unanswered requests {[f[0] for f in traffic.failed]}")
    assert not [f for f in traffic.failed if f[0].startswith("HTTP ")], traffic.failed[:5]
    accepted, sent = set(traffic.accepted), set(traffic.accepted) | set(traffic.refused)
    assert accepted <= set(enriched), f"{len(accepted - set(enriched))} accepted events not enriched"
    assert set(enriched) <= sent, "an enriched event that was never sent"
    assert set(loaded) == set(enriched), "the store holds other events than the enriched topic"
    assert len(enriched) == len(set(enriched)), f"{len(enriched) - len(set(enriched))} events enriched twice"
    assert len(loaded) == len(set(loaded)), f"{len(loaded) - len(set(loaded))} events loaded twice"
    assert sorted(in_clickhouse) == sorted(set(enriched)), "ClickHouse holds other rows than the enriched events"
    assert enrich_watch.longest <= STALL_LIMIT and load_watch.longest <= STALL_LIMIT, (
        enrich_watch.longest, load_watch.longest)
