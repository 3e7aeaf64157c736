"""tests/services/load.py: a wait for a group's commits rides out a group coordinator that is not ready yet.

CI once failed on a broker started for one test: the first read of the group's
committed offsets came before the broker's group coordinator was ready, and
``Consumer.committed`` raised NOT_COORDINATOR instead of the wait polling on.
librdkafka raises it without its retriable flag (``KafkaError.retriable()`` is
False), which the first fix relied on: CI failed the same way once more.
"""
from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from tests.services import load


def test_a_retriable_error_is_polled_through_and_a_fatal_one_is_raised(monkeypatch):
    answers = [KafkaException(KafkaError(KafkaError.NOT_COORDINATOR,  # as Consumer.committed raises it: no flag
                                         "Failed to get committed offsets: Broker: Not coordinator")),
               KafkaException(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, "loading")),
               KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure", retriable=True)),
               [3, 0], [5, 4]]

    def committed_offsets(bootstrap, group, topic, partitions):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    monkeypatch.setattr(load, "committed_offsets", committed_offsets)
    monkeypatch.setattr(load.time, "sleep", lambda seconds: None)
    load.wait_committed("b:9092", "g", {"t": [5, 4]}, timeout=30)
    assert answers == []

    answers[:] = [KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED, "denied"))]
    with pytest.raises(KafkaException):
        load.wait_committed("b:9092", "g", {"t": [5, 4]}, timeout=30)
