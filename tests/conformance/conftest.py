"""Conformance tests: real Snowplow trackers -> ``snowmelt collector`` -> real Kafka.

The Kafka fixtures (``kafka_broker``, ``make_kafka_topics``, ``kafka_topics``)
come from ``tests/conftest.py``.  Every test here is marked ``conformance``.

``collector`` (function) is a ``snowmelt collector`` process writing to this
test's fresh topics; ``make_collector(settings)`` starts one with extra
settings (dotted config keys).
"""
from __future__ import annotations

from pathlib import Path

import pytest


# Plain asserts in the shared helpers report their operands like the tests' own.
pytest.register_assert_rewrite("tests.conformance.helpers")

from tests.services.collector import CollectorProcess

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.conformance)


@pytest.fixture
def make_collector(kafka_broker, kafka_topics):
    """Factory: ``make_collector(settings=None) -> CollectorProcess`` (started; stopped after the test)."""
    started: list[CollectorProcess] = []

    def make(settings: dict | None = None) -> CollectorProcess:
        proc = CollectorProcess(kafka_broker.bootstrap_servers, kafka_topics, settings)
        started.append(proc)
        return proc.start()

    yield make
    for proc in started:
        code = proc.terminate()
        output = proc.output()
        proc.remove_log()
        assert code == 0, f"collector exited with {code}:\n{output}"


@pytest.fixture
def collector(make_collector) -> CollectorProcess:
    return make_collector()
