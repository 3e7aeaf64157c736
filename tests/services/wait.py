"""Polling with a deadline, and reading Prometheus metrics, for the integration tests."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, *, interval: float = 0.1,
               done: Callable[[Any], bool] = bool) -> Any:
    """Call ``predicate`` every ``interval`` seconds until ``done(value)``; return that value.

    ``AssertionError("timed out waiting for WHAT")`` once ``timeout`` seconds have
    passed.  By default a truthy value is done.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def metric(text: str, name: str) -> float:
    """The value of the unlabelled sample ``name`` in Prometheus text, 0.0 when absent."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
