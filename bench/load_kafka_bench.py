"""The loaders from the enriched topic: ``snowmelt load clickhouse|s3`` against the store's raw write rate.

    python -m bench.load_kafka_bench [--records 4000] [--batch-size 20000] [--stores clickhouse,s3] [--profile [gil]]
                                     [--exactly-once on|off|both] [--rounds 1]

Enriched lines are made once by the enrichment stage from bench/corpus.py
traffic (``bench.bench_load_clickhouse.build_lines``) and written to a fresh
one-partition enriched topic.  Then, for each store, in the same run:

- raw: the store's own write rate for the same rows, already encoded:
  pre-built Arrow tables inserted into a chdb table with the ``events`` DDL
  (and, on a second line, into the table the loader ends up with: the same
  DDL plus a wide column per schema of the rows, which ClickHouse fills from
  the JSON columns on every insert, a third more of chdb's CPU time);
  pre-built gzip TSV objects uploaded to SeaweedFS;
- loader: a real ``snowmelt load`` process (batch ``--batch-size``), timed from
  ready to every offset committed; its CPU time (``/proc``) gives events per
  CPU-second, so a store that uses several threads (chdb) is not flattered.
  Its steady rate leaves out the start (joining the group, the first fetch and
  batch) and the end (a last partial batch waits ``load.batch_timeout``): the
  records it wrote from its first batch to its last, over that time.  A record
  count that is a multiple of the batch size has no partial batch.

Correctness is printed beside each timing: rows in ClickHouse, lines in S3; so is
the loader's peak resident memory (``VmHWM``).

A last table shows what the whole machine did (``/proc/stat``: every process,
the store's and the broker's included) during the raw write and during the
loader's steady part: the cores busy, the CPU-milliseconds per 1,000 events,
and the bound: the steady rate the loader would reach with every core busy at
that CPU per event, and that rate over the raw one.  When the loader's part
already keeps the cores busy, doing its work in another order (more threads,
more overlap) cannot raise its rate; only less CPU per event can.  Beside it,
the rate at which a plain consumer with the loaders' fetch settings
(``loaders.runner.FETCH_SETTINGS``) reads the same topic, once librdkafka
has its first records, with nothing else to do: no loader reads faster than
that for long (its steady rate can, for a while, from what librdkafka fetched
ahead while the first batch was cut).

``--exactly-once`` sets ``load.exactly_once`` (on: a write intent committed
before every batch, one more synchronous commit each).  ``both`` runs each
store's loader without then with it, ``--rounds`` times in turn, and prints
the batches per second of each (best round; counted from the first batch
committed to the last, so the start-up and group join are left out), the
mean time per batch from the loader's ``snowmelt_load_batch_latency_seconds``
(intent commit, write, commit) and the ratio on/off.  Small batches (``--batch-size 200``) show the per-batch cost
of the extra commit at its largest.
``--profile`` keeps a py-spy flame graph of each loader in
``bench/results/flame-load-<store>.svg``; ``--profile gil`` one of the threads
holding the interpreter's lock, each thread apart, in ``flame-load-<store>-gil.svg``.
Uses ``KAFKA_BOOTSTRAP_SERVERS`` / ``S3_ENDPOINT_URL`` or starts both like the tests do.
"""
from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from bench.bench_load_clickhouse import build_lines
from bench.profiling import RESULTS, flame, machine_busy_seconds, peak_rss_mb, process_cpu
from bench.topics import produce_all
from loaders.runner import CONSUME_MAX, FETCH_SETTINGS
from tests.services.kafka import KafkaTopics, broker_from_env
from tests.services.load import LoadProcess, wait_committed
from tests.services.s3 import s3_from_env
from tests.services.wait import wait_until


PROFILE: str | None = None  # cpu, gil
MODES = ("on",)
ROUNDS = 1


