"""Broker failover under load through the whole pipeline, on a three-node Kafka cluster.

    python -m bench.cluster_failover [--events 4000] [--rate 150] [--no-clickhouse]
                                     [--guarantee at_least_once|exactly_once]

Starts its own three-node Apache Kafka cluster (``tests.services.kafka.KafkaCluster``:
replication factor 3, ``min.insync.replicas=2``) and its own SeaweedFS S3, then runs
the pipeline as real processes (collector -> raw topic -> enrich worker -> enriched/bad
topics -> S3 loader and ClickHouse loader on chdb; ``tests.services.pipeline.Pipeline``)
under steady tracker traffic (``--rate`` events per second, tp2 POSTs of 5 page views
and GET pixels), and while it flows:

1. kills (SIGKILL) the node leading raw partition 0;
2. once every stage has committed again, kills the node leading enriched partition 0
   (another one if that is the first): one node of three is left, no quorum;
3. after the collector's produce timeout and 2 s more (every request sent after that
   must be refused), starts both nodes again;
4. lets the traffic reach ``--events`` and everything drain.

Then it prints what was acknowledged (2xx), what of it is missing on the enriched topic,
in S3 and in ClickHouse, the duplicates in each store (rows - distinct event ids; the
contract is at least once; with ``--guarantee exactly_once``, enrich in Kafka
transactions and the loaders' write intents, it is 0), the 503s, the longest stretch without a 2xx at the collector
after each kill, and for each kill and the restart the time until the collector answers
2xx again and until each consumer group (enrich, each loader) commits again (committed
offsets polled every 0.25 s by an admin client with a deadline).

:func:`run_failover` is the scenario on a running cluster and S3 store;
tests/integration/test_kafka_cluster.py runs it at a small scale and asserts on its
:class:`FailoverReport`.  Everything started here is stopped on the way out, on
Ctrl-C and SIGTERM too.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid

from tests.services.pipeline import (EVENTS_PER_POST, PARTITIONS, Pipeline, Traffic, chdb_event_ids, collector_metrics,
                                     metric_sum)
from tests.services.s3 import s3_enriched_event_ids
from tests.services.wait import wait_until

#: events per request of :class:`Traffic` on average (7 POSTs of 5 events, then a pixel)
EVENTS_PER_REQUEST = (7 * EVENTS_PER_POST + 1) / 8


class CommitMonitor:
    """Polls the committed offsets of consumer groups every ``interval`` seconds, in a thread.

    ``groups`` maps a group id to the topics it reads (``partitions`` each).  Each sample is
    (monotonic time, sum of the committed offsets of those topics); a poll that fails (no
    coordinator while there is no quorum) or times out (``request_timeout``) leaves no sample.
    One consumer per group that never joins it asks (``committed()``): librdkafka 2.16's admin
    ``list_consumer_group_offsets`` aborted the process (an ``rd_kafka_enq_once`` assertion)
    when asked while brokers came back.
    """

    def __init__(self, broker, groups: dict[str, list[str]], partitions: int = PARTITIONS, interval: float = 0.25,
                 request_timeout: float = 2.0):
        from confluent_kafka import Consumer, TopicPartition

        self.consumers = {group: Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group,
                                           "enable.auto.commit": False, "log_level": 0})
                          for group in groups}
        self.partitions = {group: [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
                           for group, topics in groups.items()}
        self.groups = groups
        self.interval = interval
        self.request_timeout = request_timeout
        self.samples: dict[str, list[tuple[float, int]]] = {group: [] for group in groups}
        self.lock = threading.Lock()
        self.asking = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="commit-monitor")

    def committed_total(self, group: str) -> int | None:
        """The sum of the group's committed offsets now (partitions without one count 0), None on failure."""
        try:
            with self.asking:  # the thread and a caller's baseline take turns with a consumer
                committed = self.consumers[group].committed(self.partitions[group], timeout=self.request_timeout)
        except Exception:  # KafkaException: no coordinator, timed out
            return None
        if any(tp.error is not None for tp in committed):
            return None
        return sum(max(tp.offset, 0) for tp in committed)

    def sample(self, group: str) -> int | None:
        total = self.committed_total(group)
        if total is not None:
            with self.lock:
                self.samples[group].append((time.monotonic(), total))
        return total

    def _run(self) -> None:
        while not self.stopping.is_set():
            for group in self.groups:
                self.sample(group)
            self.stopping.wait(self.interval)

    def start(self) -> CommitMonitor:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(30)
        for consumer in self.consumers.values():
            consumer.close()
        self.consumers.clear()

    def latest(self, group: str) -> int:
        with self.lock:
            return self.samples[group][-1][1] if self.samples[group] else 0

    def baseline(self, group: str, ask: bool = True) -> int:
        """The committed total now (the last sample when the group cannot be asked, or ``ask`` is false)."""
        total = self.sample(group) if ask else None
        return self.latest(group) if total is None else total

    def rewinds(self, group: str) -> tuple[int, int]:
        """How many times the group's committed total went down between samples, and by how much in all."""
        with self.lock:
            totals = [total for _moment, total in self.samples[group]]
        drops = [a - b for a, b in zip(totals, totals[1:]) if b < a]
        return len(drops), sum(drops)

    def first_advance(self, group: str, since: float, above: int) -> float | None:
        """Seconds from ``since`` to the first sample after it with a committed total above ``above``."""
        with self.lock:
            for moment, total in self.samples[group]:
                if moment > since and total > above:
                    return moment - since
        return None


