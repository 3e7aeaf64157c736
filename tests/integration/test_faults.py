"""Faults injected while tracker events flow: nothing accepted is lost, backpressure shows, recovery is automatic.

Each test sends real tracker requests (tp2 POST batches of page views and GET
pixels, every event with its own ``eid``) to the real processes, injects one
fault mid-stream, ends it and counts, by distinct event_id:

* **sent** -- every event the traffic generator tried;
* **accepted** -- the events of requests the collector answered 2xx;
* **enriched** -- the events on the enriched topic (or in ``snowmelt up``'s
  enriched files);
* **loaded** -- the events in the store (objects read back from the S3
  bucket; ``snowmelt up``'s ClickHouse store through its SQL endpoint).

The contract is at least once from the 2xx on: every accepted event is
enriched and loaded (duplicates are allowed and counted).  An event answered
503 may still have reached the broker (its acknowledgement was what timed
out): it is then enriched and loaded like the others and a tracker's retry
would make it a duplicate, so ``accepted <= enriched`` and ``enriched ==
loaded`` are asserted, and the counts are printed for ``pytest -s``.

1. The broker killed (SIGKILL) mid-stream and restarted: the collector answers
   503 while it cannot reach the broker and 200 again after, by itself.
2. The broker frozen (SIGSTOP) then thawed (SIGCONT): requests whose records
   are not acknowledged within ``collector.produce_timeout`` are answered 503.
3. S3 answering a share of requests ``503 SlowDown`` / ``500 InternalError``
   (tests/services/fault_proxy.py in front of SeaweedFS): the S3 loader pauses,
   retries the same batch and loads every event exactly once.
4. The only enrich worker killed (SIGKILL) mid-batch and a new one started: it
   reads again what the dead one had not committed.  (Workers joining, dying
   and leaving beside survivors: tests/integration/test_scaling.py.)
5. The disk of ``snowmelt up`` full (a tmpfs filled with a ballast file): the
   batches that cannot be written are kept and retried, the queue fills and the
   collector answers 503; when the ballast goes, everything is written.

ClickHouse down and back is not here: no ClickHouse server can run on this
machine, and chdb (the engine in the loader's own process) has no "down".
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.services.collector import CollectorProcess
from tests.services.enrich import EnrichProcess
from tests.services.fault_proxy import S3FaultProxy
from tests.services.kafka import KafkaTopics
from tests.services.load import LoadProcess, wait_committed
from tests.services.s3 import s3_enriched_event_ids
from tests.services.topics import end_offsets as topic_end_offsets
from tests.services.up import UpProcess
from tests.services.wait import wait_until

PARTITIONS = 2
TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
EVENTS_PER_POST = 5
# Fast failover: a killed member is noticed within this (the broker's minimum session timeout).
CONSUMER = "{session.timeout.ms: 6000, heartbeat.interval.ms: 1000}"
ENRICH = {"enrich.batch_size": "100", "enrich.commit_interval": "0.5", "enrich.session_timeout": "6",
          "enrich.shutdown_grace": "20"}
# how long each fault lasts once its effect is seen
DOWN_SECONDS = 3.0
LOAD = {"load.batch_size": "500", "load.batch_timeout": "0.5", "load.retry_initial": "0.2", "load.retry_max": "2",
        "load.shutdown_grace": "20", "kafka.consumer": CONSUMER}


# --------------------------------------------------------------------------- traffic


class Traffic:
    """Tracker requests at a steady pace from ``senders`` threads until :meth:`stop`.

    Request ``n`` is a GET pixel (one event) when ``n % 8 == 7``, else a tp2
    POST of ``events_per_post`` page views.  Each request's event_ids go to
    ``accepted`` (2xx), ``refused`` (503) or ``failed`` (anything else: another
    status or no answer), under a lock.
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
                try:
                    status, ids = self._request(conn, n)
                except (OSError, http.client.HTTPException) as exc:
                    with self.lock:
                        self.failed.append((repr(exc), []))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                    continue
                with self.lock:
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
    """Collector, one enrich worker and one S3 loader on ``broker``, fresh topics and groups."""

    def __init__(self, broker, bucket: str, s3_endpoint: str, *, collector: dict | None = None,
                 load: dict | None = None):
        self.broker = broker
        self.bootstrap = broker.bootstrap_servers
        prefix = f"t.faults.{uuid.uuid4().hex[:8]}"
        self.topics = KafkaTopics(*(f"{prefix}.{role}" for role in KafkaTopics._fields))
        broker.create_topics(self.topics, partitions=PARTITIONS)
        self.enrich_group = f"enrich-{prefix}"
        self.load_group = f"load-s3-{prefix}"
        self.bucket = bucket
        self.collector_settings = {"collector.health_probe_interval": "0.5", **(collector or {})}
        self.load_settings = {**LOAD, "load.s3_group_id": self.load_group, "s3.backend": "s3", "s3.bucket": bucket,
                              "s3.endpoint_url": s3_endpoint, "s3.path_style": "true", **(load or {})}
        self.processes: list = []
        self.collector: CollectorProcess | None = None
        self.workers: list[EnrichProcess] = []
        self.loader: LoadProcess | None = None

    def new_worker(self) -> EnrichProcess:
        worker = EnrichProcess(self.bootstrap, self.topics, ENRICH, group_id=self.enrich_group)
        self.processes.append(worker)
        self.workers.append(worker)
        return worker

    def start(self) -> Pipeline:
        self.collector = CollectorProcess(self.bootstrap, self.topics, self.collector_settings)
        self.processes.append(self.collector)
        self.collector.start(60)
        worker = self.new_worker()
        self.loader = LoadProcess("s3", self.bootstrap, self.topics.enriched, self.topics.bad, self.load_settings)
        self.processes.append(self.loader)
        worker.spawn()
        self.loader.spawn()
        worker.wait_http(worker.metrics_url, 90)
        self.loader.wait_http(self.loader.metrics_url, 90)
        return self

    def settle(self, timeout: float = 120.0) -> tuple[list[str], int]:
        """Wait until enrichment and loading are through; the enriched event_ids and the bad row count."""
        worker = self.workers[-1]
        wait_committed(self.bootstrap, self.enrich_group, end_offsets(self.bootstrap, [self.topics.raw]),
                       timeout=timeout, process=worker)
        enriched = enriched_ids(read_topic(self.bootstrap, self.topics.enriched))
        bad = read_topic(self.bootstrap, self.topics.bad)
        wait_committed(self.bootstrap, self.load_group, end_offsets(self.bootstrap, [self.topics.enriched,
                                                                                       self.topics.bad]),
                       timeout=timeout, process=self.loader)
        return enriched, len(bad)

    def stop(self) -> None:
        for proc in [*self.workers, self.loader, self.collector]:
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


