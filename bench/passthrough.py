"""The floor under the enrich worker: a plain confluent-kafka consume-produce loop, no processing.

    python -m bench.passthrough BOOTSTRAP SOURCE_TOPIC DEST_TOPIC COUNT

Consumes ``COUNT`` records from ``SOURCE_TOPIC`` (from the start, a fresh
group) and produces each value unchanged, keyed as it came, to ``DEST_TOPIC``
with the producer settings the worker's output uses (``processor.worker.OUTPUT_SETTINGS``: idempotent, acks=all,
lz4, linger 5 ms), then flushes and exits.  Prints the records moved and the
seconds from the first record consumed to the flush returning.  ``bench/enrich_kafka_bench.py``
runs it as its own process on the same raw topic as the worker, so the
worker's rate can be read against what Kafka alone allows on this machine.
"""
from __future__ import annotations

import sys
import time
import uuid

from confluent_kafka import Consumer, Producer

from bench.topics import produce_one
from processor.worker import OUTPUT_SETTINGS


def run(bootstrap: str, source: str, dest: str, count: int, batch: int = 500,
        producer_settings: dict | None = None) -> tuple[int, float]:
    """(records moved, seconds from the first consumed to everything acknowledged); ``producer_settings`` over
    the worker's output settings."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"passthrough-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bootstrap, **OUTPUT_SETTINGS, **(producer_settings or {})})
    consumer.subscribe([source])
    moved, started = 0, None
    try:
        while moved < count:
            for msg in consumer.consume(batch, 1.0):
                if msg.error():
                    continue
                started = started or time.perf_counter()
                produce_one(producer, dest, msg.value(), msg.key())
                moved += 1
            producer.poll(0)
        producer.flush(120)
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    return moved, seconds


if __name__ == "__main__":
    bootstrap, source, dest, count = sys.argv[1:5]
    moved, seconds = run(bootstrap, source, dest, int(count))
    print(moved, seconds)
