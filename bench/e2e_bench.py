"""End to end on one machine: collector -> Kafka -> enrich -> ClickHouse (chdb) and S3 (SeaweedFS).

    python -m bench.e2e_bench [--rates 2000,4000,6000,8000,10000] [--step-seconds 20]
                              [--batch-timeout 0.25] [--json bench/results/e2e-NAME.json]
                              [--guarantee at_least_once|exactly_once] [--setting [ROLE:]KEY=VALUE ...]

Starts a Kafka broker (``KAFKA_BOOTSTRAP_SERVERS`` or one started like the
tests do), SeaweedFS (``S3_ENDPOINT_URL`` or one started here), ``snowmelt
collector``, ``snowmelt enrich``, ``snowmelt load clickhouse`` (chdb, serving
read-only SQL on ``clickhouse.sql_port``) and ``snowmelt load s3``, each a real
process, then:

Rate steps
    :mod:`bench.loadgen` open loop at each target rate (events/s) for
    ``--step-seconds``.  A step is *sustained* when the achieved rate is at
    least 98 % of the target, no request got a 5xx or a connection error, and
    the pipeline kept up: once sending stops, the consumer lag of enrich on the
    raw topic and of both loader groups on the enriched and bad topics
    (committed offsets against end offsets) is back to 0 within
    ``--drain-limit`` seconds.  Steps stop at the first one not sustained.
Latency
    During every step, marker events (a GET struct event with a known
    ``eid``, ~5/s) are sent from their own thread; the SQL endpoint of the
    ClickHouse loader is polled every 50 ms for the markers not yet seen.
    Click-to-queryable latency = first seen - HTTP request start; p50/p95/p99
    and max per step, and markers lost (never seen).  When no step ran at half
    the highest sustained rate, one more step runs there.
Accounting (after the last step, drained)
    sent and accepted (2xx) events, raw records on the topic, enriched and bad
    on their topics (by event id: every accepted event must be in one of
    them, the bad-on-purpose ones among the bad), ClickHouse (every row's
    event_id, count and distinct, and bad_rows) and S3 (the gzip TSV and NDJSON
    objects read back from SeaweedFS).  Prints ``every event accounted for:
    True/False`` with the differences listed.

CPU seconds of every process (``/proc/PID/stat``, the process and its
children) are recorded per step, so events per CPU-second per stage can be
read, and those of each snowmelt process's threads by name
(``/proc/PID/task``: the event loop, the store's writer, librdkafka's and
chdb's own).  ``--guarantee exactly_once`` runs enrich with
``processing_guarantee: exactly_once`` and the loaders with ``load.exactly_once``
(the write intents); ``at_least_once`` (the default) with neither.
``--setting [ROLE:]KEY=VALUE`` (repeatable) sets a config key over the bench's own
for every snowmelt process, or for one role (``collector``, ``enrich``,
``load-clickhouse``, ``load-s3``).  The JSON (``--json``, default ``bench/results/e2e-<time>.json``) holds
the machine, the settings, every step and the accounting.  All processes are
stopped on exit, Ctrl-C included.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import platform
import re
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from bench.corpus import write_registry
from bench.loadgen import build_requests, percentiles, run_load_async
from bench.profiling import RESULTS, cpu_by_thread, flame, process_table, process_tree, thread_cpu

UUID_RE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SQL_TOKEN = "e2e-bench"
DATABASE = "snowplow"


# --------------------------------------------------------------------------- processes


def cpu_seconds(pids: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds of each named process and its descendants (0 for a process that is gone)."""
    table = process_table()
    return {name: round(sum(table[p][1] for p in process_tree(pid, table)), 2) for name, pid in pids.items()}


def threads_of(pipeline: "Pipeline") -> dict[str, dict[str, float]]:
    """CPU seconds so far of each snowmelt process's threads, by thread name (the event loop's as \"main\"), and
    of the broker's (the JVM's threads: request handlers, log cleaner, JIT compiler, garbage collector ...)."""
    out = {}
    for p in pipeline.processes:
        if p.proc is not None and p.proc.poll() is None:
            with contextlib.suppress(OSError):  # gone meanwhile
                out[p.name] = thread_cpu(p.proc.pid, main="main")
    if (broker := pipeline.pids().get("kafka")) is not None:
        with contextlib.suppress(OSError):
            out["kafka"] = thread_cpu(broker)
    return out


def rss_mb(pids: dict[str, int | None]) -> dict[str, float]:
    """Resident memory (MB) of each named process and its descendants."""
    page = os.sysconf("SC_PAGE_SIZE")
    out = {}
    table = process_table()
    for name, pid in pids.items():
        total = 0
        for p in process_tree(pid, table):
            try:
                total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page
            except (OSError, IndexError, ValueError):  # gone meanwhile
                pass
        out[name] = round(total / 1e6, 1)
    return out