@dataclasses.dataclass
class Moment:
    """A kill or the restart: when, which nodes, and the recovery of each stage after it."""

    what: str
    nodes: list[int]
    at: float
    baselines: dict[str, int]
    #: seconds until the collector answered 2xx to a request sent after this moment
    collector: float | None = None
    #: seconds until each group (by stage name) committed beyond its offsets at this moment
    commits: dict[str, float | None] = dataclasses.field(default_factory=dict)
    #: the longest stretch without a 2xx answer from this moment to the next one (or the end of recovery)
    longest_gap: float | None = None
    #: after a leader's kill: (topic, partition, its old leader), and the seconds until the metadata of the nodes
    #: left named another leader (None if not seen before the stages recovered); tells a slow election from a
    #: slow client when the collector's gap is long
    watch: tuple[str, int, int] | None = None
    elected: float | None = None


@dataclasses.dataclass
class FailoverReport:
    sent: int = 0
    acknowledged: int = 0
    refused: int = 0
    failed: int = 0  # events of requests answered neither 2xx nor 503
    failed_requests: int = 0  # requests answered neither 2xx nor 503, or not at all
    statuses: dict[int, int] = dataclasses.field(default_factory=dict)
    enriched_rows: int = 0
    enriched_distinct: int = 0
    bad_rows: int = 0
    lost_enriched: int = 0
    stores: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)  # name -> rows, distinct, lost
    refused_but_delivered: int = 0
    sink_unavailable: float = 0.0
    #: requests answered 2xx though sent later than produce timeout + 2 s after the quorum was lost
    late_ok: int = 0
    late_answers: int = 0
    moments: list[Moment] = dataclasses.field(default_factory=list)
    restart_seconds: float = 0.0
    drain_seconds: float = 0.0
    wall_seconds: float = 0.0
    #: stage -> (times its group's committed offsets went back, by how many offsets in all)
    rewinds: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    #: enrich workers that exited 3 and were started again (as a Deployment / StatefulSet would)
    enrich_restarts: list[str] = dataclasses.field(default_factory=list)
    # what the counts are made of, for the caller's own checks (not printed)
    traffic: Traffic | None = dataclasses.field(default=None, repr=False)
    enriched_ids: list[str] = dataclasses.field(default_factory=list, repr=False)
    loaded_ids: dict[str, list[str]] = dataclasses.field(default_factory=dict, repr=False)

    def moment(self, what: str) -> Moment:
        return next(m for m in self.moments if m.what == what)

    def format(self) -> str:
        def secs(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f} s"

        lines = [
            f"requests' events: sent {self.sent}, acknowledged (2xx) {self.acknowledged}, refused (503) "
            f"{self.refused}, failed {self.failed} ({self.failed_requests} requests without a 2xx/503); "
            f"HTTP statuses {dict(sorted(self.statuses.items()))}; collector sink_unavailable "
            f"{self.sink_unavailable:.0f}",
            f"enriched topic: {self.enriched_rows} rows, {self.enriched_distinct} distinct event ids, "
            f"{self.enriched_rows - self.enriched_distinct} duplicates, {self.bad_rows} bad rows; "
            f"acknowledged but not enriched (lost): {self.lost_enriched}; refused (503) but enriched anyway: "
            f"{self.refused_but_delivered}",
        ]
        for name, store in self.stores.items():
            lines.append(f"{name}: {store['rows']} rows, {store['distinct']} distinct event ids, "
                         f"{store['rows'] - store['distinct']} duplicates; acknowledged but not loaded (lost): "
                         f"{store['lost']}")
        lines.append(f"without a quorum: {self.late_answers} requests sent later than produce timeout + 2 s after "
                     f"the second kill were answered before the restart, {self.late_ok} of them 2xx")
        if self.rewinds:
            lines.append("committed offsets going back (stage: times, offsets in all): "
                         + ", ".join(f"{stage}: {n}, {back}" for stage, (n, back) in self.rewinds.items()))
        for m in self.moments:
            commits = ", ".join(f"{stage} {secs(value)}" for stage, value in m.commits.items())
            gap = f"; longest stretch without a 2xx {m.longest_gap:.1f} s" if m.longest_gap is not None else ""
            if m.watch is not None:
                gap += f"; {m.watch[0]}[{m.watch[1]}]'s new leader in the metadata after {secs(m.elected)}"
            lines.append(f"{m.what} (node{'s' if len(m.nodes) > 1 else ''} {', '.join(map(str, m.nodes))}): "
                         f"collector 2xx again after {secs(m.collector)}; commits again after: {commits}{gap}")
        if self.enrich_restarts:
            lines.append(f"enrich worker restarted {len(self.enrich_restarts)} times (exit 3): "
                         + "; ".join(self.enrich_restarts))
        lines.append(f"nodes' restart {self.restart_seconds:.1f} s; drain after the traffic {self.drain_seconds:.1f} s;"
                     f" wall time {self.wall_seconds:.1f} s")
        return "\n".join(lines)


