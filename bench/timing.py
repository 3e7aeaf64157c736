"""Timing helpers shared by the micro-benchmarks."""
from __future__ import annotations

import time


def ops_per_second(fn, arg, number: int, repeat: int) -> float:
    """Calls per second of ``fn(arg)``: the best of ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn(arg)
        best = min(best, time.perf_counter() - start)
    return number / best