class RssSampler(threading.Thread):
    """Each role's resident memory every ``interval`` s while a step runs: the peak and the last reading."""

    def __init__(self, pids: dict[str, int | None], interval: float = 0.5):
        super().__init__(name="rss-sampler", daemon=True)
        self.pids, self.interval = pids, interval
        self.peak: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            self.last = rss_mb(self.pids)
            for name, mb in self.last.items():
                self.peak[name] = max(self.peak.get(name, 0.0), mb)
            if self.stopped.wait(self.interval):
                return

    def result(self) -> dict[str, dict[str, float]]:
        self.stopped.set()
        self.join(10)
        return {name: {"peak": self.peak[name], "end": self.last.get(name, 0.0)} for name in self.peak}


class Pipeline:
    """The services and the four snowmelt processes of one run (see the module docstring)."""

    def __init__(self, *, partitions: int = 2, batch_timeout: float = 0.25, workdir: str | None = None,
                 broker=None, s3=None, log=print, guarantee: str = "at_least_once",
                 extra: dict[str, dict[str, str]] | None = None):
        self.partitions, self.batch_timeout, self.log = partitions, batch_timeout, log
        # role ("collector", "enrich", "load-clickhouse", "load-s3" or "all") -> config settings over the bench's
        self.extra = extra or {}
        self.guarantee = guarantee
        self.own_tmp = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="snowmelt-e2e-"))
        self.broker, self.s3 = broker, s3
        self._own_broker, self._own_s3 = broker is None, s3 is None
        self.processes: list = []
        run = uuid.uuid4().hex[:8]
        self.run_id = run
        self.bucket = f"snowmelt-e2e-{run}"
        self.groups = {"enrich": f"e2e-enrich-{run}", "load-clickhouse": f"e2e-load-ch-{run}",
                       "load-s3": f"e2e-load-s3-{run}"}
        self._offset_clients: dict[str, Consumer] = {}

    def start(self) -> "Pipeline":
        from tests.services.collector import CollectorProcess
        from tests.services.enrich import EnrichProcess
        from tests.services.kafka import KafkaTopics, broker_from_env
        from tests.services.load import LoadProcess
        from tests.services.s3 import s3_from_env
        from tests.services.server import free_port

        t0 = time.monotonic()
        if self.broker is None:
            self.broker = broker_from_env().start()
        if self.s3 is None:
            self.s3 = s3_from_env()
            self.s3.start()
        self.log(f"services: {self.broker.describe()}; {self.s3.describe()} ({time.monotonic() - t0:.1f} s)")
        bootstrap = self.broker.bootstrap_servers
        self.topics = KafkaTopics(*(f"e2e.{r}.{self.run_id}" for r in KafkaTopics._fields))
        self.broker.create_topics(list(self.topics), partitions=self.partitions)
        self.s3.create_bucket(self.bucket)
        resolver = write_registry(self.workdir / "iglu")

        self.collector = CollectorProcess(bootstrap, self.topics, self._settings("collector", {}))
        self.enrich = EnrichProcess(bootstrap, self.topics, self._settings("enrich", {
            "enrich.commit_interval": "0.5", "enrich.processing_guarantee": self.guarantee,
            "enrich.transactional_id": self.groups["enrich"]}), group_id=self.groups["enrich"], resolver=str(resolver))
        self.sql_port = free_port()
        self.sql_url = f"http://127.0.0.1:{self.sql_port}/"
        common = {"load.batch_timeout": str(self.batch_timeout),
                  "load.exactly_once": str(self.guarantee == "exactly_once").lower()}
        self.load_ch = LoadProcess("clickhouse", bootstrap, self.topics.enriched, self.topics.bad, self._settings(
            "load-clickhouse", {
                **common, "load.clickhouse_group_id": self.groups["load-clickhouse"], "clickhouse.backend": "chdb",
                "clickhouse.chdb_path": str(self.workdir / "chdb"), "clickhouse.database": DATABASE,
                "clickhouse.sql_port": str(self.sql_port), "clickhouse.sql_token": SQL_TOKEN}))
        self.load_s3 = LoadProcess("s3", bootstrap, self.topics.enriched, self.topics.bad, self._settings("load-s3", {
            **common, "load.s3_group_id": self.groups["load-s3"], "s3.backend": "s3", "s3.bucket": self.bucket,
            "s3.endpoint_url": self.s3.endpoint_url, "s3.path_style": "true"}))
        self.load_s3.env.update(self.s3.credentials_env())
        for process in (self.collector, self.enrich, self.load_ch, self.load_s3):
            self.processes.append(process)
            process.start()
        self.log(f"pipeline up in {time.monotonic() - t0:.1f} s: collector {self.collector.url}, "
                 f"SQL {self.sql_url}, topics x{self.partitions} partitions")
        return self

    def _settings(self, role: str, own: dict[str, str]) -> dict[str, str]:
        """``own`` (the bench's settings for ``role``), then those given for every role, then for ``role``."""
        return {**own, **self.extra.get("all", {}), **self.extra.get(role, {})}

    def pids(self) -> dict[str, int | None]:
        pids = {p.name: p.proc.pid if p.proc else None for p in self.processes}
        pids["kafka"] = getattr(self.broker, "pid", None)
        pids["seaweedfs"] = self.s3.proc.pid if getattr(self.s3, "proc", None) else None
        return pids

    def check_alive(self) -> None:
        for p in self.processes:
            if p.proc is not None and p.proc.poll() is not None:
                raise RuntimeError(f"{p.name} exited with {p.proc.returncode}:\n{p.output()}")

    def close(self) -> None:
        for client in self._offset_clients.values():
            with contextlib.suppress(Exception):
                client.close()
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                process.terminate(timeout=30)
            with contextlib.suppress(Exception):
                process.close() if hasattr(process, "close") else process.remove_log()
        if self._own_s3 and self.s3 is not None:
            with contextlib.suppress(Exception):
                self.s3.close()
        if self._own_broker and self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.close()
        if self.own_tmp:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ offsets

    def _client(self, group: str) -> Consumer:
        if group not in self._offset_clients:
            self._offset_clients[group] = Consumer({"bootstrap.servers": self.broker.bootstrap_servers,
                                                    "group.id": group, "enable.auto.commit": False})
        return self._offset_clients[group]

    def end_offsets(self, topic: str) -> list[int]:
        client = self._client("e2e-watermarks")
        return [client.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(self.partitions)]

    def lag(self, group: str, topics: list[str]) -> int:
        """Records of ``topics`` after ``group``'s committed offsets."""
        total = 0
        for topic in topics:
            ends = self.end_offsets(topic)
            committed = self._client(group).committed([TopicPartition(topic, p) for p in range(self.partitions)],
                                                      timeout=10)
            total += sum(max(end - max(tp.offset, 0), 0) for end, tp in zip(ends, committed))
        return total

    def lags(self) -> dict[str, int]:
        """Lag of enrich on raw, then (its output final once that is 0) of each loader on enriched + bad."""
        out = {"enrich": self.lag(self.groups["enrich"], [self.topics.raw])}
        for name in ("load-clickhouse", "load-s3"):
            out[name] = self.lag(self.groups[name], [self.topics.enriched, self.topics.bad])
        return out

    def wait_drained(self, limit: float) -> tuple[float | None, dict[str, int]]:
        """Seconds until every lag is 0 (None if not within ``limit``) and the last lags seen."""
        t0 = time.monotonic()
        while True:
            self.check_alive()
            lags = self.lags()
            if not any(lags.values()):
                return time.monotonic() - t0, lags
            if time.monotonic() - t0 > limit:
                return None, lags
            time.sleep(0.1)

    # ------------------------------------------------------------------ SQL

    def sql(self, query: str, timeout: float = 30.0) -> str:
        request = urllib.request.Request(self.sql_url + "?" + urllib.parse.urlencode({"query": query}),
                                         headers={"Authorization": f"Bearer {SQL_TOKEN}"})
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.read().decode()


