"""Throughput of one ``snowmelt enrich`` process: raw topic -> enriched topic, events/s.

    python -m bench.enrich_kafka_bench [--events 50000] [--batch-size 500] [--corpus] [--profile]
                                       [--guarantee at_least_once|exactly_once|both] [--cpu N]

Fills a fresh 1-partition raw topic with page-view pixels (one event per raw
record; with ``--corpus``, bench/corpus.py traffic as in bench/bench_enrich.py:
GET page views and POST batches of 10 events with three contexts each, about
5.5 events per raw record), then, in the same run, times three things:

- passthrough: a plain confluent-kafka consume-produce loop with no
  processing (``bench/passthrough.py``), in its own process: what Kafka alone
  allows on this machine (first record consumed to the last acknowledged);
- the worker: ``snowmelt enrich`` (Faust consumer, the stage, librdkafka
  output), from its first enriched record on the topic to the last; with
  ``--guarantee both``, once with ``enrich.processing_guarantee:
  at_least_once`` and once with ``exactly_once`` (its own group and output
  topics, the same raw topic), and the ratio of the two;
- the stage alone: ``Enricher.enrich`` in a loop over the same records, no Kafka.

Beside each wall rate, events per CPU-second: the worker's (its process's CPU
from its first enriched record to its last) and the stage's (this process's
CPU in the loop).  Their ratio is the worker's own cost over the stage's; the
wall rates' ratio also holds what the broker and this script take from the
machine's cores meanwhile.  The worker's CPU in that window is also printed
thread by thread: ``main`` (the event loop: the stage, producing, delivery
reports), the other Python threads under the process's name (Faust's consumer
thread: fetching and decoding), and librdkafka's ``rdk:*`` threads (the output
producer's compression and protocol).

With ``--cpu N`` the worker, the passthrough loop and the stage alone each run
on CPU N only, and the broker and this script's reader on the other CPUs: one
core each, as ``bench.oracle_speed`` runs the two enrichers.  The wall rates'
ratio is then the worker's own against the stage's, with the broker off their
core.

Correctness is printed beside the timing: every event_id present.
``--profile`` keeps a py-spy flame graph of the worker in
``bench/results/flame-enrich-worker.svg``.
Uses ``KAFKA_BOOTSTRAP_SERVERS`` or starts a broker like the tests do.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer

from bench.profiling import RESULTS, CpuSampler, flame, pin
from bench.topics import produce_all
from processor.iglu import Resolver
from processor.stage import Enricher
from tests.integration.test_enrich_kafka import raw_pixel
from tests.services.enrich import EnrichProcess
from tests.services.kafka import KafkaTopics, broker_from_env


def drain(bootstrap: str, topic: str, expected: int,
          timeout: float = 600) -> tuple[int, set, float | None, float | None]:
    """Read ``topic`` until ``expected`` records arrived: (records, distinct keys, when the first and the
    last arrived, ``time.perf_counter()``)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"b-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    keys: set = set()
    count, first, last = 0, None, None
    deadline = time.monotonic() + timeout
    try:
        while count < expected and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, 0.5):
                if msg.error():
                    continue
                first = first or time.perf_counter()
                last = time.perf_counter()
                count += 1
                keys.add(msg.key())
    finally:
        consumer.close()
    return count, keys, first, last


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--corpus", action="store_true", help="realistic tracker traffic instead of bare pixels")
    ap.add_argument("--profile", action="store_true", help="keep a py-spy flame graph of the worker")
    ap.add_argument("--guarantee", choices=["at_least_once", "exactly_once", "both"], default="at_least_once",
                    help="the worker's enrich.processing_guarantee (both: one run of each, same raw topic)")
    ap.add_argument("--cpu", type=int, help="run the worker, the passthrough loop and the stage alone on this CPU "
                                            "only, the broker and the reader on the others")
    args = ap.parse_args()
    cpus = set(os.sched_getaffinity(0))
    if args.cpu is not None and (args.cpu not in cpus or len(cpus) < 2):
        ap.error(f"--cpu {args.cpu}: not one of this process's CPUs {sorted(cpus)}, or no other CPU left")
    others = cpus - {args.cpu} if args.cpu is not None else cpus
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # the stage alone, timed below
    tmp = tempfile.TemporaryDirectory()
    resolver_path = None
    if args.corpus:
        from bench.bench_enrich import build_records, write_registry
        from bench.corpus import write_resolver

        write_registry(Path(tmp.name) / "registry")
        resolver_path = write_resolver(tmp.name, [])
        records, events = build_records(max(1, round(args.events / 5.5)))
        enricher = Enricher(Resolver.from_config(resolver_path.read_text(), base_dir=tmp.name))
    else:
        records = [raw_pixel(str(uuid.uuid4())) for _ in range(args.events)]
        events, enricher = len(records), Enricher()

    # the stage alone takes all the worker's records: a sample of a tenth of a second read 60,000 to 96,000
    # pixels a second from one run to the next on a shared machine
    for raw in records[:1_000]:  # caches warmed, as the worker's are after its first batches
        enricher.enrich(raw)
    t0, cpu0 = time.perf_counter(), time.process_time()
    stage_events = sum(len(enricher.enrich(raw).good) for raw in records)
    stage_rate = stage_events / (time.perf_counter() - t0)
    stage_per_cpu = stage_events / (time.process_time() - cpu0)
    os.sched_setaffinity(0, others)  # the broker and the reader, started from here, inherit it
    loop_prefix = ["taskset", "-c", str(args.cpu)] if args.cpu is not None else []

    with broker_from_env() as broker:
        bootstrap = broker.bootstrap_servers
        topics = KafkaTopics(*(f"bench.{r}.{uuid.uuid4().hex[:6]}" for r in KafkaTopics._fields))
        passed = f"bench.passthrough.{uuid.uuid4().hex[:6]}"
        broker.create_topics([*topics, passed])
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
        produce_all(producer, topics.raw, records)

        # the loop times itself: first record consumed to every produced record acknowledged
        out = subprocess.run([*loop_prefix, sys.executable, "-m", "bench.passthrough", bootstrap, topics.raw,
                              passed, str(len(records))], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise SystemExit(f"the passthrough loop failed ({out.returncode}):\n{out.stderr[-2000:]}")
        moved, seconds = out.stdout.split()
        moved, pass_rate = int(moved), int(moved) / float(seconds)

        guarantees = ["at_least_once", "exactly_once"] if args.guarantee == "both" else [args.guarantee]
        rates, per_cpu, seen_by, threads_by = {}, {}, {}, {}
        try:
            for guarantee in guarantees:
                run = uuid.uuid4().hex[:6]
                out_topics = topics._replace(enriched=f"bench.enriched.{run}", bad=f"bench.bad.{run}")
                broker.create_topics([out_topics.enriched, out_topics.bad])
                group = f"bench-enrich-{run}"
                worker = EnrichProcess(bootstrap, out_topics, {
                    "enrich.batch_size": str(args.batch_size), "enrich.processing_guarantee": guarantee,
                    "enrich.transactional_id": group}, group_id=group,
                    resolver=str(resolver_path) if resolver_path else None).start()
                try:
                    if args.cpu is not None:
                        try:
                            pin(worker.proc.pid, {args.cpu})
                        except ProcessLookupError:
                            raise SystemExit(f"the worker ended as it started:\n{worker.output()}") from None
                    flame_name = (f"flame-enrich-worker{'-corpus' if args.corpus else ''}"
                                  f"{'-eos' if guarantee == 'exactly_once' else ''}.svg")
                    with CpuSampler(worker.proc.pid, threads=True) as cpu, \
                            flame(worker.proc.pid, RESULTS / flame_name if args.profile else None):
                        count, seen_by[guarantee], first, last = drain(bootstrap, out_topics.enriched, events)
                    if first is None or last is None or last <= first:
                        raise SystemExit(f"the worker wrote {count} of {events} events: no rate to measure")
                    rates[guarantee] = (count - 1) / (last - first)
                    per_cpu[guarantee] = (count - 1) / cpu.between(first, last)
                    threads_by[guarantee] = cpu.threads_between(first, last)
                finally:
                    worker.terminate()
                    worker.close()
        finally:
            tmp.cleanup()
    for guarantee in guarantees:
        seen = seen_by[guarantee]
        print(f"raw records {len(records)} carrying {events} events, enriched distinct {len(seen)} "
              f"(all present: {len(seen) == events}), raw records passed through {moved}")
        print(f"worker ({guarantee}): {rates[guarantee]:,.0f} events/s raw->enriched (batch_size {args.batch_size}), "
              f"{per_cpu[guarantee]:,.0f} events per CPU-second")
        threads = threads_by[guarantee]
        print(f"worker ({guarantee}) CPU-seconds by thread, first to last enriched record: "
              + ", ".join(f"{name} {seconds:.2f}" for name, seconds in threads.items()))
    if len(guarantees) == 2:
        print(f"exactly_once / at_least_once: {rates['exactly_once'] / rates['at_least_once']:.2f}")
    rate = rates[guarantees[0]]
    print(f"plain confluent-kafka consume-produce loop, no processing: {pass_rate:,.0f} records/s "
          f"({pass_rate * events / len(records):,.0f} events/s); worker / loop {rate / (pass_rate * events / len(records)):.2f}")
    print(f"stage alone, no Kafka: {stage_rate:,.0f} events/s, {stage_per_cpu:,.0f} events per CPU-second; "
          f"worker / stage {rate / stage_rate:.2f} by the wall, {per_cpu[guarantees[0]] / stage_per_cpu:.2f} "
          f"per CPU-second")


if __name__ == "__main__":
    main()