def run_failover(cluster, s3, bucket: str, *, events: int = 4000, rate: float = 150.0,
                 chdb_path: str | None = None, produce_timeout: float = 3.0, recovery_timeout: float = 120.0,
                 senders: int = 16, log=print, guarantee: str = "at_least_once") -> FailoverReport:
    """The failover scenario (see the module docstring) on a running ``cluster`` and ``s3`` store.

    ``bucket`` exists on ``s3`` and the S3 credentials are in this process's environment (the
    processes inherit it).  ``chdb_path``: a folder for a ClickHouse loader on chdb (none without).
    At least ``events`` events are sent, at ``rate`` events per second.  Raises (with the processes
    stopped) when a stage does not recover within ``recovery_timeout`` seconds of a kill or of the
    restart; the caller asserts on the report.  Every node of the cluster is running again on the
    way out, whatever happened (but Ctrl-C).
    """
    t0 = time.monotonic()
    rep = FailoverReport()
    p = Pipeline(cluster, bucket, s3.endpoint_url, collector={"collector.produce_timeout": str(produce_timeout)},
                 chdb_path=chdb_path, enrich={"enrich.processing_guarantee": guarantee},
                 load={"load.exactly_once": str(guarantee == "exactly_once").lower()})
    stages = {"enrich": (p.enrich_group, [p.topics.raw]),
              "load s3": (p.load_group, [p.topics.enriched, p.topics.bad])}
    if chdb_path:
        stages["load clickhouse"] = (p.ch_group, [p.topics.enriched, p.topics.bad])
    monitor = CommitMonitor(cluster, dict(stages.values()))
    traffic: Traffic | None = None
    completed = interrupted = False
    try:
        p.start()
        log(f"pipeline up in {time.monotonic() - t0:.1f} s (topics {p.topics.raw} ...)")
        monitor.start()
        # Without a quorum the collector holds requests for up to ~10 s (not just the produce timeout)
        # and answers them 503 in waves: 16 senders, so that a few requests are always out.
        traffic = Traffic(p.collector.port, rate=rate / EVENTS_PER_REQUEST, senders=senders,
                          max_requests=10**9).start()

        def committed_everywhere(after: Moment | None) -> bool:
            if after is None:
                return all(monitor.latest(group) > 0 for group, _ in stages.values())
            return all(monitor.first_advance(group, after.at, after.baselines[stage]) is not None
                       for stage, (group, _) in stages.items())

        def mark(what: str, nodes: list[int], ask: bool = True) -> Moment:
            baselines = {stage: monitor.baseline(group, ask) for stage, (group, _) in stages.items()}
            moment = Moment(what, nodes, time.monotonic(), baselines)
            rep.moments.append(moment)
            return moment

        def last_critical(proc) -> str | None:
            """The last CRITICAL line a role's process logged (why it exited), if any."""
            return next((line for line in reversed(proc.output(4000).splitlines()) if "CRITICAL" in line), None)

        def restart_exited_worker() -> None:
            # Kubernetes restarts a worker that exits 3 (it committed nothing; a transaction it left is
            # aborted by its successor under the same transactional id): so does the run
            worker = p.workers[-1]
            if worker.proc is not None and worker.proc.poll() == 3:
                last = last_critical(worker)
                rep.enrich_restarts.append(f"{time.monotonic() - t0:.1f} s: {last[-160:] if last else '?'}")
                log(f"enrich worker exited 3, starting another: {rep.enrich_restarts[-1]}")
                p.workers.remove(worker)
                p.new_worker().start(90)

        admin = cluster.admin()

        def note_election(moment: Moment) -> None:
            if moment.watch is None or moment.elected is not None:
                return
            topic, partition, old = moment.watch
            try:
                found = admin.list_topics(topic, timeout=0.5).topics[topic].partitions.get(partition)
            except Exception:  # no node answered in time: asked again on the next poll
                return
            if found is not None and found.leader >= 0 and found.leader != old:
                moment.elected = time.monotonic() - moment.at

        def recovered(moment: Moment) -> bool:
            restart_exited_worker()
            note_election(moment)
            if traffic.first_ok_sent_after(moment.at) is None:
                return False
            return committed_everywhere(moment)

        def wait_recovered(moment: Moment, what: str) -> None:
            """Wait for every stage working again after ``moment``; a timeout says which stage did not and how
            each role's process stands (an exit and its last CRITICAL line)."""
            try:
                wait_until(lambda: recovered(moment), recovery_timeout, what, interval=0.1)
            except AssertionError as exc:
                behind = [stage for stage, (group, _) in stages.items()
                          if monitor.first_advance(group, moment.at, moment.baselines[stage]) is None]
                roles = []
                for role, proc in [("enrich", worker) for worker in p.workers] + [("load", loader)
                                                                                   for loader in p.loaders]:
                    code = proc.proc.poll() if proc.proc is not None else None
                    last = last_critical(proc)
                    roles.append(f"{role} {'running' if code is None else f'exited {code}'}"
                                 + (f" ({last[-200:]})" if last else ""))
                    if code is not None and code < 0:  # killed by a signal: its last words (faulthandler's dump)
                        log(f"{role} exited {code}; the end of its output:\n{proc.output(6000)}")
                ok = traffic.first_ok_sent_after(moment.at) is not None
                raise AssertionError(f"{exc}: not committing again: {', '.join(behind) or 'none'}; collector "
                                     f"{'answers 2xx' if ok else 'no 2xx yet'}; {'; '.join(roles)}") from None

        share = max(200, events // 5)
        traffic.wait_accepted(share, 120, "events acknowledged before the first kill")
        wait_until(lambda: committed_everywhere(None), 120, "every stage committing before the first kill")

        first = cluster.leader(p.topics.raw, 0)
        kill1 = mark("kill of raw[0]'s leader", [first])
        kill1.watch = (p.topics.raw, 0, first)
        cluster.kill_node(first)
        log(f"killed node {first} (leader of raw[0]) after {traffic.counts()[0]} acknowledged events")
        wait_recovered(kill1, "every stage working again after the first kill")
        # the stages may have recovered on a poll before the metadata asked named the new leader
        wait_until(lambda: (note_election(kill1), kill1.elected is not None)[1], 30,
                   "the metadata naming raw[0]'s new leader", interval=0.1)
        traffic.wait_accepted(share // 2, 120, "events acknowledged after the first kill")

        second = cluster.leader(p.topics.enriched, 0)
        if second == first:  # stale metadata: another live node
            second = next(node.node_id for node in cluster.nodes if node.node_id != first)
        kill2 = mark("kill of enriched[0]'s leader", [second])
        refused_before = traffic.counts()[1]
        cluster.kill_node(second)
        kill1.longest_gap = traffic.longest_gap_without_ok(kill1.at, kill2.at)
        log(f"killed node {second} (leader of enriched[0]): one node left, no quorum")
        late = kill2.at + produce_timeout + 2

        def late_answers(before: float) -> list[int]:
            return [status for sent, answered, status in traffic.timed_answers() if sent >= late and answered < before]

        wait_until(lambda: traffic.counts()[1] > refused_before, 60, "503s without a quorum", interval=0.05)
        wait_until(lambda: len(late_answers(time.monotonic())) >= 4, 60,
                   "answers to requests sent once the produce timeout passed")
        # no quorum, no commits: the last samples are the baselines (asking would wait for the timeouts)
        restart = mark("restart of both nodes", [first, second], ask=False)
        answers = late_answers(restart.at)
        rep.late_answers, rep.late_ok = len(answers), sum(1 for s in answers if 200 <= s < 300)
        cluster.start()
        rep.restart_seconds = time.monotonic() - restart.at
        kill2.longest_gap = traffic.longest_gap_without_ok(kill2.at, restart.at)
        log(f"nodes {first} and {second} started again in {rep.restart_seconds:.1f} s")
        wait_recovered(restart, "every stage working again after the restart")
        restart.longest_gap = traffic.longest_gap_without_ok(restart.at, time.monotonic())
        wait_until(lambda: traffic.sent >= events, max(120.0, 3 * events / rate), f"{events} events sent")
        completed = True
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        try:
            if traffic is not None:
                traffic.stop()
            if p.collector is not None and p.collector.proc is not None and p.collector.proc.poll() is None:
                rep.sink_unavailable = metric_sum(collector_metrics(p.collector),
                                                  "snowmelt_collector_sink_unavailable_total")
            if not interrupted and any(not node.running for node in cluster.nodes):  # failed while nodes were down
                cluster.start()
            drained = time.monotonic()
            if completed:
                enriched, rep.bad_rows = p.settle(timeout=300)
                rep.drain_seconds = time.monotonic() - drained
                p.stop()
        finally:
            monitor.stop()
            p.close()

    for moment in rep.moments:
        moment_ok = traffic.first_ok_sent_after(moment.at)
        moment.collector = None if moment_ok is None else moment_ok - moment.at
        moment.commits = {stage: monitor.first_advance(group, moment.at, moment.baselines[stage])
                          for stage, (group, _) in stages.items()}
    rep.rewinds = {stage: monitor.rewinds(group) for stage, (group, _) in stages.items() if monitor.rewinds(group)[0]}
    acknowledged, refused = set(traffic.accepted), set(traffic.refused)
    rep.sent, rep.acknowledged, rep.refused = traffic.sent, len(acknowledged), len(refused)
    rep.failed, rep.failed_requests = sum(len(ids) for _, ids in traffic.failed), len(traffic.failed)
    rep.statuses = dict(traffic.statuses)
    rep.enriched_rows, rep.enriched_distinct = len(enriched), len(set(enriched))
    rep.lost_enriched = len(acknowledged - set(enriched))
    rep.refused_but_delivered = len(refused & set(enriched))
    loaded = {"S3": s3_enriched_event_ids(s3.client(), bucket)}
    if chdb_path:
        loaded["ClickHouse (chdb)"] = chdb_event_ids(chdb_path)
    rep.traffic, rep.enriched_ids, rep.loaded_ids = traffic, enriched, loaded
    for name, ids in loaded.items():
        rep.stores[name] = {"rows": len(ids), "distinct": len(set(ids)), "lost": len(acknowledged - set(ids))}
    rep.wall_seconds = time.monotonic() - t0
    return rep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_failover", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000, help="events to send at least (default 4000)")
    parser.add_argument("--rate", type=float, default=150.0, help="events per second (default 150)")
    parser.add_argument("--produce-timeout", type=float, default=3.0, help="the collector's produce timeout (s)")
    parser.add_argument("--no-clickhouse", action="store_true", help="no ClickHouse loader (chdb)")
    parser.add_argument("--guarantee", choices=["at_least_once", "exactly_once"], default="at_least_once",
                        help="enrich.processing_guarantee; exactly_once also turns on load.exactly_once")
    args = parser.parse_args(argv)

    from tests.services.kafka import KafkaCluster
    from tests.services.s3 import SeaweedFS

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    t0 = time.monotonic()
    cluster, s3 = KafkaCluster(3), SeaweedFS()
    work = tempfile.mkdtemp(prefix="snowmelt-failover-")
    try:
        cluster.start()
        print(f"kafka cluster: {cluster.describe()} (ready in {cluster.start_seconds:.1f} s)", flush=True)
        s3.start()
        print(f"s3 store: {s3.describe()} (ready in {s3.start_seconds:.1f} s)", flush=True)
        os.environ.update(s3.credentials_env())
        os.environ.pop("AWS_PROFILE", None)
        bucket = s3.create_bucket(f"snowmelt-failover-{uuid.uuid4().hex[:8]}")
        report = run_failover(cluster, s3, bucket, events=args.events, rate=args.rate,
                              produce_timeout=args.produce_timeout,
                              chdb_path=None if args.no_clickhouse else os.path.join(work, "ch"),
                              log=lambda line: print(f"[{time.monotonic() - t0:6.1f} s] {line}", flush=True),
                              guarantee=args.guarantee)
        print(f"\n--- cluster failover: {args.events} events at {args.rate:g}/s, produce timeout "
              f"{args.produce_timeout:g} s, {args.guarantee} ---")
        print(report.format())
        print(f"total wall time including the cluster's and S3's start {time.monotonic() - t0:.1f} s")
        lost = report.lost_enriched + sum(store["lost"] for store in report.stores.values())
        return 1 if lost or report.late_ok else 0
    except KeyboardInterrupt:
        print("# interrupted: stopping", file=sys.stderr)
        return 130
    finally:
        cluster.close()
        s3.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