# --------------------------------------------------------------------------- markers


MARKER_APP_ID = "e2e-bench"


class MarkerProbe(threading.Thread):
    """Sends marker events at ``rate``/s and polls ClickHouse every ``interval`` s for the ones not yet seen."""

    def __init__(self, pipeline: Pipeline, rate: float = 5.0, interval: float = 0.05):
        super().__init__(name="marker-probe", daemon=True)
        self.pipeline, self.rate, self.interval = pipeline, rate, interval
        self.sent: dict[str, float] = {}  # eid -> HTTP request start (perf_counter)
        self.sent_wall: dict[str, float] = {}  # eid -> HTTP request start (epoch seconds)
        self.since_ms = int(time.time() * 1000) - 1000  # what the polls read: markers collected from then on
        self.seen: dict[str, float] = {}
        self.send_errors = 0
        self.poll_errors = 0
        self.sending = threading.Event()
        self.sending.set()
        self.stopped = threading.Event()

    def _send(self) -> None:
        eid = str(uuid.uuid4())
        query = urllib.parse.urlencode({"e": "se", "eid": eid, "tv": "js-4.1.0", "p": "web", "aid": MARKER_APP_ID,
                                        "dtm": str(int(time.time() * 1000)), "se_ca": "bench", "se_ac": "marker",
                                        "se_la": eid})
        start, wall = time.perf_counter(), time.time()
        try:
            with urllib.request.urlopen(f"{self.pipeline.collector.url}/i?{query}", timeout=10) as resp:
                ok = 200 <= resp.status < 300
        except (OSError, urllib.error.HTTPError):
            ok = False
        if ok:
            self.sent[eid] = start
            self.sent_wall[eid] = wall
        else:
            self.send_errors += 1

    def _poll(self) -> None:
        if len(self.seen) == len(self.sent):
            return
        try:
            # the same statement every time (the endpoint checks it once), every marker collected since this
            # probe started (a second's margin for the clocks); app_id leads the table's sort key, so the poll
            # reads the markers' granules, not the whole table
            found = self.pipeline.sql(f"SELECT event_id FROM {DATABASE}.events WHERE app_id = '{MARKER_APP_ID}' "
                                      f"AND collector_tstamp >= fromUnixTimestamp64Milli(toInt64({self.since_ms}))",
                                      timeout=10).split()
        except (OSError, urllib.error.HTTPError):
            self.poll_errors += 1
            return
        now = time.perf_counter()
        for eid in found:
            if eid in self.sent:  # a marker of an earlier step, or one whose send was not answered, is not counted
                self.seen.setdefault(eid, now)

    def run(self) -> None:
        next_send = time.perf_counter()
        while not self.stopped.is_set():
            if self.sending.is_set() and time.perf_counter() >= next_send:
                self._send()
                next_send += 1.0 / self.rate
            self._poll()
            self.stopped.wait(self.interval)

    def finish(self, timeout: float) -> None:
        """Stop sending; poll until every marker is seen or ``timeout`` passes; stop."""
        self.sending.clear()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.seen) < len(self.sent) and self.is_alive():
            time.sleep(0.05)  # the probe thread polls; this only waits for it
        self.stopped.set()
        self.join(10)

    def hops(self) -> dict[str, dict[str, float]]:
        """Where each seen marker's time went, from the timestamps its row carries (p50/p99 ms per hop).

        click -> collector: the request until ``collector_tstamp``; collector ->
        enriched: Kafka and the worker's batch until ``etl_tstamp``; enriched ->
        insert: the enriched topic and the loader's batch until ``load_tstamp``
        (the insert's start); insert -> visible: the insert and the 50 ms poll.
        """
        seen = [e for e in self.sent if e in self.seen]
        rows = {}
        for i in range(0, len(seen), 200):
            ids = ",".join(f"'{e}'" for e in seen[i:i + 200])
            text = self.pipeline.sql(
                "SELECT event_id, toUnixTimestamp64Milli(collector_tstamp), toUnixTimestamp64Milli(etl_tstamp), "
                f"toUnixTimestamp64Milli(load_tstamp) FROM {DATABASE}.events "
                f"WHERE app_id = '{MARKER_APP_ID}' AND event_id IN ({ids})", timeout=30)
            for line in text.splitlines():
                eid, collected, enriched, loaded = line.split("\t")
                rows[eid] = (int(collected) / 1000, int(enriched) / 1000, int(loaded) / 1000)
        hops: dict[str, list[float]] = {"click -> collector": [], "collector -> enriched": [],
                                        "enriched -> insert": [], "insert -> visible": []}
        for eid, (collected, enriched, loaded) in rows.items():
            visible = self.sent_wall[eid] + (self.seen[eid] - self.sent[eid])
            for name, (a, b) in zip(hops, ((self.sent_wall[eid], collected), (collected, enriched),
                                           (enriched, loaded), (loaded, visible))):
                hops[name].append((b - a) * 1000)
        return {name: {k: round(v, 1) for k, v in percentiles(values).items() if k in ("p50", "p99")}
                for name, values in hops.items() if values}

    def result(self) -> dict:
        latencies = [(self.seen[e] - t) * 1000 for e, t in self.sent.items() if e in self.seen]
        pct = percentiles(latencies)
        try:
            hops = self.hops()
        except (OSError, urllib.error.HTTPError, ValueError) as exc:
            hops = {"error": str(exc)}
        return {"markers_sent": len(self.sent), "markers_seen": len(latencies),
                "markers_lost": len(self.sent) - len(latencies), "send_errors": self.send_errors,
                "poll_errors": self.poll_errors,
                "latency_ms": {k: round(pct[k], 1) for k in ("p50", "p95", "p99", "max")},
                "hops_ms": hops}