def assert_broker_fault_outcome(traffic, enriched, loaded, bad, unavailable, state: str) -> None:
    """Nothing accepted lost, the collector pushed back while the broker was ``state``, no bad rows."""
    assert_nothing_accepted_lost(traffic, enriched, loaded)
    assert traffic.refused and unavailable > 0, f"no backpressure while the broker was {state}"
    assert bad == 0


def test_broker_killed_and_restarted_mid_stream(private_kafka_broker, seaweedfs, make_s3_bucket):
    broker = private_kafka_broker
    if not broker.supports_restart:
        pytest.skip(f"{broker.kind} loses its data on restart: a broker outage cannot be survived on it")
    bucket = make_s3_bucket(seaweedfs)
    with pipeline(broker, bucket, seaweedfs.endpoint_url, collector={"collector.produce_timeout": "3"}) as p:
        traffic = Traffic(p.collector.port).start()
        try:
            traffic.wait_accepted(300, 60, "events accepted before the fault")
            broker.kill()
            down_at = traffic.counts()
            down_since = time.monotonic()
            print(f"\nbroker killed after {down_at[0]} accepted events")
            traffic.wait_refused(30, "503s from the collector while the broker is down")
            traffic.wait_for(DOWN_SECONDS)
            health = urllib.request.Request(p.collector.url + "/sink-health")
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(health, timeout=10)
            assert answer.value.code == 503
            accepted_while_down = traffic.counts()[0] - down_at[0]
            broker.start()
            print(f"broker restarted after {time.monotonic() - down_since:.1f}s down; "
                  f"{traffic.counts()[1]} events refused so far")
            traffic.wait_accepted(500, 90, "events accepted after the broker came back")
        finally:
            traffic.stop()
        unavailable, enriched, bad, loaded = drained_counts(p, seaweedfs, bucket)
    report("broker killed", traffic, enriched, loaded, bad,
           f"accepted while the broker was down (in flight before the kill) {accepted_while_down}; "
           f"collector sink_unavailable counter {unavailable:.0f}")
    assert_broker_fault_outcome(traffic, enriched, loaded, bad, unavailable, "down")


