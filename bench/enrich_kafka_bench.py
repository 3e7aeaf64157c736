"""Throughput of one ``snowmelt enrich`` process: raw topic -> enriched topic, events/s.

    python -m bench.enrich_kafka_bench [--events 50000] [--batch-size 500]

Fills a fresh 1-partition raw topic with page-view pixels (one event per raw
record), then starts the worker and times from its first enriched record to the
last.  The baseline, measured in the same run, is the stage alone
(``Enricher.enrich`` in a loop, no Kafka), so the ratio is what the Kafka loop
costs.  Correctness is printed beside the timing: every event_id present.
Uses ``KAFKA_BOOTSTRAP_SERVERS`` or starts a broker like the tests do.
"""
from __future__ import annotations

import argparse
import time
import uuid

from confluent_kafka import Consumer, Producer

from processor.stage import Enricher
from tests.integration.test_enrich_kafka import raw_pixel
from tests.services.enrich import EnrichProcess
from tests.services.kafka import KafkaTopics, broker_from_env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--batch-size", type=int, default=500)
    args = ap.parse_args()
    records = [raw_pixel(str(uuid.uuid4())) for _ in range(args.events)]

    enricher = Enricher()
    t0 = time.perf_counter()
    for raw in records[:10_000]:
        enricher.enrich(raw)
    stage_rate = min(10_000, len(records)) / (time.perf_counter() - t0)

    with broker_from_env() as broker:
        topics = KafkaTopics(*(f"bench.{r}.{uuid.uuid4().hex[:6]}" for r in KafkaTopics._fields))
        broker.create_topics(topics)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 20,
                             "compression.type": "lz4"})
        for raw in records:
            producer.produce(topics.raw, raw)
        producer.flush(120)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": f"b-{uuid.uuid4()}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([topics.enriched])
        worker = EnrichProcess(broker.bootstrap_servers, topics,
                               {"enrich.batch_size": str(args.batch_size)}).start()
        seen: set[bytes] = set()
        first = last = None
        deadline = time.monotonic() + 600
        try:
            while len(seen) < len(records) and time.monotonic() < deadline:
                for msg in consumer.consume(10_000, 0.5):
                    if msg.error():
                        continue
                    first = first or time.perf_counter()
                    last = time.perf_counter()
                    seen.add(msg.key())
        finally:
            worker.terminate()
            worker.close()
            consumer.close()
    rate = (len(seen) - 1) / (last - first) if first and last and last > first else 0.0
    print(f"events {len(records)}, enriched distinct {len(seen)} (all present: {len(seen) == len(records)})")
    print(f"worker: {rate:,.0f} events/s raw->enriched (batch_size {args.batch_size}); "
          f"stage alone: {stage_rate:,.0f} events/s; ratio {rate / stage_rate:.2f}")


if __name__ == "__main__":
    main()