# --------------------------------------------------------------------------- steps


@dataclass
class Step:
    target: float
    seconds: float
    load: dict = field(default_factory=dict)
    drain_seconds: float | None = None
    lag_after: dict = field(default_factory=dict)
    sustained: bool = False
    why_not: list = field(default_factory=list)
    markers: dict = field(default_factory=dict)
    cpu_seconds: dict = field(default_factory=dict)
    events_per_cpu_second: dict = field(default_factory=dict)
    rss_mb: dict = field(default_factory=dict)
    cpu_by_thread: dict = field(default_factory=dict)


def run_step(pipeline: Pipeline, target: float, seconds: float, *, seed: int, drain_limit: float,
             marker_rate: float, marker_timeout: float, bad_share: float, batch: int, progress: bool,
             accepted: set, bad_expected: set, profile: bool = False) -> Step:
    step = Step(target, seconds)
    # bodies built before the clock starts
    requests = build_requests(int(target * seconds * 1.02) + batch, batch=batch, bad_share=bad_share, seed=seed)
    pids = pipeline.pids()
    cpu0, own0 = cpu_seconds(pids), time.process_time()
    threads0 = threads_of(pipeline)
    rss = RssSampler(pids)
    rss.start()
    probe = MarkerProbe(pipeline, rate=marker_rate)
    probe.start()
    try:
        with contextlib.ExitStack() as flames:
            if profile:  # a flame graph of each snowmelt process while the load runs
                for p in pipeline.processes:
                    flames.enter_context(flame(p.proc.pid, RESULTS / f"flame-e2e-{p.name}.svg"))
            report, ids = asyncio.run(run_load_async(pipeline.collector.url, rate=target, duration=seconds,
                                                     batch=batch, progress=progress, requests=requests))
        accepted.update(ids)
        bad_expected.update(i for i in ids if i in requests[1])
        probe.sending.clear()  # nothing new enters while the lag is measured
        step.drain_seconds, step.lag_after = pipeline.wait_drained(drain_limit)
        if step.drain_seconds is None:  # not within the limit: wait for the rest, for the accounting
            pipeline.wait_drained(600)
    finally:
        probe.finish(marker_timeout)
        step.rss_mb = rss.result()
    accepted.update(probe.sent)
    cpu1, own1 = cpu_seconds(pids), time.process_time()
    step.cpu_by_thread = {name: cpu_by_thread(threads0.get(name, {}), after)
                          for name, after in threads_of(pipeline).items()}
    step.load = asdict(report)
    step.markers = probe.result()
    step.cpu_seconds = {name: round(cpu1[name] - cpu0[name], 2) for name in cpu0}
    step.cpu_seconds["bench (loadgen + probe)"] = round(own1 - own0, 2)
    step.events_per_cpu_second = {name: round(report.events_accepted / cpu) if cpu > 0 else None
                                  for name, cpu in step.cpu_seconds.items()}
    if report.achieved_events_per_s < 0.98 * target:
        step.why_not.append(f"achieved {report.achieved_events_per_s:,.0f} < 98% of target")
    if report.status_5xx or report.connection_errors:
        step.why_not.append(f"{report.status_5xx} 5xx, {report.connection_errors} connection errors")
    if step.drain_seconds is None:
        step.why_not.append(f"lag not 0 within {drain_limit:.0f} s: {step.lag_after}")
    step.sustained = not step.why_not
    return step