def metric_total(text: str, name: str) -> float:
    """The sum of the samples ``name`` (any labels) in Prometheus text."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def written(loader: LoadProcess) -> tuple[int, int]:
    """(``snowmelt_load_batches_total``, ``snowmelt_load_records_total``) of a running loader."""
    text = loader.metrics()
    return (int(metric_total(text, "snowmelt_load_batches_total")),
            int(metric_total(text, "snowmelt_load_records_total")))


class BatchClock(threading.Thread):
    """Polls a loader's batch and record counts every 50 ms: when the first batch was counted and when the
    count last changed (the end of a run, to 50 ms, where the committed offsets are polled far more slowly;
    polling more often takes the loader's time for its /metrics)."""

    def __init__(self, loader: LoadProcess):
        super().__init__(daemon=True)
        self.loader, self.stopped = loader, threading.Event()
        self.first = self.last = None  # (time, batches, records, the machine's busy CPU-seconds)

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            try:
                count, records = written(self.loader)
            except OSError:  # the loader's /metrics busy: the next poll counts
                continue
            if count and (self.last is None or count != self.last[1]):
                self.last = (time.perf_counter(), count, records, machine_busy_seconds())
                if self.first is None:
                    self.first = self.last


def warm_group_coordinator(bootstrap_servers: str, topic: str) -> None:
    """Join and leave a throwaway group: a fresh broker's first group join waits ~3 s for its offsets topic,
    which would otherwise be counted in the first loader's run."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"bench-warm-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
    assigned = threading.Event()
    consumer.subscribe([topic], on_assign=lambda _c, _p: assigned.set())
    deadline = time.monotonic() + 60
    while not assigned.is_set() and time.monotonic() < deadline:
        consumer.poll(0.05)
    consumer.close()


def run_loader(store: str, broker, topics: KafkaTopics, ends: dict, settings: dict) -> dict:
    """One loader process from ready to everything committed: ``wall`` and ``cpu`` seconds, ``batches``
    written, and ``batch_rate``, batches per second from the first one written to the end."""
    group = f"bench-{store}-{uuid.uuid4().hex[:6]}"
    loader = LoadProcess(store, broker.bootstrap_servers, topics.enriched, topics.bad,
                         {f"load.{store}_group_id": group, **settings}).start()
    try:
        cpu0, t0 = process_cpu(loader.proc.pid), time.perf_counter()
        clock = BatchClock(loader)
        clock.start()
        gil = PROFILE == "gil"
        with flame(loader.proc.pid, RESULTS / f"flame-load-{store}{'-gil' if gil else ''}.svg" if PROFILE else None,
                   rate=499 if gil else 97, gil=gil):
            while True:
                try:
                    wait_committed(broker.bootstrap_servers, group, ends, timeout=600, process=loader)
                    break
                except KafkaException as exc:  # e.g. NOT_COORDINATOR while the group's coordinator loads
                    print(f"reading the committed offsets: {exc}; again")
            wall, cpu = time.perf_counter() - t0, process_cpu(loader.proc.pid) - cpu0
        wait_until(lambda: written(loader)[0] == clock.last[1] and clock.last[1], 10, "the batch clock")
        clock.stopped.set()
        clock.join()
        text = loader.metrics()
        peak = peak_rss_mb(loader.proc.pid)
        batches = int(metric_total(text, "snowmelt_load_batches_total"))
        latency = (metric_total(text, "snowmelt_load_batch_latency_seconds_sum")
                   / max(metric_total(text, "snowmelt_load_batch_latency_seconds_count"), 1))
        assert loader.terminate() == 0, loader.output()
        (t_first, first, records_first, busy_first), (t_last, last, records_last, busy_last) = clock.first, clock.last
        span = max(t_last - t_first, 1e-9)
        return {"wall": wall, "cpu": cpu, "batches": batches, "latency": latency, "peak_rss_mb": peak,
                "batch_rate": (last - first) / span, "steady": (records_last - records_first) / span,
                "machine": machine_use(busy_last - busy_first, span, records_last - records_first)}
    finally:
        loader.close()


def run_modes(store: str, broker, topics: KafkaTopics, ends: dict, settings, stored) -> tuple[dict, list[int]]:
    """The loader in each ``load.exactly_once`` mode of ``MODES``, ``ROUNDS`` times in turn.

    ``settings(mode, round)`` gives each run its config (its own folder or prefix), ``stored(that config)``
    counts the rows the run stored.  Returns (mode -> its run of the highest batch rate, the rows each run
    stored).
    """
    best: dict[str, dict] = {}
    counts = []
    for n in range(ROUNDS):
        for mode in MODES:
            values = {**settings(mode, n), "load.exactly_once": mode == "on"}
            run = run_loader(store, broker, topics, ends, values)
            counts.append(stored(values))
            if mode not in best or run["batch_rate"] > best[mode]["batch_rate"]:
                best[mode] = run
    return best, counts


def kafka_read_rate(bootstrap_servers: str, topic: str, records: int, poll_timeout: float = 1.0) -> float:
    """Records per second a plain consumer with the loaders' fetch settings reads ``topic`` at (its ``records``
    from the start), from the first records returned to the last: Kafka's own ceiling for a loader."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"bench-read-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, **FETCH_SETTINGS})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        read, first, deadline = 0, None, time.monotonic() + 600
        while read < records:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {read} of {records} records of {topic} in 600 s")
            # no more than are left: consume() waits its whole timeout for a count it cannot fill
            messages = consumer.consume(min(CONSUME_MAX, records - read), poll_timeout)
            for message in messages:
                message.value()
            if messages and first is None:
                first, read_first = time.perf_counter(), len(messages)
            read += len(messages)
        return (read - read_first) / max(time.perf_counter() - first, 1e-9)
    finally:
        consumer.close()


