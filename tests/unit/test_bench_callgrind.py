"""bench.callgrind counts the instructions of a child's marked pass only, under Valgrind's callgrind."""
import sys

import pytest

from bench import callgrind

CHILD = """
import sys
sys.path.insert(0, {root!r})
from bench.callgrind import counted_pass
total = 0
for i in range(1_000_000):  # before the pass, about a billion instructions: not counted
    total += i
with counted_pass(sys.argv[1]) as report:
    total = 0
    for i in range(int(sys.argv[2])):
        total += i
    report["total"] = total
"""

pytestmark = pytest.mark.skipif(not callgrind.available(), reason="valgrind is not installed")


def _count(loops: int) -> tuple[int, dict]:
    from bench.stage_instructions import ROOT

    source = CHILD.format(root=str(ROOT))
    return callgrind.count(lambda flag: [sys.executable, "-c", source, flag, str(loops)], timeout=300)


def test_only_the_marked_pass_is_counted_and_its_report_comes_back():
    small, report_small = _count(10_000)
    large, report_large = _count(110_000)
    assert report_small == {"total": sum(range(10_000))} and report_large == {"total": sum(range(110_000))}
    # 100,000 more iterations of the same loop, and nothing of the start-up or the million iterations before
    per_loop = (large - small) / 100_000
    assert 50 < per_loop < 5_000
    assert small < 10_000 * per_loop + 50_000_000 < 1_000_000 * per_loop


def test_a_child_that_dies_before_its_pass_is_an_error_not_a_hang():
    with pytest.raises(SystemExit, match="ended"):
        callgrind.count(lambda flag: [sys.executable, "-c", "raise SystemExit(3)"], timeout=120)
