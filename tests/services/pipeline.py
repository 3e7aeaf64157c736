"""The Kafka pipeline run as real processes under tracker traffic, and reading its output back.

Shared by the fault tests (tests/integration/test_faults.py, test_kafka_cluster.py,
test_up_crash.py) and the failover benchmark (bench/cluster_failover.py):

* :class:`Traffic` -- tracker requests (tp2 POST batches and GET pixels, every
  event with its own ``eid``) at a steady pace from a few threads, each
  request's events sorted by the answer (accepted 2xx, refused 503, failed),
  and every answer timed (``answers``: sent, answered, status);
* :class:`Pipeline` -- collector, one enrich worker, an S3 loader and, when
  given a chdb folder, a ClickHouse loader, on fresh topics and groups of any
  broker with ``bootstrap_servers`` and ``create_topics(names, partitions=)``
  (a single broker or a ``KafkaCluster``);
* reading back: the records of a topic up to its end offsets, the event ids of
  enriched lines, of a chdb store's ``snowplow.events``; the at-least-once
  check :func:`assert_nothing_accepted_lost`.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from snowmelt.lifecycle import EXIT_STALLED
from tests.services.collector import CollectorProcess
from tests.services.enrich import EnrichProcess
from tests.services.kafka import KafkaTopics
from tests.services.load import LoadProcess, wait_committed
from tests.services.payloads import PAYLOAD_DATA, TP2
from tests.services.s3 import s3_enriched_event_ids
from tests.services.topics import end_offsets as topic_end_offsets
from tests.services.wait import wait_until

PARTITIONS = 2
EVENTS_PER_POST = 5
# Fast failover: a killed member is noticed within this (the broker's minimum session timeout).
CONSUMER = "{session.timeout.ms: 6000, heartbeat.interval.ms: 1000}"
# A stalled worker or loader (snowmelt/stall.py, snowmelt/membership.py, loaders/runner.py) exits with its
# stacks well within the tests' 120 s waits for commits.
ENRICH = {"enrich.batch_size": "100", "enrich.commit_interval": "0.5", "enrich.session_timeout": "6",
          "enrich.shutdown_grace": "20", "enrich.stall_timeout": "45"}
LOAD = {"load.batch_size": "500", "load.batch_timeout": "0.5", "load.retry_initial": "0.2", "load.retry_max": "2",
        "load.shutdown_grace": "20", "load.stall_timeout": "45", "kafka.consumer": CONSUMER}
#: how many times :meth:`Pipeline.settle` replaces a process of a role that exited as stalled
STALL_RESTARTS = 2


# --------------------------------------------------------------------------- traffic


class Traffic:
    """Tracker requests at a steady pace from ``senders`` threads until :meth:`stop`.

    Request ``n`` is a GET pixel (one event) when ``n % 8 == 7``, else a tp2
    POST of ``events_per_post`` page views.  Each request's event_ids go to
    ``accepted`` (2xx), ``refused`` (503) or ``failed`` (anything else: another
    status or no answer), under a lock; ``answers`` keeps (sent, answered, status)
    of every request, in monotonic seconds (status 0: no answer).
    """

    def __init__(self, port: int, rate: float = 30.0, senders: int = 4, max_requests: int = 2000,
                 events_per_post: int = EVENTS_PER_POST):
        self.port = port
        self.events_per_post = events_per_post
        self.step = 1.0 / rate
        self.max_requests = max_requests
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self.failed: list[tuple[str, list[str]]] = []
        self.statuses: dict[int, int] = {}
        self.answers: list[tuple[float, float, int]] = []
        self.lock = threading.Lock()
        self.next_request = 0
        self.stopping = threading.Event()
        self.started = 0.0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(senders)]

    @property
    def sent(self) -> int:
        with self.lock:
            return len(self.accepted) + len(self.refused) + sum(len(ids) for _, ids in self.failed)

    def counts(self) -> tuple[int, int]:
        """(accepted events, refused events) so far."""
        with self.lock:
            return len(self.accepted), len(self.refused)

    def _request(self, conn: http.client.HTTPConnection, n: int) -> tuple[int, list[str]]:
        if n % 8 == 7:
            eid = str(uuid.uuid4())
            query = urllib.parse.urlencode({"e": "pv", "eid": eid, "p": "web", "tv": "js-3.0.0",
                                            "url": f"https://shop.acme.com/pixel/{n}", "aid": "faults"})
            conn.request("GET", "/i?" + query)
            ids = [eid]
        else:
            batch = [{"e": "pv", "eid": str(uuid.uuid4()), "p": "web", "tv": "js-3.0.0", "aid": "faults",
                      "url": f"https://shop.acme.com/p/{n}", "duid": str(uuid.UUID(int=n, version=4))}
                     for _ in range(self.events_per_post)]
            conn.request("POST", TP2, body=json.dumps({"schema": PAYLOAD_DATA, "data": batch}),
                         headers={"Content-Type": "application/json"})
            ids = [e["eid"] for e in batch]
        resp = conn.getresponse()
        resp.read()
        return resp.status, ids

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            while not self.stopping.is_set():
                with self.lock:
                    n = self.next_request
                    self.next_request += 1
                if n >= self.max_requests:
                    return
                delay = self.started + n * self.step - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the traffic, not waiting for a result
                sent = time.monotonic()
                try:
                    status, ids = self._request(conn, n)
                except (OSError, http.client.HTTPException) as exc:
                    with self.lock:
                        self.failed.append((repr(exc), []))
                        self.answers.append((sent, time.monotonic(), 0))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                    continue
                with self.lock:
                    self.answers.append((sent, time.monotonic(), status))
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    if 200 <= status < 300:
                        self.accepted.extend(ids)
                    elif status == 503:
                        self.refused.extend(ids)
                    else:
                        self.failed.append((f"HTTP {status}", ids))
        finally:
            conn.close()

    def start(self) -> Traffic:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(90)
            assert not thread.is_alive(), "a traffic sender is stuck"

    def wait_accepted(self, more: int, timeout: float, what: str) -> None:
        """Wait until ``more`` events beyond those accepted now are accepted."""
        target = self.counts()[0] + more
        wait_until(lambda: self.counts()[0] >= target, timeout, what, interval=0.05)

    def wait_refused(self, timeout: float, what: str) -> None:
        wait_until(lambda: self.counts()[1] > 0, timeout, what, interval=0.05)

    def timed_answers(self) -> list[tuple[float, float, int]]:
        with self.lock:
            return list(self.answers)

    def first_ok_sent_after(self, moment: float) -> float | None:
        """When the first request sent at or after ``moment`` and answered 2xx was answered."""
        times = [answered for sent, answered, status in self.timed_answers() if 200 <= status < 300 and sent >= moment]
        return min(times) if times else None

    def longest_gap_without_ok(self, start: float, end: float) -> float:
        """The longest stretch of ``[start, end]`` without a 2xx answer."""
        oks = sorted(answered for _sent, answered, status in self.timed_answers()
                     if 200 <= status < 300 and start <= answered <= end)
        points = [start, *oks, end]
        return max(b - a for a, b in zip(points, points[1:]))

    def wait_for(self, seconds: float) -> None:
        """Let the traffic run ``seconds`` more (the length of a fault), failing if it stopped."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            assert any(t.is_alive() for t in self.threads), "the traffic ended during the fault"
            time.sleep(min(left, 0.2))  # the fault lasts this long: pacing, not waiting for a result


