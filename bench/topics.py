"""Filling a benchmark's input topic before its timed run."""
from __future__ import annotations

from typing import Callable, Iterable


def produce_all(producer, topic: str, values: Iterable[bytes], key: Callable[[], bytes] | None = None,
                timeout: float = 120) -> None:
    """Write every value to ``topic`` through a confluent-kafka ``producer`` and wait until the broker has
    acknowledged them all.  When the producer's queue is full (``queue.buffering.max.messages``, 100,000 by
    default) it is let drain rather than refused; ``key`` makes each record's key.  ``RuntimeError`` when
    records are still unacknowledged after ``timeout`` seconds."""
    for value in values:
        record_key = key() if key else None
        while True:
            try:
                producer.produce(topic, value, record_key)
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(timeout)
    if left:
        raise RuntimeError(f"{left} records to {topic} not acknowledged within {timeout:g} s")
