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


def fastest_of_each(first: Callable[[], Any], second: Callable[[], Any], runs: int = 9) -> tuple[float, float]:
    """The fastest of ``runs`` calls of each, called in turn (first, second, first, ...) so that a machine
    that is busier for a while weighs on both alike: for a bound that compares two costs."""
    best = [float("inf"), float("inf")]
    for _ in range(runs):
        for i, fn in enumerate((first, second)):
            started = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - started)
    return best[0], best[1]
