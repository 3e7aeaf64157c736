"""Timing in tests: a cost bound is checked on the fastest of a few runs.

One run can be descheduled for tens of milliseconds on a loaded machine; the
fastest of several is the cost of the code, which is what a bound asserts.
"""
from __future__ import annotations

import time
from typing import Any, Callable


def fastest(fn: Callable[[], Any], runs: int = 5) -> tuple[float, Any]:
    """``(seconds of the fastest of runs calls of fn(), its result)``."""
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result