def test_broker_frozen_then_thawed_mid_stream(private_kafka_broker, seaweedfs, make_s3_bucket):
    broker = private_kafka_broker
    if broker.pid is None:
        pytest.skip(f"{broker.kind} broker has no process of ours to freeze")
    bucket = make_s3_bucket(seaweedfs)
    with pipeline(broker, bucket, seaweedfs.endpoint_url, collector={"collector.produce_timeout": "3"}) as p:
        traffic = Traffic(p.collector.port).start()
        frozen = False
        try:
            traffic.wait_accepted(300, 60, "events accepted before the fault")
            os.killpg(broker.pid, signal.SIGSTOP)  # the broker and any child: alive, connected, silent
            frozen = True
            frozen_at, frozen_since = traffic.counts(), time.monotonic()
            print(f"\nbroker frozen (SIGSTOP) after {frozen_at[0]} accepted events")
            traffic.wait_refused(30, "503s from the collector while the broker is frozen")
            first_503 = time.monotonic() - frozen_since
            traffic.wait_for(DOWN_SECONDS)
            os.killpg(broker.pid, signal.SIGCONT)
            frozen = False
            print(f"broker thawed (SIGCONT) after {time.monotonic() - frozen_since:.1f}s; first 503 "
                  f"{first_503:.1f}s into the freeze; {traffic.counts()[1]} events refused so far")
            traffic.wait_accepted(500, 90, "events accepted after the broker thawed")
        finally:
            if frozen:
                os.killpg(broker.pid, signal.SIGCONT)
            traffic.stop()
        unavailable, enriched, bad, loaded = drained_counts(p, seaweedfs, bucket)
    report("broker frozen", traffic, enriched, loaded, bad,
           f"accepted from the freeze on (recovery included) {traffic.counts()[0] - frozen_at[0]}; "
           f"collector sink_unavailable counter {unavailable:.0f}")
    assert_broker_fault_outcome(traffic, enriched, loaded, bad, unavailable, "frozen")
    assert first_503 < 3 + 10, "requests were held far longer than collector.produce_timeout"


def test_s3_throttling_and_errors_mid_stream(kafka_broker, seaweedfs, make_s3_bucket):
    bucket = make_s3_bucket(seaweedfs)
    with S3FaultProxy(seaweedfs.endpoint_url, internal_error_share=0.25, seed=7) as proxy, \
            pipeline(kafka_broker, bucket, proxy.url, load={"s3.max_attempts": "1", "s3.connect_timeout": "2",
                                                            "s3.read_timeout": "10"}) as p:
        traffic = Traffic(p.collector.port).start()
        unhealthy_seen = []
        try:
            traffic.wait_accepted(300, 60, "events accepted before the fault")
            wait_until(lambda: proxy.forwarded_total("PUT") > 0, 60, "a first batch in S3")
            proxy.fail_share = 0.6
            print(f"\nS3 failing 60% of requests after {traffic.counts()[0]} accepted events")

            def loader_retrying():
                text = p.loader.metrics()
                if metric_sum(text, "snowmelt_load_store_healthy") == 0:
                    unhealthy_seen.append(True)
                return metric_sum(text, "snowmelt_load_retries_total") >= 3 and unhealthy_seen

            wait_until(loader_retrying, 60, "the S3 loader retrying with the store unhealthy", interval=0.1)
            traffic.wait_for(DOWN_SECONDS)
            proxy.fail_share = 0.0
            print(f"S3 healthy again; injected {dict(proxy.injected)}")
            traffic.wait_accepted(300, 60, "events accepted after S3 recovered")
        finally:
            traffic.stop()
        enriched, bad = p.settle()
        metrics = p.loader.metrics()
        p.stop()
        log = p.loader.output(200_000)
        loaded = s3_enriched_event_ids(seaweedfs.client(), bucket)
    retries = metric_sum(metrics, "snowmelt_load_retries_total")
    report("S3 throttling", traffic, enriched, loaded, bad,
           f"injected 503 SlowDown {proxy.injected_total(503)}, 500 InternalError {proxy.injected_total(500)}, "
           f"forwarded {dict(proxy.forwarded)}; loader retries {retries:.0f}")
    assert_nothing_accepted_lost(traffic, enriched, loaded)
    assert len(loaded) == len(set(loaded)), f"{len(loaded) - len(set(loaded))} events in S3 twice"
    assert proxy.injected_total(503) > 0 and proxy.injected_total(500) > 0
    assert retries >= 3 and unhealthy_seen, "the loader never backed off"
    assert "pausing consumption" in log and "available again" in log, log[-3000:]
    assert not traffic.refused, "the collector refused events because of S3 (the loader is downstream)"
    assert bad == 0


def consumer_lag(bootstrap: str, group: str, topic: str) -> int:
    from tests.services.load import committed_offsets

    ends = end_offsets(bootstrap, [topic])[topic]
    committed = committed_offsets(bootstrap, group, topic, PARTITIONS)
    return sum(end - max(c, 0) for c, end in zip(committed, ends))


