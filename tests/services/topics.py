"""Reading a topic back in tests: every record, with a deadline."""
from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaException, TopicPartition


def consume(bootstrap_servers: str, topic: str, *, min_count: int = 1, timeout: float = 30.0,
            idle: float = 1.0) -> list:
    """All records of ``topic`` from the beginning, as confluent-kafka Messages.

    Returns once at least ``min_count`` arrived and the topic stayed quiet for
    ``idle`` seconds; raises TimeoutError if ``min_count`` is not reached in time.
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": f"test-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    records = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                if len(records) >= min_count and time.monotonic() - last >= idle:
                    return records
                continue
            if msg.error():
                if msg.error().retriable() or "UNKNOWN_TOPIC" in msg.error().name():
                    continue
                raise KafkaException(msg.error())
            records.append(msg)
            last = time.monotonic()
    finally:
        consumer.close()
    if len(records) >= min_count:
        return records
    raise TimeoutError(f"{topic}: {len(records)} records after {timeout}s, expected at least {min_count}")


def end_offsets(bootstrap_servers: str, topics: list[str], partitions: int) -> dict[str, list[int]]:
    """The end (high watermark) offset of each of the first ``partitions`` partitions of each topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"ends-{uuid.uuid4().hex[:6]}"})
    try:
        return {topic: [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                        for p in range(partitions)] for topic in topics}
    finally:
        consumer.close()