def machine_use(busy: float, wall: float, events: int) -> dict:
    """The machine's busy ``cores`` over ``wall`` seconds and its CPU-milliseconds per 1,000 events."""
    return {"cores": busy / max(wall, 1e-9), "ms_per_1k": 1e6 * busy / max(events, 1)}


class MachineClock:
    """The wall and the machine's busy CPU-seconds from ``start()`` to ``stop()``."""

    def start(self) -> "MachineClock":
        self.t0, self.busy0 = time.perf_counter(), machine_busy_seconds()
        return self

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.t0, machine_busy_seconds() - self.busy0


def summary(store: str, lines: list[bytes], raw: tuple[float, float], runs: dict, counts: list[int],
            raw_same_table: float | None = None) -> dict:
    """A store's line of the table: its loader's run with ``load.exactly_once`` on (off when only off ran);
    correct when every run stored every event once.  ``raw``: the raw write's wall and machine CPU seconds."""
    run = runs.get("on") or runs["off"]
    raw_wall, raw_busy = raw
    return {"store": store, "raw": len(lines) / raw_wall, "raw_same_table": raw_same_table,
            "raw_machine": machine_use(raw_busy, raw_wall, len(lines)), "machine": run["machine"],
            "loader": len(lines) / run["wall"], "steady": run["steady"], "per_cpu": len(lines) / run["cpu"],
            "peak_rss_mb": run["peak_rss_mb"], "correct": all(c == len(lines) for c in counts),
            "stored": "/".join(map(str, counts)), "runs": runs}


