"""Horizontal scaling proven: workers join, crash and leave while events flow, and none is lost.

On six-partition raw, enriched and bad topics the real collector takes a steady
stream of tracker POSTs (a few thousand events over about 16 seconds) while
three ``snowmelt enrich`` workers share one consumer group, two ``snowmelt load
s3`` loaders share another on one SeaweedFS bucket and two ``snowmelt load
clickhouse`` loaders share a third.  Mid-stream a fourth enrich worker joins,
one enrich worker is killed with SIGKILL, another is stopped with SIGTERM (and
must exit 0), and one loader of each kind is killed with SIGKILL and restarted.

Afterwards every event the collector acknowledged is on the enriched topic, in
S3 and in ClickHouse at least once.  There is no ClickHouse server here and
chdb lets one process open a data folder, so each ClickHouse loader has its own
chdb folder: each folder holds every event_id at most once after ClickHouse's
own deduplication (``FINAL``), and the union of the two folders holds every
event_id; the events present in both folders (a partition that moved between
the loaders mid-batch) are counted and printed.  With ``CLICKHOUSE_URL`` set,
both loaders write to that server instead and each event_id must be there
exactly once after ``FINAL``.
"""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.services.collector import CollectorProcess
from tests.services.enrich import EnrichProcess
from tests.services.load import LoadProcess, wait_committed
from tests.services.payloads import PAYLOAD_DATA, TP2
from tests.services.pipeline import CONSUMER
from tests.services.s3 import s3_enriched_event_ids
from tests.services.topics import end_offsets as topic_end_offsets
from tests.services.wait import metric, wait_until

PARTITIONS = 6
EVENTS = 3000
EVENTS_PER_REQUEST = 5
SECONDS = 16.0
CLICKHOUSE_URL = os.environ.get("CLICKHOUSE_URL", "")