def test_enrich_worker_killed_mid_batch_and_replaced(kafka_broker, seaweedfs, make_s3_bucket):
    bucket = make_s3_bucket(seaweedfs)
    with pipeline(kafka_broker, bucket, seaweedfs.endpoint_url) as p:
        traffic = Traffic(p.collector.port).start()
        try:
            first = p.workers[0]
            wait_until(lambda: metric_sum(first.metrics(), "snowmelt_enrich_events_good_total") >= 300, 90,
                       "the first worker enriching")
            killed_good = metric_sum(first.metrics(), "snowmelt_enrich_events_good_total")
            first.kill()
            print(f"\nthe only enrich worker killed (-9) after {killed_good:.0f} good events, "
                  f"{traffic.counts()[0]} accepted")
            traffic.wait_for(DOWN_SECONDS)
            lag = consumer_lag(p.bootstrap, p.enrich_group, p.topics.raw)
            second = p.new_worker().start(90)
            print(f"a new worker started; raw records (requests) waiting for it: {lag}")
            wait_until(lambda: metric_sum(second.metrics(), "snowmelt_enrich_events_good_total") > 0, 90,
                       "the new worker enriching")
            traffic.wait_accepted(300, 60, "events accepted after the new worker started")
        finally:
            traffic.stop()
        enriched, bad = p.settle()
        second_good = metric_sum(second.metrics(), "snowmelt_enrich_events_good_total")
        p.stop()
        loaded = s3_enriched_event_ids(seaweedfs.client(), bucket)
    report("enrich worker killed", traffic, enriched, loaded, bad,
           f"killed worker {killed_good:.0f} good events, its replacement {second_good:.0f}; raw records "
           f"(requests) waiting while no worker ran {lag}")
    assert_nothing_accepted_lost(traffic, enriched, loaded)
    assert set(enriched) == set(traffic.accepted) and not traffic.refused
    assert lag > 0, "no raw records waited while no worker ran"
    assert bad == 0


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


def local_enriched_event_ids(root: Path) -> list[str]:
    return [eid for f in sorted(root.rglob("*.tsv.gz")) if "/enriched/" in str(f)
            for eid in enriched_ids(gzip.decompress(f.read_bytes()).decode().splitlines())]


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs of its own (root only): filling it makes every write there fail with ENOSPC."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> int:
    """Write a ballast file until the disk is full (ENOSPC); returns its size."""
    chunk = b"\0" * (256 * 1024)
    written = 0
    with open(disk / "ballast", "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    with pytest.raises(OSError), open(disk / "probe", "wb", buffering=0) as f:  # full: not even 4 KiB fits
        f.write(b"x" * 4096)
    (disk / "probe").unlink(missing_ok=True)
    return written


def test_disk_full_under_snowmelt_up(small_disk):
    data_dir = small_disk / "data"
    up = UpProcess(data_dir, settings={"up.queue_max_records": "100", "up.store_interval": "0.5"}).start(90)
    try:
        traffic = Traffic(up.port).start()
        try:
            traffic.wait_accepted(300, 60, "events accepted before the disk filled")
            ballast = fill(small_disk)
            full_at, full_since = traffic.counts(), time.monotonic()
            print(f"\ndisk full ({ballast // 1024} KiB of ballast) after {full_at[0]} accepted events")
            traffic.wait_refused(60, "503s from snowmelt up while its disk is full")
            first_503 = time.monotonic() - full_since
            traffic.wait_for(DOWN_SECONDS)
            accepted_while_full = traffic.counts()[0] - full_at[0]
            (small_disk / "ballast").unlink()
            print(f"ballast removed after {time.monotonic() - full_since:.1f}s (first 503 after "
                  f"{first_503:.1f}s); {traffic.counts()[1]} events refused so far")
            traffic.wait_accepted(300, 60, "events accepted after space returned")
        finally:
            traffic.stop()
        assert up.terminate(120) == 0, up.output()
        log = up.output(50_000)
        enriched = enriched_ids(up.enriched_lines())
        bad = len(up.bad_lines())
        loaded = chdb_event_ids(data_dir / "clickhouse")
        in_s3_files = local_enriched_event_ids(data_dir / "s3")
    finally:
        up.kill()
        up.remove_log()
    report("disk full (snowmelt up)", traffic, enriched, loaded, bad,
           f"accepted once the disk was full (queued before the queue filled) {accepted_while_full}; "
           f"S3-layout files {len(set(in_s3_files))} distinct ({len(in_s3_files) - len(set(in_s3_files))} duplicates)")
    assert_nothing_accepted_lost(traffic, enriched, loaded)
    assert set(in_s3_files) == set(enriched), "the S3-layout files miss events"
    assert traffic.refused, "no backpressure while the disk was full"
    assert bad == 0
    # the write-ahead log (or the output of what it had taken) failed with ENOSPC, requests were refused
    # meanwhile, and writing went on once space returned
    assert "No space left on device" in log, log[-3000:]
    assert "answered 503 until it can be written" in log or "holding it and the queue behind it" in log, log[-3000:]
    assert "writing the write-ahead log again after" in log or "writing again after" in log, log[-3000:]
    assert "is lost" not in log, log[-3000:]