def clickhouse(lines: list[bytes], broker, topics, ends, batch_size: int) -> dict:
    from chdb import session

    from loaders.arrow import enriched_table
    from loaders.clickhouse import ChdbBackend, batch_schemas, events_ddl, wide_column

    batches = [lines[i:i + batch_size] for i in range(0, len(lines), batch_size)]
    tables = [enriched_table(b).table for b in batches]
    raw_path = tempfile.mkdtemp(prefix="bench-ch-raw-")
    backend = ChdbBackend(raw_path)
    raw_walls = {}  # db -> (wall, the machine's busy CPU-seconds)
    for db, wide in (("plain", False), ("wide", True)):
        backend.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        backend.command(events_ddl(db, 0))
        # "wide": the table the loader ends up with, a column per schema of the batch that ClickHouse fills
        # from the JSON columns on insert; "plain": the atomic columns alone
        for kind, schema in sorted({pair for table in tables for pair in batch_schemas(table)}) if wide else ():
            backend.command(f"ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS {wide_column(kind, schema)[1]}")
        clock = MachineClock().start()
        for i, table in enumerate(tables):
            backend.insert_arrow(f"{db}.events", table, {"insert_deduplication_token": f"raw-{i}"})
        raw_walls[db] = clock.stop()
    backend.close()

    def settings(mode: str, n: int) -> dict:
        return {"clickhouse.backend": "chdb", "clickhouse.chdb_path": tempfile.mkdtemp(prefix=f"bench-ch-{mode}-{n}-"),
                "load.batch_size": str(batch_size), "load.batch_timeout": "1"}

    def stored(values: dict) -> int:
        db = session.Session(values["clickhouse.chdb_path"])
        try:
            return int(db.query("SELECT count() FROM snowplow.events FINAL", "CSV").bytes().strip() or 0)
        finally:
            db.close()

    runs, counts = run_modes("clickhouse", broker, topics, ends, settings, stored)
    return summary("clickhouse (chdb)", lines, raw_walls["plain"], runs, counts,
                   raw_same_table=len(lines) / raw_walls["wide"][0])


