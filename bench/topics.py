"""Filling a benchmark's input topic before its timed run."""
from __future__ import annotations

from typing import Callable, Iterable


def produce_one(producer, topic: str, value: bytes, key: bytes | None = None) -> None:
    """``producer.produce(topic, value, key)``, waiting for room while the producer's queue is full."""
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:  # librdkafka's queue is full: let acknowledgements drain it
            producer.poll(0.05)


def produce_all(producer, topic: str, values: Iterable[bytes], key: Callable[[], bytes] | None = None,
                timeout: float = 120) -> None:
    """Write every value to ``topic`` through a confluent-kafka ``producer`` and wait until the broker has
    acknowledged them all.  When the producer's queue is full (``queue.buffering.max.messages``, 100,000 by
    default) it is let drain rather than refused; ``key`` makes each record's key.  ``RuntimeError`` when
    records are still unacknowledged after ``timeout`` seconds."""
    for value in values:
        produce_one(producer, topic, value, key() if key else None)
    left = producer.flush(timeout)
    if left:
        raise RuntimeError(f"{left} records to {topic} not acknowledged within {timeout:g} s")