# --------------------------------------------------------------------------- accounting


def read_topic(pipeline: Pipeline, topic: str) -> list[bytes]:
    """Every record value of ``topic``, up to its end offsets now."""
    ends = pipeline.end_offsets(topic)
    consumer = Consumer({"bootstrap.servers": pipeline.broker.bootstrap_servers,
                         "group.id": f"e2e-read-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                         "fetch.max.bytes": 64 * 1024 * 1024})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(pipeline.partitions) if ends[p] > 0])
    values: list[bytes] = []
    positions = [0] * pipeline.partitions
    deadline = time.monotonic() + 600
    try:
        while any(pos < end for pos, end in zip(positions, ends)) and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, 1.0):
                if msg.error():
                    continue
                values.append(msg.value())
            # the consumer's position, not the last record's offset + 1: a topic written in transactions
            # ends each one with a marker that takes an offset and is never delivered
            parts = consumer.position([TopicPartition(topic, p) for p in range(pipeline.partitions)])
            positions = [max(part.offset, 0) for part in parts]
    finally:
        consumer.close()
    return values


def bad_row_event_ids(line: bytes, known: set[str]) -> set[str]:
    """The ids of the events a bad row stands for: the event's own id where the row names one event
    (``payload.enriched.event_id``, or ``eid`` in ``payload.querystring``); else every known id in the
    row (a payload that failed as a whole stands for all its events)."""
    try:
        payload = json.loads(line)["data"]["payload"]
    except (ValueError, KeyError, TypeError):
        payload = None
    if isinstance(payload, dict):
        enriched = payload.get("enriched")
        if isinstance(enriched, dict) and enriched.get("event_id"):
            return {enriched["event_id"]}
        query = payload.get("querystring")
        if isinstance(query, list):
            eids = {p.get("value") for p in query if isinstance(p, dict) and p.get("name") == "eid"}
            if eids:
                return eids
    return {m.decode() for m in UUID_RE.findall(line)} & known


def _ids_in(lines, known: set[str]) -> set[str]:
    found: set[str] = set()
    for line in lines:
        found.update(bad_row_event_ids(line, known))
    return found


def account(pipeline: Pipeline, sent_events: int, accepted: set[str], bad_expected: set[str],
            accepted_requests: int) -> dict:
    """Where every accepted event went (see the module docstring)."""
    raw_records = sum(pipeline.end_offsets(pipeline.topics.raw))
    enriched_lines = read_topic(pipeline, pipeline.topics.enriched)
    enriched_ids = [line.split(b"\t", 7)[6].decode() for line in enriched_lines]
    enriched = set(enriched_ids)
    bad_lines = read_topic(pipeline, pipeline.topics.bad)
    bad_ids = _ids_in(bad_lines, accepted)

    ch_ids = pipeline.sql(f"SELECT event_id FROM {DATABASE}.events", timeout=300).split()
    ch_bad_rows, ch_bad_distinct = (int(x) for x in pipeline.sql(
        f"SELECT count(), uniqExact(line) FROM {DATABASE}.bad_rows").split())

    client = pipeline.s3.client()
    s3_ids: list[str] = []
    s3_bad: list[bytes] = []
    s3_objects = 0
    for kind in ("enriched", "bad"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=pipeline.bucket,
                                                                    Prefix=f"snowplow/{kind}/"):
            for obj in page.get("Contents", []):
                s3_objects += 1
                data = gzip.decompress(client.get_object(Bucket=pipeline.bucket, Key=obj["Key"])["Body"].read())
                lines = [line for line in data.split(b"\n") if line]
                if kind == "enriched":
                    s3_ids.extend(line.split(b"\t", 7)[6].decode() for line in lines)
                else:
                    s3_bad.extend(lines)

    missing = accepted - enriched - bad_ids
    diffs = {
        "accepted but neither enriched nor bad": sorted(missing)[:20],
        "bad on purpose but enriched": sorted(bad_expected & enriched)[:20],
        "good but bad": sorted(bad_ids - bad_expected)[:20],
        "enriched not in ClickHouse": sorted(enriched - set(ch_ids))[:20],
        "in ClickHouse not enriched": sorted(set(ch_ids) - enriched)[:20],
        "enriched not in S3": sorted(enriched - set(s3_ids))[:20],
        "in S3 not enriched": sorted(set(s3_ids) - enriched)[:20],
    }
    counts = {
        "events sent": sent_events,
        "events accepted (2xx)": len(accepted),
        "bad on purpose, accepted": len(bad_expected),
        "requests accepted (2xx)": accepted_requests,
        "raw records on topic": raw_records,
        "enriched records": len(enriched_lines),
        "enriched distinct event ids": len(enriched),
        "bad rows on topic": len(bad_lines),
        "bad rows naming an accepted event": len(bad_ids),
        "clickhouse events rows": len(ch_ids),
        "clickhouse distinct event ids": len(set(ch_ids)),
        "clickhouse bad_rows (distinct)": f"{ch_bad_rows} ({ch_bad_distinct})",
        "s3 objects": s3_objects,
        "s3 enriched rows": len(s3_ids),
        "s3 distinct event ids": len(set(s3_ids)),
        "s3 bad rows (distinct)": f"{len(s3_bad)} ({len(set(s3_bad))})",
    }
    if raw_records < accepted_requests:
        diffs["raw records fewer than accepted requests"] = [f"{raw_records} < {accepted_requests}"]
    bad_distinct = len(set(bad_lines))
    if ch_bad_distinct != bad_distinct:
        diffs["bad rows in ClickHouse"] = [f"{ch_bad_distinct} distinct, topic {bad_distinct}"]
    if len(set(s3_bad)) != bad_distinct:
        diffs["bad rows in S3"] = [f"{len(set(s3_bad))} distinct, topic {bad_distinct}"]
    diffs = {k: v for k, v in diffs.items() if v}
    return {"counts": counts, "differences": diffs, "every_event_accounted_for": not diffs}


# --------------------------------------------------------------------------- the run


def machine() -> dict:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform()}