class Traffic:
    """POSTs EVENTS page views to the collector, EVENTS_PER_REQUEST a request, at a steady pace.

    ``sent`` holds the event_ids of every request the collector answered 200
    (acknowledged by the broker); any other answer is recorded in ``failures``.
    """

    def __init__(self, port: int):
        self.port = port
        self.sent: list[str] = []
        self.failures: list[str] = []
        self.started = 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        requests = EVENTS // EVENTS_PER_REQUEST
        step = SECONDS / requests
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            for n in range(requests):
                batch = [{"e": "pv", "eid": str(uuid.uuid4()), "p": "web", "tv": "js-3.0.0",
                          "url": f"https://shop.acme.com/p/{n}", "duid": str(uuid.UUID(int=n, version=4))}
                         for _ in range(EVENTS_PER_REQUEST)]
                body = json.dumps({"schema": PAYLOAD_DATA, "data": batch})
                try:
                    conn.request("POST", TP2, body=body, headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status == 200:
                        self.sent.extend(e["eid"] for e in batch)
                    else:
                        self.failures.append(f"request {n}: HTTP {resp.status}")
                except OSError as exc:
                    self.failures.append(f"request {n}: {exc!r}")
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                delay = self.started + (n + 1) * step - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the traffic, not waiting for a result
        finally:
            conn.close()
            self.done.set()

    def start(self) -> Traffic:
        self.started = time.monotonic()
        self.thread.start()
        return self

    def at(self, seconds: float) -> None:
        """Sleep until ``seconds`` after the traffic started (the moment of the next disruption)."""
        delay = self.started + seconds - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def end_offsets(bootstrap: str, topics: list[str]) -> dict[str, list[int]]:
    return topic_end_offsets(bootstrap, topics, PARTITIONS)


def enriched_event_ids(bootstrap: str, topic: str, expected: set[str], timeout: float) -> list[str]:
    """Every event_id on ``topic`` (with repeats), read until each of ``expected`` was seen."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    found: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while not expected <= set(found):
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(expected - set(found))} of {len(expected)} events not on {topic} "
                                     f"after {timeout}s")
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    found.append(msg.value().decode().split("\t", 7)[6])
        # read to the end of what is there now, so the duplicate count is complete
        ends = end_offsets(bootstrap, [topic])[topic]
        while True:
            positions = [tp.offset for tp in consumer.position(
                [TopicPartition(topic, p) for p in range(PARTITIONS)])]
            if all(pos >= end or end == 0 for pos, end in zip(positions, ends)) or time.monotonic() > deadline:
                break
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    found.append(msg.value().decode().split("\t", 7)[6])
        return found
    finally:
        consumer.close()


# Run in a child process: chdb opens one data folder per process.
_CHDB_READ = """
import json, sys
from chdb import session
db = session.Session(sys.argv[1])
def rows(sql):
    return json.loads(db.query(sql, "JSONCompact").bytes())["data"]
[[raw]] = rows("SELECT count() FROM snowplow.events")
ids = [r[0] for r in rows("SELECT event_id FROM snowplow.events FINAL")]
db.close()
print(json.dumps({"raw_rows": int(raw), "final": ids}))
"""


def chdb_event_ids(path: str) -> dict:
    """``{"raw_rows": N, "final": [event_id, ...]}`` of the chdb folder ``path``."""
    out = subprocess.run([sys.executable, "-c", _CHDB_READ, path], check=False, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def good_total(worker: EnrichProcess) -> float:
    return metric(worker.metrics(), "snowmelt_enrich_events_good_total")


@pytest.fixture
def topics(make_kafka_topics):
    return make_kafka_topics(partitions=PARTITIONS)


def test_scaling_out_and_in_under_load_loses_no_event(kafka_broker, topics, seaweedfs, make_s3_bucket, tmp_path):
    bootstrap = kafka_broker.bootstrap_servers
    bucket = make_s3_bucket(seaweedfs)
    run = uuid.uuid4().hex[:6]
    enrich_group = f"enrich-scale-{run}"
    enrich_settings = {"enrich.batch_size": "100", "enrich.commit_interval": "0.5", "enrich.session_timeout": "6",
                       "enrich.shutdown_grace": "20"}
    load_common = {"load.batch_size": "500", "load.batch_timeout": "0.5", "load.retry_initial": "0.2",
                   "load.retry_max": "2", "load.shutdown_grace": "20", "kafka.consumer": CONSUMER}
    s3_settings = {**load_common, "load.s3_group_id": f"load-s3-scale-{run}", "s3.backend": "s3",
                   "s3.bucket": bucket, "s3.endpoint_url": seaweedfs.endpoint_url, "s3.path_style": "true"}
    ch_group = f"load-ch-scale-{run}"
    if CLICKHOUSE_URL:
        database = f"snowmelt_scale_{run}"
        ch_settings = [{**load_common, "load.clickhouse_group_id": ch_group, "clickhouse.backend": "server",
                        "clickhouse.url": CLICKHOUSE_URL, "clickhouse.database": database}] * 2
    else:
        chdb_paths = [str(tmp_path / f"chdb-{n}") for n in range(2)]
        ch_settings = [{**load_common, "load.clickhouse_group_id": ch_group, "clickhouse.backend": "chdb",
                        "clickhouse.chdb_path": path} for path in chdb_paths]
    print(f"\nclickhouse backend: {'server at CLICKHOUSE_URL' if CLICKHOUSE_URL else 'chdb, one folder per loader'}")

    processes: list = []

    def started(proc):
        processes.append(proc)
        return proc

    def spawn_all(procs):
        for proc in procs:  # start together, then wait for each (the starts overlap)
            proc.spawn()
            processes.append(proc)
        for proc in procs:
            proc.wait_http(proc.metrics_url, 90)
        return procs

    t0 = time.monotonic()
    try:
        collector = started(CollectorProcess(bootstrap, topics).start())
        workers = spawn_all([EnrichProcess(bootstrap, topics, enrich_settings, group_id=enrich_group)
                             for _ in range(3)])
        s3_loaders = spawn_all([LoadProcess("s3", bootstrap, topics.enriched, topics.bad, s3_settings)
                                for _ in range(2)])
        ch_loaders = spawn_all([LoadProcess("clickhouse", bootstrap, topics.enriched, topics.bad, s)
                                for s in ch_settings])
        print(f"collector, 3 enrich workers, 2 s3 and 2 clickhouse loaders up in {time.monotonic() - t0:.1f}s")
        # the first events are through before the disruptions start: every group has its partitions
        traffic = Traffic(collector.port).start()
        wait_until(lambda: sum(good_total(w) for w in workers) > 0, 60, "the first events to be enriched")

        traffic.at(3)
        fourth = started(EnrichProcess(bootstrap, topics, enrich_settings, group_id=enrich_group).start(90))
        workers.append(fourth)
        print(f"t={time.monotonic() - traffic.started:.1f}s: fourth enrich worker joined")

        traffic.at(6)
        killed_good = good_total(workers[0])
        workers[0].kill()
        print(f"t={time.monotonic() - traffic.started:.1f}s: enrich worker 1 killed (-9) "
              f"after {killed_good:.0f} good events")

        traffic.at(8)
        s3_loaders[0].kill()
        s3_loaders[0] = started(LoadProcess("s3", bootstrap, topics.enriched, topics.bad, s3_settings).start(90))
        print(f"t={time.monotonic() - traffic.started:.1f}s: s3 loader 1 killed (-9) and restarted")

        traffic.at(10)
        stopped_good = good_total(workers[1])
        code = workers[1].terminate(30)
        print(f"t={time.monotonic() - traffic.started:.1f}s: enrich worker 2 stopped (SIGTERM, exit {code}) "
              f"after {stopped_good:.0f} good events")
        assert code == 0, workers[1].output()

        traffic.at(12)
        ch_loaders[0].kill()
        ch_loaders[0] = started(LoadProcess("clickhouse", bootstrap, topics.enriched, topics.bad,
                                            ch_settings[0]).start(90))
        print(f"t={time.monotonic() - traffic.started:.1f}s: clickhouse loader 1 killed (-9) and restarted")

        assert traffic.done.wait(60), "traffic did not finish"
        assert not traffic.failures, traffic.failures[:10]
        assert len(traffic.sent) == EVENTS
        sent = set(traffic.sent)
        print(f"t={time.monotonic() - traffic.started:.1f}s: {len(sent)} events acknowledged by the collector")

        # enrichment: every raw record committed, every event on the enriched topic
        raw_ends = end_offsets(bootstrap, [topics.raw])
        wait_committed(bootstrap, enrich_group, raw_ends, timeout=90)
        enriched = enriched_event_ids(bootstrap, topics.enriched, sent, timeout=60)
        survivors = [workers[2], workers[3]]
        survivor_good = [good_total(w) for w in survivors]
        assert survivor_good[1] > 0, "the fourth worker never got a partition"

        # loading: both loader groups committed to the end of the enriched and bad topics
        ends = end_offsets(bootstrap, [topics.enriched, topics.bad])
        wait_committed(bootstrap, s3_settings["load.s3_group_id"], ends, timeout=90)
        wait_committed(bootstrap, ch_group, ends, timeout=90)
        for proc in survivors + s3_loaders + ch_loaders:
            code = proc.terminate(30)
            assert code == 0, f"{proc.name} exited {code}:\n{proc.output()}"
        collector.terminate(30)
        print(f"all stopped {time.monotonic() - t0:.1f}s after the start")
    finally:
        for proc in processes:
            proc.kill()

    try:
        stored_s3 = s3_enriched_event_ids(seaweedfs.client(), bucket)
        if CLICKHOUSE_URL:
            from loaders.clickhouse import ClickHouseStore
            from snowmelt.config import ClickHouseConfig

            store = ClickHouseStore(ClickHouseConfig(backend="server", url=CLICKHOUSE_URL, database=database))
            try:
                [(raw_rows,)] = store.backend.query(f"SELECT count() FROM {database}.events")
                folders = [{"raw_rows": int(raw_rows), "final": [r[0] for r in store.backend.query(
                    f"SELECT event_id FROM {database}.events FINAL")]}]
            finally:
                store.backend.command(f"DROP DATABASE IF EXISTS {database}")
        else:
            folders = [chdb_event_ids(path) for path in chdb_paths]
    finally:
        for proc in processes:
            if isinstance(proc, CollectorProcess):
                proc.remove_log()
            else:
                proc.close()

    union = set().union(*(f["final"] for f in folders))
    final_rows = sum(len(f["final"]) for f in folders)
    print(f"sent {len(sent)} events; enriched topic {len(enriched)} records "
          f"({len(enriched) - len(set(enriched))} duplicates); enrich good events: killed worker "
          f"{killed_good:.0f}, stopped worker {stopped_good:.0f}, survivors {survivor_good[0]:.0f} and "
          f"{survivor_good[1]:.0f} (the fourth)")
    print(f"s3: {len(stored_s3)} lines, {len(stored_s3) - len(set(stored_s3))} duplicates")
    for n, f in enumerate(folders):
        print(f"clickhouse {'server' if CLICKHOUSE_URL else f'chdb folder {n + 1}'}: {f['raw_rows']} rows inserted, "
              f"{len(f['final'])} after FINAL")
    print(f"clickhouse: {len(union)} distinct event_ids, {final_rows - len(union)} in more than one folder "
          f"(cross-folder duplicates from the rebalances)")

    assert set(enriched) == sent
    assert set(stored_s3) == sent
    for f in folders:
        assert len(f["final"]) == len(set(f["final"])), "an event_id twice in one store after FINAL"
        assert f["final"], "a clickhouse loader loaded nothing"
    assert union == sent
    if CLICKHOUSE_URL:
        assert final_rows == len(sent)
