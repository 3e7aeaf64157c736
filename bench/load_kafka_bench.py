"""The loaders from the enriched topic: ``snowmelt load clickhouse|s3`` against the store's raw write rate.

    python -m bench.load_kafka_bench [--records 4000] [--batch-size 20000] [--stores clickhouse,s3] [--profile]

Enriched lines are made once by the enrichment stage from bench/corpus.py
traffic (``bench.bench_load_clickhouse.build_lines``) and written to a fresh
one-partition enriched topic.  Then, for each store, in the same run:

- raw: the store's own write rate for the same rows, already encoded:
  pre-built Arrow tables inserted into a chdb table with the ``events`` DDL;
  pre-built gzip TSV objects uploaded to SeaweedFS;
- loader: a real ``snowmelt load`` process (batch ``--batch-size``), timed from
  ready to every offset committed; its CPU time (``/proc``) gives events per
  CPU-second, so a store that uses several threads (chdb) is not flattered.

Correctness is printed beside each timing: rows in ClickHouse, lines in S3.
``--profile`` keeps a py-spy flame graph of each loader in
``bench/results/flame-load-<store>.svg``.
Uses ``KAFKA_BOOTSTRAP_SERVERS`` / ``S3_ENDPOINT_URL`` or starts both like the tests do.
"""
from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
import uuid

from confluent_kafka import Producer

from bench.bench_load_clickhouse import build_lines
from bench.profiling import RESULTS, flame
from tests.services.kafka import KafkaTopics, broker_from_env
from tests.services.load import LoadProcess, wait_committed
from tests.services.s3 import s3_from_env


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PROFILE = False


def run_loader(store: str, broker, topics: KafkaTopics, ends: dict, settings: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one loader process from ready to everything committed."""
    group = f"bench-{store}-{uuid.uuid4().hex[:6]}"
    loader = LoadProcess(store, broker.bootstrap_servers, topics.enriched, topics.bad,
                         {f"load.{store}_group_id": group, **settings}).start()
    try:
        cpu0, t0 = cpu_seconds(loader.proc.pid), time.perf_counter()
        with flame(loader.proc.pid, RESULTS / f"flame-load-{store}.svg" if PROFILE else None):
            wait_committed(broker.bootstrap_servers, group, ends, timeout=600, process=loader)
            wall, cpu = time.perf_counter() - t0, cpu_seconds(loader.proc.pid) - cpu0
        assert loader.terminate() == 0, loader.output()
        return wall, cpu
    finally:
        loader.close()


def clickhouse(lines: list[bytes], broker, topics, ends, batch_size: int) -> dict:
    from chdb import session

    from loaders.arrow import enriched_table
    from loaders.clickhouse import ChdbBackend, events_ddl

    batches = [lines[i:i + batch_size] for i in range(0, len(lines), batch_size)]
    tables = [enriched_table(b).table for b in batches]
    raw_path = tempfile.mkdtemp(prefix="bench-ch-raw-")
    backend = ChdbBackend(raw_path)
    backend.command("CREATE DATABASE IF NOT EXISTS snowplow")
    backend.command(events_ddl("snowplow", 0))
    t0 = time.perf_counter()
    for i, table in enumerate(tables):
        backend.insert_arrow("`snowplow`.events", table, {"insert_deduplication_token": f"raw-{i}"})
    raw_wall = time.perf_counter() - t0
    backend.close()

    path = tempfile.mkdtemp(prefix="bench-ch-loader-")
    wall, cpu = run_loader("clickhouse", broker, topics, ends, {
        "clickhouse.backend": "chdb", "clickhouse.chdb_path": path, "load.batch_size": str(batch_size),
        "load.batch_timeout": "1"})
    db = session.Session(path)
    rows = int(db.query("SELECT count() FROM snowplow.events FINAL", "CSV").bytes().strip() or 0)
    db.close()
    return {"store": "clickhouse (chdb)", "raw": len(lines) / raw_wall, "loader": len(lines) / wall,
            "per_cpu": len(lines) / cpu, "correct": rows == len(lines), "stored": rows}


def s3(lines: list[bytes], broker, topics, ends, batch_size: int) -> dict:
    from isal import igzip

    with s3_from_env() as server:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        server.create_bucket(bucket)
        client = server.client()
        bodies = [igzip.compress(b"\n".join(lines[i:i + batch_size]) + b"\n", 1)
                  for i in range(0, len(lines), batch_size)]
        t0 = time.perf_counter()
        for i, body in enumerate(bodies):
            client.put_object(Bucket=bucket, Key=f"raw/{i}.tsv.gz", Body=body)
        raw_wall = time.perf_counter() - t0
        os.environ.update(server.credentials_env())
        wall, cpu = run_loader("s3", broker, topics, ends, {
            "s3.bucket": bucket, "s3.endpoint_url": server.endpoint_url, "s3.path_style": "true",
            "load.batch_size": str(batch_size), "load.batch_timeout": "1"})
        stored = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="snowplow/enriched/"):
            for obj in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                stored += gzip.decompress(body).count(b"\n")
    return {"store": "s3 (SeaweedFS, gzip TSV)", "raw": len(lines) / raw_wall, "loader": len(lines) / wall,
            "per_cpu": len(lines) / cpu, "correct": stored == len(lines), "stored": stored}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=20_000)
    ap.add_argument("--stores", default="clickhouse,s3")
    ap.add_argument("--profile", action="store_true", help="keep py-spy flame graphs of the loaders")
    args = ap.parse_args()
    global PROFILE
    PROFILE = args.profile
    lines = build_lines(args.records)
    with broker_from_env() as broker:
        topics = KafkaTopics(*(f"bench.load.{r}.{uuid.uuid4().hex[:6]}" for r in KafkaTopics._fields))
        broker.create_topics(topics)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 20,
                             "compression.type": "lz4"})
        for line in lines:
            while True:
                try:
                    producer.produce(topics.enriched, line)
                    break
                except BufferError:  # the producer's queue is full: let it drain
                    producer.poll(0.05)
        assert producer.flush(120) == 0
        ends = {topics.enriched: [len(lines)], topics.bad: [0]}
        results = []
        for store in args.stores.split(","):
            run = {"clickhouse": clickhouse, "s3": s3}[store]
            results.append(run(lines, broker, topics, ends, args.batch_size))
    print(f"{len(lines)} enriched events on a one-partition topic, batches of {args.batch_size}")
    print(f"{'store':<28}{'raw write ev/s':>16}{'loader ev/s':>14}{'loader ev/CPU-s':>17}{'ratio':>8}  correct")
    for r in results:
        print(f"{r['store']:<28}{r['raw']:>16,.0f}{r['loader']:>14,.0f}{r['per_cpu']:>17,.0f}"
              f"{r['loader'] / r['raw']:>8.2f}  {r['correct']} ({r['stored']} stored)")


if __name__ == "__main__":
    main()