# --------------------------------------------------------------------------- reading back


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (labelled or not) in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def collector_metrics(collector: CollectorProcess) -> str:
    with urllib.request.urlopen(collector.url + "/metrics", timeout=10) as resp:
        return resp.read().decode()


def end_offsets(bootstrap: str, topics: list[str]) -> dict[str, list[int]]:
    return topic_end_offsets(bootstrap, topics, PARTITIONS)


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[bytes]:
    """Every record value of ``topic`` up to its end offsets now."""
    ends = end_offsets(bootstrap, [topic])[topic]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            positions = [tp.offset for tp in consumer.position([TopicPartition(topic, p) for p in range(PARTITIONS)])]
            if all(end == 0 or pos >= end for pos, end in zip(positions, ends)):
                return values
            assert time.monotonic() < deadline, f"{topic}: read {len(values)} records, not at {ends} after {timeout}s"
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    values.append(msg.value())
    finally:
        consumer.close()


def enriched_ids(lines) -> list[str]:
    """The event_id (field 7) of each enriched TSV line."""
    return [(line.decode() if isinstance(line, bytes) else line).split("\t", 7)[6] for line in lines]


def report(name: str, traffic: Traffic, enriched: list[str], loaded: list[str], bad_rows: int, extra: str = "") -> None:
    accepted, refused = set(traffic.accepted), set(traffic.refused)
    print(f"\n[{name}] sent {traffic.sent}, accepted (2xx) {len(accepted)}, refused (503) {len(refused)}, "
          f"failed {sum(len(ids) for _, ids in traffic.failed)} ({len(traffic.failed)} requests); "
          f"enriched {len(set(enriched))} distinct ({len(enriched) - len(set(enriched))} duplicates), "
          f"bad rows {bad_rows}; loaded {len(set(loaded))} distinct ({len(loaded) - len(set(loaded))} duplicates); "
          f"refused but delivered anyway {len(refused & set(enriched))}; HTTP statuses {traffic.statuses}"
          + (f"; {extra}" if extra else ""))