def s3(lines: list[bytes], broker, topics, ends, batch_size: int) -> dict:
    from isal import igzip

    with s3_from_env() as server:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        server.create_bucket(bucket)
        client = server.client()
        bodies = [igzip.compress(b"\n".join(lines[i:i + batch_size]) + b"\n", 1)
                  for i in range(0, len(lines), batch_size)]
        clock = MachineClock().start()
        for i, body in enumerate(bodies):
            client.put_object(Bucket=bucket, Key=f"raw/{i}.tsv.gz", Body=body)
        raw = clock.stop()
        os.environ.update(server.credentials_env())

        def settings(mode: str, n: int) -> dict:  # one prefix per run: each run's objects are counted apart
            return {"s3.bucket": bucket, "s3.endpoint_url": server.endpoint_url, "s3.path_style": "true",
                    "s3.prefix": f"loader-{mode}-{n}", "load.batch_size": str(batch_size),
                    "load.batch_timeout": "1"}

        def stored(values: dict) -> int:
            count = 0
            for page in client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=values["s3.prefix"] + "/enriched/"):
                for obj in page.get("Contents", []):
                    body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                    count += gzip.decompress(body).count(b"\n")
            return count

        runs, counts = run_modes("s3", broker, topics, ends, settings, stored)
    return summary("s3 (SeaweedFS, gzip TSV)", lines, raw, runs, counts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=20_000)
    ap.add_argument("--stores", default="clickhouse,s3")
    ap.add_argument("--profile", nargs="?", const="cpu", choices=("cpu", "gil"),
                    help="keep py-spy flame graphs of the loaders (gil: of the threads holding the interpreter)")
    ap.add_argument("--exactly-once", choices=("on", "off", "both"), default="on",
                    help="load.exactly_once of the loaders; both: each store without then with, and the ratio")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each mode, in turn (the best is kept)")
    args = ap.parse_args()
    global PROFILE, MODES, ROUNDS
    PROFILE = args.profile
    MODES = ("off", "on") if args.exactly_once == "both" else (args.exactly_once,)
    ROUNDS = max(1, args.rounds)
    lines = build_lines(args.records)
    with broker_from_env() as broker:
        topics = KafkaTopics(*(f"bench.load.{r}.{uuid.uuid4().hex[:6]}" for r in KafkaTopics._fields))
        broker.create_topics(topics)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 20,
                             "compression.type": "lz4"})
        produce_all(producer, topics.enriched, lines)
        ends = {topics.enriched: [len(lines)], topics.bad: [0]}
        warm_group_coordinator(broker.bootstrap_servers, topics.bad)
        read_rate = kafka_read_rate(broker.bootstrap_servers, topics.enriched, len(lines))
        results = []
        for store in args.stores.split(","):
            run = {"clickhouse": clickhouse, "s3": s3}[store]
            results.append(run(lines, broker, topics, ends, args.batch_size))
    print(f"{len(lines)} enriched events on a one-partition topic, batches of {args.batch_size}")
    print("loader ev/s: the whole run, from the process ready (before it joins the group) to the last offset "
          "committed;\nsteady ev/s: the records written from its first batch to its last, over that time")
    print(f"{'store':<28}{'raw write ev/s':>16}{'loader ev/s':>14}{'ratio':>7}{'steady ev/s':>13}{'ratio':>7}"
          f"{'loader ev/CPU-s':>17}{'peak RSS MB':>13}  correct")
    for r in results:
        print(f"{r['store']:<28}{r['raw']:>16,.0f}{r['loader']:>14,.0f}{r['loader'] / r['raw']:>7.2f}"
              f"{r['steady']:>13,.0f}{r['steady'] / r['raw']:>7.2f}{r['per_cpu']:>17,.0f}"
              f"{r['peak_rss_mb'] or 0:>13,.0f}"
              f"  {r['correct']} ({r['stored']} stored)")
        if r["raw_same_table"]:
            same = r["raw_same_table"]
            print(f"{'  raw into the same table':<28}{same:>16,.0f}{'':>14}{r['loader'] / same:>7.2f}{'':>13}"
                  f"{r['steady'] / same:>7.2f}   (with the loader's wide columns, filled by ClickHouse on insert)")
    print(f"\nload.exactly_once (best of {ROUNDS} round(s) each; batches/s from the first batch to the last)")
    print(f"{'store':<28}{'mode':>6}{'batches':>9}{'batches/s':>11}{'ms/batch':>10}{'loader ev/s':>14}"
          f"{'ratio on/off':>14}")
    for r in results:
        runs = r["runs"]
        for mode, run in runs.items():
            ratio = (f"{runs['on']['batch_rate'] / runs['off']['batch_rate']:>14.2f}"
                     if mode == "on" and "off" in runs else "")
            print(f"{r['store']:<28}{mode:>6}{run['batches']:>9}{run['batch_rate']:>11.1f}"
                  f"{run['latency'] * 1000:>10.1f}{len(lines) / run['wall']:>14,.0f}{ratio}")
    cores = os.cpu_count() or 1
    print(f"\nthe machine ({cores} cores; every process: the store's and the broker's too): busy cores and CPU-ms per "
          f"1,000 events;\nbound: the loader's steady rate with all {cores} cores busy at its CPU per event")
    print(f"Kafka read: a plain consumer of the topic with the loaders' fetch settings, {read_rate:,.0f} ev/s")
    print(f"{'store':<28}{'raw: cores':>12}{'ms/1k ev':>10}{'loader: cores':>15}{'ms/1k ev':>10}{'bound ev/s':>12}"
          f"{'bound / raw':>13}{'read / raw':>12}")
    for r in results:
        raw, run = r["raw_machine"], r["machine"]
        bound = cores * 1e6 / max(run["ms_per_1k"], 1e-9)
        print(f"{r['store']:<28}{raw['cores']:>12.2f}{raw['ms_per_1k']:>10.1f}{run['cores']:>15.2f}"
              f"{run['ms_per_1k']:>10.1f}{bound:>12,.0f}{bound / r['raw']:>13.2f}{read_rate / r['raw']:>12.2f}")


if __name__ == "__main__":
    main()
