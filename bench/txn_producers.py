"""Kafka transactions through the two clients the enrich worker could use, on the same broker in one run.

    python -m bench.txn_producers [--records 100000] [--per-transaction 500] [--size 1500]

Faust's ``processing_guarantee="exactly_once"`` writes an agent's output through
aiokafka's transactional producer (one per partition); ``snowmelt enrich``'s
``exactly_once`` through librdkafka's (confluent-kafka, one per worker).  This
times what differs between the two, the output path: ``--records`` records of
``--size`` bytes in transactions of ``--per-transaction`` records, each
transaction also carrying a consumer group's offsets (``send_offsets_to_transaction``),
committed one after the other, each client on its own topic (librdkafka with
the worker's ``processor.transactions.PRODUCER_SETTINGS``).  Reports records per
second and per CPU-second of this process, and the ratio.  Uses
``KAFKA_BOOTSTRAP_SERVERS`` or starts a broker like the tests do.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from processor.transactions import PRODUCER_SETTINGS, group_metadata


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def librdkafka_run(bootstrap: str, topic: str, group: str, records: int, per_txn: int, value: bytes) -> tuple[float, float]:
    from confluent_kafka import Producer, TopicPartition

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{uuid.uuid4().hex[:6]}",
                         "linger.ms": 5, "compression.type": "lz4", "acks": "all", **PRODUCER_SETTINGS})
    producer.init_transactions(30)
    wall, used = time.perf_counter(), cpu()
    sent = 0
    while sent < records:
        producer.begin_transaction()
        for _ in range(min(per_txn, records - sent)):
            producer.produce(topic, value, b"key")
            producer.poll(0)
            sent += 1
        producer.send_offsets_to_transaction([TopicPartition(f"{topic}.in", 0, sent)], group_metadata(group, -1, ""), 30)
        producer.commit_transaction(30)
    return time.perf_counter() - wall, cpu() - used


async def aiokafka_run(bootstrap: str, topic: str, group: str, records: int, per_txn: int,
                       value: bytes) -> tuple[float, float]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"bench-{uuid.uuid4().hex[:6]}",
                                linger_ms=5, compression_type="lz4", enable_idempotence=True, acks="all")
    await producer.start()
    try:
        wall, used = time.perf_counter(), cpu()
        sent = 0
        while sent < records:
            async with producer.transaction():
                futures = []
                for _ in range(min(per_txn, records - sent)):
                    futures.append(await producer.send(topic, value, key=b"key"))
                    sent += 1
                await asyncio.gather(*futures)
                await producer.send_offsets_to_transaction({TopicPartition(f"{topic}.in", 0): sent}, group)
        return time.perf_counter() - wall, cpu() - used
    finally:
        await producer.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--per-transaction", type=int, default=500)
    ap.add_argument("--size", type=int, default=1500)
    args = ap.parse_args()
    from tests.services.kafka import broker_from_env

    value = (b"x" * 64 + b"\t") * (args.size // 65) + b"y" * (args.size % 65)
    with broker_from_env() as broker:
        run = uuid.uuid4().hex[:6]
        topics = {name: f"bench.txn.{name}.{run}" for name in ("librdkafka", "aiokafka")}
        broker.create_topics([*topics.values(), *(f"{t}.in" for t in topics.values())])
        group = f"bench-txn-{run}"
        results = {
            "librdkafka": librdkafka_run(broker.bootstrap_servers, topics["librdkafka"], group, args.records,
                                         args.per_transaction, value),
            "aiokafka": asyncio.run(aiokafka_run(broker.bootstrap_servers, topics["aiokafka"], group, args.records,
                                                 args.per_transaction, value)),
        }
    print(f"{args.records} records of {len(value)} bytes, {args.per_transaction} per transaction, "
          f"each transaction with a group's offsets")
    for name, (wall, used) in results.items():
        print(f"  {name:<10} {args.records / wall:>10,.0f} records/s  {args.records / used:>10,.0f} records/CPU-s "
              f"({wall:.1f} s, {used:.1f} CPU-s)")
    (lw, lc), (aw, ac) = results["librdkafka"], results["aiokafka"]
    print(f"librdkafka / aiokafka: {aw / lw:.2f}x records/s, {ac / lc:.2f}x records/CPU-s")


if __name__ == "__main__":
    main()