def assert_nothing_accepted_lost(traffic: Traffic, enriched: list[str], loaded: list[str]) -> None:
    accepted, sent = set(traffic.accepted), set(traffic.accepted) | set(traffic.refused)
    sent |= {eid for _, ids in traffic.failed for eid in ids}
    assert not traffic.failed, f"requests with neither a 2xx nor a 503: {traffic.failed[:5]}"
    assert accepted - set(enriched) == set(), f"{len(accepted - set(enriched))} accepted events not enriched"
    assert set(enriched) <= sent, "an enriched event that was never sent"
    assert set(loaded) == set(enriched), (f"{len(set(enriched) - set(loaded))} enriched events not loaded, "
                                          f"{len(set(loaded) - set(enriched))} loaded events not enriched")


# --------------------------------------------------------------------------- the Kafka pipeline


class Pipeline:
    """Collector, one enrich worker and one S3 loader on ``broker``, fresh topics and groups.

    With ``chdb_path``, a ClickHouse loader too (its own group, ``load_groups[1]``), writing
    to chdb in that folder (read it back with :func:`chdb_event_ids` once it has stopped).
    """

    def __init__(self, broker, bucket: str, s3_endpoint: str, *, collector: dict | None = None,
                 load: dict | None = None, chdb_path: str | None = None, enrich: dict | None = None):
        self.broker = broker
        self.bootstrap = broker.bootstrap_servers
        prefix = f"t.faults.{uuid.uuid4().hex[:8]}"
        self.topics = KafkaTopics(*(f"{prefix}.{role}" for role in KafkaTopics._fields))
        broker.create_topics(self.topics, partitions=PARTITIONS)
        self.enrich_group = f"enrich-{prefix}"
        self.enrich_settings = {**ENRICH, "enrich.transactional_id": f"{self.enrich_group}-0", **(enrich or {})}
        self.load_group = f"load-s3-{prefix}"
        self.bucket = bucket
        self.collector_settings = {"collector.health_probe_interval": "0.5", **(collector or {})}
        self.load_settings = {**LOAD, "load.s3_group_id": self.load_group, "s3.backend": "s3", "s3.bucket": bucket,
                              "s3.endpoint_url": s3_endpoint, "s3.path_style": "true", **(load or {})}
        self.processes: list = []
        self.collector: CollectorProcess | None = None
        self.workers: list[EnrichProcess] = []
        self.loader: LoadProcess | None = None
        self.chdb_path = chdb_path
        self.ch_group = f"load-ch-{prefix}"
        self.ch_settings = {**LOAD, "load.clickhouse_group_id": self.ch_group, "clickhouse.backend": "chdb",
                            "clickhouse.chdb_path": chdb_path or "", **(load or {})}
        self.ch_loader: LoadProcess | None = None

    @property
    def loaders(self) -> list[LoadProcess]:
        return [loader for loader in (self.loader, self.ch_loader) if loader is not None]

    @property
    def load_groups(self) -> list[str]:
        return [self.load_group] + ([self.ch_group] if self.chdb_path else [])

    def new_worker(self, transactional_id: str | None = None) -> EnrichProcess:
        """A worker of the pipeline's group; ``transactional_id`` for one that runs beside another
        (else it shares the first worker's: a restart of it)."""
        settings = {**self.enrich_settings,
                    **({"enrich.transactional_id": transactional_id} if transactional_id else {})}
        worker = EnrichProcess(self.bootstrap, self.topics, settings, group_id=self.enrich_group)
        self.processes.append(worker)
        self.workers.append(worker)
        return worker

    def new_loader(self, kind: str) -> LoadProcess:
        settings = self.load_settings if kind == "s3" else self.ch_settings
        loader = LoadProcess(kind, self.bootstrap, self.topics.enriched, self.topics.bad, settings)
        self.processes.append(loader)
        return loader

    def current(self, role: str):
        """The process of a role ("enrich": the newest worker, "s3", "clickhouse")."""
        return {"enrich": lambda: self.workers[-1], "s3": lambda: self.loader,
                "clickhouse": lambda: self.ch_loader}[role]()

    def replace(self, role: str) -> None:
        """kill -9 a role's process ("enrich", "s3", "clickhouse") and start another like it."""
        old = self.current(role)
        old.kill()
        if role == "enrich":
            self.workers.remove(old)
            self.new_worker().start(90)
        else:
            new = self.new_loader(role)
            if role == "s3":
                self.loader = new
            else:
                self.ch_loader = new
            new.start(90)

    def start(self) -> Pipeline:
        self.collector = CollectorProcess(self.bootstrap, self.topics, self.collector_settings)
        self.processes.append(self.collector)
        self.collector.start(60)
        worker = self.new_worker()
        self.loader = self.new_loader("s3")
        if self.chdb_path:
            self.ch_loader = self.new_loader("clickhouse")
        worker.spawn()
        for loader in self.loaders:
            loader.spawn()
        worker.wait_http(worker.metrics_url, 90)
        for loader in self.loaders:
            loader.wait_http(loader.metrics_url, 90)
        return self

    def settle(self, timeout: float = 120.0) -> tuple[list[str], int]:
        """Wait until enrichment and loading are through; the enriched event_ids and the bad row count."""
        raw_ends = end_offsets(self.bootstrap, [self.topics.raw])
        self._wait_committed("enrich", self.enrich_group, raw_ends, timeout)
        enriched = enriched_ids(read_topic(self.bootstrap, self.topics.enriched))
        bad = read_topic(self.bootstrap, self.topics.bad)
        ends = end_offsets(self.bootstrap, [self.topics.enriched, self.topics.bad])
        for group, role in zip(self.load_groups, ("s3", "clickhouse")):
            self._wait_committed(role, group, ends, timeout)
        return enriched, len(bad)

    def _wait_committed(self, role: str, group: str, ends: dict[str, list[int]], timeout: float) -> None:
        """:func:`wait_committed` on the role's process.  One that exits as stalled (status 4, its stacks
        in its log) is replaced, as its supervisor (Kubernetes) would restart it, and the wait starts again."""
        for restarts in range(STALL_RESTARTS + 1):
            process = self.current(role)
            try:
                wait_committed(self.bootstrap, group, ends, timeout=timeout, process=process)
                return
            except RuntimeError:
                if process.proc.returncode != EXIT_STALLED or restarts == STALL_RESTARTS:
                    raise
            print(f"\n{process.name} exited as stalled ({EXIT_STALLED}); replaced, as its supervisor would. "
                  f"Its log:\n{process.output(20_000)}")
            self.replace(role)

    def stop(self) -> None:
        for proc in [*self.workers, *self.loaders, self.collector]:
            if proc is not None and proc.proc is not None and proc.proc.poll() is None:
                code = proc.terminate(60)
                assert code == 0, f"{proc.name} exited {code}:\n{proc.output()}"

    def close(self) -> None:
        for proc in self.processes:
            if isinstance(proc, CollectorProcess):
                proc.kill()
                proc.remove_log()
            else:
                proc.close()


@contextlib.contextmanager
def pipeline(broker, bucket: str, s3_endpoint: str, **kwargs):
    p = Pipeline(broker, bucket, s3_endpoint, **kwargs)
    try:
        yield p.start()
    finally:
        p.close()


def drained_counts(p, seaweedfs, bucket) -> tuple[float, list[str], int, list[str]]:
    """After a broker fault: (the collector's sink_unavailable count, enriched ids, bad rows, ids in S3)."""
    unavailable = metric_sum(collector_metrics(p.collector), "snowmelt_collector_sink_unavailable_total")
    enriched, bad = p.settle()
    p.stop()
    return unavailable, enriched, bad, s3_enriched_event_ids(seaweedfs.client(), bucket)


# Run in a child process: chdb opens one data folder per process.
_CHDB_READ = """
import json, sys
from chdb import session
db = session.Session(sys.argv[1])
rows = json.loads(db.query("SELECT event_id FROM snowplow.events", "JSONCompact").bytes())["data"]
db.close()
print(json.dumps([r[0] for r in rows]))
"""


def chdb_event_ids(path: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _CHDB_READ, str(path)], check=False, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])

