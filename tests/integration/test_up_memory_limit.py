"""``up.memory_limit_mb`` against a running ``snowmelt up``: its process and its stage process counted together."""
from __future__ import annotations

import urllib.error

from tests.services.up import UpProcess
from tests.services.wait import wait_until

PIXEL = "/i"


def status(up: UpProcess, marker: str) -> int:
    try:
        return up.send(PIXEL, query=f"?e=pv&tv=js-3.0.0&p=web&eid=00000000-0000-4000-8000-{marker:0>12}")
    except urllib.error.HTTPError as exc:
        return exc.code


def test_over_its_memory_limit_up_answers_503_and_writes_nothing_within_it_it_takes_events(tmp_path):
    """The resident memory of ``up`` and its stage process (read from /proc, ``snowmelt.residency``) is over
    90 % of a 100 MB limit at rest: trackers are answered 503 and nothing is written.  Under a limit it stays
    within, the same request is taken and enriched."""
    low = UpProcess(tmp_path / "low", settings={"up.memory_limit_mb": "100"}).start()
    try:
        assert wait_until(lambda: status(low, "1") == 503, 15, "a 503 over the memory limit")
        assert all(status(low, "2") == 503 for _ in range(5))
        assert not low.enriched_lines()
        assert "is over 90% of up.memory_limit_mb (100)" in low.output(200_000)
    finally:
        assert low.terminate() == 0, low.output()
    high = UpProcess(tmp_path / "high", settings={"up.memory_limit_mb": "8192"}).start()
    try:
        assert status(high, "3") == 200
        wait_until(lambda: any("00000000-0000-4000-8000-000000000003" in line for line in high.enriched_lines()),
                   30, "the event enriched")
        assert "up.memory_limit_mb" not in high.output(200_000)
    finally:
        assert high.terminate() == 0, high.output()