ROLES = ("collector", "enrich", "load-clickhouse", "load-s3")


def _setting(text: str) -> tuple[str, str, str]:
    """``[ROLE:]KEY=VALUE`` -> (role or "all", key, value)."""
    name, eq, value = text.partition("=")
    role, _, key = name.rpartition(":")
    if not eq or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected [ROLE:]KEY=VALUE")
    if role and role not in ROLES:
        raise argparse.ArgumentTypeError(f"{text!r}: ROLE is one of {', '.join(ROLES)}")
    return role or "all", key, value


def _group_settings(settings: list[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    grouped: dict[str, dict[str, str]] = {}
    for role, key, value in settings:
        grouped.setdefault(role, {})[key] = value
    return grouped


def run_bench(rates: list[float], step_seconds: float, *, batch_timeout: float = 0.25, partitions: int = 2,
              drain_limit: float = 5.0, marker_rate: float = 5.0, marker_timeout: float = 30.0,
              bad_share: float = 0.01, batch: int = 20, latency_step: bool = True, keep_going: bool = False,
              progress: bool = True, broker=None, s3=None, log=print, profile: bool = False,
              guarantee: str = "at_least_once", extra: dict[str, dict[str, str]] | None = None) -> dict:
    """Run the steps and the accounting (see the module docstring); returns the results as a dict."""
    settings = {"rates": rates, "step_seconds": step_seconds, "load.batch_timeout": batch_timeout,
                "partitions": partitions, "drain_limit_s": drain_limit, "marker_rate": marker_rate,
                "bad_share": bad_share, "events_per_post": batch, "get_share": 0.1,
                "collector.delivery": "acked", "enrich.commit_interval": 0.5,
                "enrich.processing_guarantee": guarantee, "load.exactly_once": guarantee == "exactly_once"}
    if extra:
        settings["extra settings"] = extra
    pipeline = Pipeline(partitions=partitions, batch_timeout=batch_timeout, broker=broker, s3=s3, log=log,
                        guarantee=guarantee, extra=extra)
    accepted: set[str] = set()
    bad_expected: set[str] = set()
    steps: list[Step] = []
    try:
        pipeline.start()
        settings["kafka"] = pipeline.broker.describe()
        settings["s3"] = pipeline.s3.describe()
        kw = {"drain_limit": drain_limit, "marker_rate": marker_rate, "marker_timeout": marker_timeout,
              "bad_share": bad_share, "batch": batch, "progress": progress, "accepted": accepted,
              "bad_expected": bad_expected}
        for i, rate in enumerate(rates):
            # without a latency step, --profile records the rate steps (each one's graphs replace the last's)
            step = run_step(pipeline, rate, step_seconds, seed=i + 1, profile=profile and not latency_step, **kw)
            steps.append(step)
            log(step_line(step))
            if not step.sustained and not keep_going:
                break
        sustained = [s.target for s in steps if s.sustained]
        best = max(sustained) if sustained else None
        if latency_step and best and not any(s.target == best / 2 for s in steps):
            step = run_step(pipeline, best / 2, step_seconds, seed=len(steps) + 1, profile=profile, **kw)
            steps.append(step)
            log(step_line(step) + "  (latency step at half the highest sustained rate)")
        sent = sum(s.load["events_sent"] for s in steps) + sum(s.markers["markers_sent"] for s in steps)
        requests_ok = sum(s.load["status_2xx"] for s in steps) + sum(s.markers["markers_sent"] for s in steps)
        pipeline.wait_drained(600)
        accounting = account(pipeline, sent, accepted, bad_expected, requests_ok)
    finally:
        pipeline.close()
    half = [s for s in steps if best and s.target == best / 2]
    return {"machine": machine(), "settings": settings, "steps": [asdict(s) for s in steps],
            "highest_sustained_events_per_s": best,
            "latency_at_half_max": half[0].markers if half else None,
            "accounting": accounting}


def step_line(step: Step) -> str:
    load, m = step.load, step.markers
    drain = f"{step.drain_seconds:.1f}s" if step.drain_seconds is not None else "no"
    return (f"{step.target:>8,.0f} {load['achieved_events_per_s']:>9,.0f} {load['status_5xx'] + load['connection_errors']:>5} "
            f"{load['latency_ms'].get('p99', 0):>8.1f} {drain:>6} {m['latency_ms']['p50']:>8.0f} "
            f"{m['latency_ms']['p95']:>8.0f} {m['latency_ms']['p99']:>8.0f} {m['latency_ms']['max']:>8.0f} "
            f"{m['markers_lost']:>4}/{m['markers_sent']:<4} {'yes' if step.sustained else 'NO ' + '; '.join(step.why_not)}")


HEADER = (f"{'target':>8} {'achieved':>9} {'5xx+':>5} {'http p99':>8} {'drain':>6} {'q p50':>8} {'q p95':>8} "
          f"{'q p99':>8} {'q max':>8} {'lost':>9} sustained\n"
          f"{'ev/s':>8} {'ev/s':>9} {'err':>5} {'ms':>8} {'':>6} {'ms':>8} {'ms':>8} {'ms':>8} {'ms':>8}")


def cpu_us_per_event(step: dict) -> dict[str, float]:
    """Microseconds of CPU each process spent on an event of a step (its CPU-seconds, the drain included, over
    the events accepted), ``all`` of them together; empty for a step that accepted nothing."""
    events = step["load"].get("events_accepted") or 0
    if not events:
        return {}
    per_event = {name: cpu * 1e6 / events for name, cpu in step["cpu_seconds"].items()}
    per_event["all"] = sum(step["cpu_seconds"].values()) * 1e6 / events
    return per_event


def report_text(results: dict) -> str:
    lines = [f"machine: {results['machine']['nproc']} CPUs, {results['machine']['cpu']}",
             f"settings: {json.dumps({k: v for k, v in results['settings'].items() if k != 'rates'})}",
             "", "http = request latency (open loop, from intended start); q = click-to-queryable in ClickHouse", "",
             HEADER]
    lines += [step_line(Step(**s)) for s in results["steps"]]
    lines.append("")
    lines.append("where a marker's time went, p50 / p99 ms (from its row's collector_tstamp, etl_tstamp, load_tstamp):")
    for s in results["steps"]:
        hops = s["markers"].get("hops_ms", {})
        lines.append(f"  {s['target']:>8,.0f}: " + ", ".join(
            f"{name} {v['p50']:.0f} / {v['p99']:.0f}" for name, v in hops.items() if isinstance(v, dict)))
    lines.append("")
    lines.append(f"highest sustained: {results['highest_sustained_events_per_s'] or 'none'} events/s")
    lines.append("CPU seconds per step (events accepted per CPU-second):")
    for s in results["steps"]:
        lines.append(f"  {s['target']:>8,.0f}: " + ", ".join(
            f"{name} {cpu:.1f} ({s['events_per_cpu_second'][name] or 0:,})" for name, cpu in s["cpu_seconds"].items()))
    cpus = results["machine"]["nproc"]
    lines.append(f"CPU an event, us (the step's CPU, its drain included, over the events accepted), and what "
                 f"{cpus} CPUs give an event at the target rate:")
    for s in results["steps"]:
        per_event = cpu_us_per_event(s)
        if per_event:
            lines.append(f"  {s['target']:>8,.0f}: " + ", ".join(f"{name} {us:.1f}" for name, us in per_event.items())
                         + f"; {cpus} CPUs give {cpus * 1e6 / s['target']:.1f}")
    lines.append("CPU seconds per step by thread, the largest five of each process:")
    for s in results["steps"]:
        for name, threads in s.get("cpu_by_thread", {}).items():
            lines.append(f"  {s['target']:>8,.0f} {name}: " + ", ".join(
                f"{thread} {cpu:.1f}" for thread, cpu in list(threads.items())[:5]))
    lines.append("resident memory per step under load, MB, peak / at the end (process and its children):")
    for s in results["steps"]:
        lines.append(f"  {s['target']:>8,.0f}: " + ", ".join(
            f"{name} {v['peak']:.0f} / {v['end']:.0f}" for name, v in s.get("rss_mb", {}).items()))
    lines.append("accounting:")
    for name, value in results["accounting"]["counts"].items():
        lines.append(f"  {name:<36} {value:>12,}" if isinstance(value, int) else f"  {name:<36} {value:>12}")
    lines.append(f"every event accounted for: {results['accounting']['every_event_accounted_for']}")
    for name, ids in results["accounting"]["differences"].items():
        lines.append(f"  {name}: {', '.join(ids)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="2000,4000,6000,8000,10000", help="target events/s of the steps")
    ap.add_argument("--step-seconds", type=float, default=20.0)
    ap.add_argument("--batch-timeout", type=float, default=0.25, help="the loaders' load.batch_timeout")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--drain-limit", type=float, default=5.0, help="seconds the lag may take to return to 0")
    ap.add_argument("--marker-rate", type=float, default=5.0)
    ap.add_argument("--bad-share", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=20, help="events per POST")
    ap.add_argument("--keep-going", action="store_true", help="run every step even after one is not sustained")
    ap.add_argument("--no-latency-step", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--profile", action="store_true",
                    help="keep py-spy flame graphs of every snowmelt process during the latency step (with "
                         "--no-latency-step, during the last step run)")
    ap.add_argument("--json", metavar="PATH", help="default bench/results/e2e-<time>.json")
    ap.add_argument("--guarantee", choices=["at_least_once", "exactly_once"], default="at_least_once",
                    help="enrich.processing_guarantee, and load.exactly_once with exactly_once")
    ap.add_argument("--setting", metavar="[ROLE:]KEY=VALUE", action="append", default=[], type=_setting,
                    help="a config setting over the bench's own, for every snowmelt process or for one ROLE "
                         f"({', '.join(ROLES)}); e.g. 'load-s3:load.batch_timeout=1'. May be repeated")
    args = ap.parse_args(argv)
    args.setting = _group_settings(args.setting)

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started with SIGINT ignored
    try:
        import uvloop  # type: ignore

        uvloop.install()
    except ImportError:
        pass
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    log(HEADER)
    try:
        results = run_bench(rates, args.step_seconds, batch_timeout=args.batch_timeout,
                            partitions=args.partitions, drain_limit=args.drain_limit, marker_rate=args.marker_rate,
                            bad_share=args.bad_share, batch=args.batch, latency_step=not args.no_latency_step,
                            keep_going=args.keep_going, progress=not args.no_progress, log=log,
                            profile=args.profile, guarantee=args.guarantee, extra=args.setting)
    except KeyboardInterrupt:
        log("interrupted: every process stopped, no results written")
        return 130
    print(report_text(results))
    path = Path(args.json) if args.json else RESULTS / f"e2e-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {path}")
    return 0 if results["accounting"]["every_event_accounted_for"] else 1


if __name__ == "__main__":
    sys.exit(main())
