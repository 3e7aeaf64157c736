"""``bench/up_rate.py`` run small, so that it cannot rot: every event it sends is accepted, good and counted, and
the CPU it reports is the serving process's and the stage process's."""
from __future__ import annotations

from bench.up_rate import one_round


def test_up_rate_counts_every_event_good_and_both_processes_cpu():
    result = one_round(events=2_000, closed=8, batch=20, timeout=120, enrichments="standard")
    assert result["events"] == 2_000 and result["refused_requests"] == 0, result
    assert result["seconds"] >= result["send_seconds"] > 0
    assert result["serving_cpu_seconds"] > 0 and result["stage_cpu_seconds"] > 0, result
    assert result["events_per_s"] > 0 and result["events_per_cpu_s"] > 0, result
