"""What producing the enrich worker's output costs a record, on a real broker: the event loop's thread and
librdkafka's.

    python -m bench.produce_cost [--records 100000] [--rounds 3] [--compression lz4]

The records are the enriched events the stage makes of the bench corpus (``bench/bench_enrich.py``: tracker
traffic, three contexts an event), keyed by event id, produced to a topic of the session's broker with the
worker's output settings (:func:`processor.worker.output_producer`: idempotent, acks=all, linger 5 ms; lz4
unless ``--compression`` says otherwise). Four ways, in turn in every round:

``send_all``
    :meth:`snowmelt.producer.LoopProducer.send_all`, as the worker writes a batch: a ``produce`` and a delivery
    callback a record (one callable for the batch), the reports served from the event loop until every record
    is acknowledged.
``bare``
    confluent-kafka's ``produce`` with no callback, ``poll`` until librdkafka's queue is empty: what any
    producer of these records pays.
``C callback``, ``Python callback``
    ``bare`` with a delivery callback that does nothing: a callable of C (a dict's ``__setitem__``) and a
    Python function. What a delivery report costs before the callback does any work: confluent-kafka makes a
    ``Message`` of each (its value copied) and calls the callable.

Per record, from the first ``produce`` to the last acknowledgement: the CPU of the thread that produces
(``time.thread_time``) and of every other thread of the process (librdkafka's), medians over the rounds.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from processor.iglu import EmbeddedRepository, Resolver
from processor.stage import Enricher
from processor.worker import OUTPUT_SETTINGS
from snowmelt.producer import ANY_PARTITION, LoopProducer
from tests.services.kafka import broker_from_env

#: the worker's output settings (at least once), with room for all the records in librdkafka's queue
SETTINGS = {**OUTPUT_SETTINGS, "queue.buffering.max.messages": 1_000_000}
#: records a call of send_all: the worker's batches held 321 raw records of 5.5 events (8 December)
BATCH = 1_750


def enriched_records(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` (key, value) pairs: the corpus's enriched events, repeated."""
    from bench.bench_enrich import build_records, write_registry

    with tempfile.TemporaryDirectory() as tmp:
        write_registry(Path(tmp))
        enricher = Enricher(Resolver([EmbeddedRepository("bench", tmp)], include_builtin=True))
        raw, _ = build_records(2_000)
        lines = []
        for record in raw:
            out = enricher.enrich(record)
            lines.extend((key.encode(), line.encode()) for key, line in zip(out.event_ids, out.good))
    return [lines[i % len(lines)] for i in range(count)]


def timed(run) -> tuple[float, float]:
    """(CPU seconds of this thread, of the process's other threads) that ``run()`` took."""
    thread0, process0 = time.thread_time(), time.process_time()
    run()
    thread = time.thread_time() - thread0
    return thread, time.process_time() - process0 - thread


def do_nothing(err, msg) -> None:
    """A delivery callback of Python that does nothing."""


def bare(settings: dict, topic: str, records, callback=None) -> tuple[float, float]:
    producer = Producer(settings)
    producer.list_topics(topic, timeout=30)  # connected, the topic's leader known: not timed

    def run():
        produce = producer.produce
        for n, (key, value) in enumerate(records):
            if callback is None:
                produce(topic, value, key)
            else:
                produce(topic, value, key, ANY_PARTITION, callback)
            if n % 500 == 0:
                producer.poll(0)
        while len(producer):
            producer.poll(0.001)

    return timed(run)


def send_all(settings: dict, topic: str, records) -> tuple[float, float]:
    loop = asyncio.new_event_loop()
    producer = LoopProducer(settings)
    batches = [[(topic, key, value) for key, value in records[i:i + BATCH]] for i in range(0, len(records), BATCH)]

    async def start():
        producer.start()  # on this loop
        producer.producer.list_topics(topic, timeout=30)

    async def produce():
        acks = [await producer.send_all(batch) for batch in batches]
        await asyncio.gather(*acks)

    try:
        loop.run_until_complete(start())
        used = timed(lambda: loop.run_until_complete(produce()))
        loop.run_until_complete(producer.close(10))
        return used
    finally:
        loop.close()


#: name -> how a round runs it: (settings, topic, records) -> (CPU seconds of the producing thread, of the others)
WAYS = {
    "send_all": send_all,
    "bare": bare,
    "C callback": lambda settings, topic, records: bare(settings, topic, records, {}.__setitem__),
    "Python callback": lambda settings, topic, records: bare(settings, topic, records, do_nothing),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compression", default="lz4", help="the producer's compression.type (the worker's: lz4)")
    args = ap.parse_args()
    records = enriched_records(args.records)
    size = sum(len(value) for _, value in records) / len(records)
    print(f"{len(records):,} enriched events, {size:,.0f} bytes each on average, compression {args.compression}",
          flush=True)
    used: dict[str, list[tuple[float, float]]] = {name: [] for name in WAYS}
    with broker_from_env() as broker:
        topic = f"bench.produce.{uuid.uuid4().hex[:6]}"
        broker.create_topics([topic], partitions=3)
        settings = {**SETTINGS, "bootstrap.servers": broker.bootstrap_servers, "compression.type": args.compression}
        for round_ in range(args.rounds):
            for name, run in WAYS.items():
                thread, others = run(settings, topic, records)
                used[name].append((thread, others))
                print(f"round {round_ + 1} {name:15}: {thread / len(records) * 1e6:5.2f} µs a record on the "
                      f"producing thread, {others / len(records) * 1e6:5.2f} on librdkafka's", flush=True)
    print("medians, µs a record (producing thread + librdkafka's threads):")
    for name, runs in used.items():
        thread = statistics.median(t for t, _ in runs) / len(records) * 1e6
        others = statistics.median(o for _, o in runs) / len(records) * 1e6
        print(f"  {name:15}  {thread:5.2f} + {others:5.2f} = {thread + others:5.2f}")


if __name__ == "__main__":
    sys.exit(main())
