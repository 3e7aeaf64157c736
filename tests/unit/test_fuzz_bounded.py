"""Every fuzz target of ``tests/fuzz/targets.py`` under atheris for a few seconds.

Each runs in its own process (``atheris.Fuzz`` exits the process when done, and
a crash must not take pytest with it); a crash fails the test with the
traceback and the crashing input in base64, ready for
``tests/unit/test_fuzz_regressions.py``.  Each target runs ``SNOWMELT_FUZZ_SECONDS``
(2 unless set; the whole file about 35 seconds); ``bench/fuzz.py`` runs the
same targets for as long as asked.
"""
import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris); fuzzing skipped")

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("SNOWMELT_FUZZ_SECONDS", "2"))
TARGETS = ["thrift", "querystring", "base64url", "tsv", "params", "url", "adapt", "enrich"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_finds_no_crash(target, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.targets", "--target", target, "--seconds", str(SECONDS),
         "--artifacts", str(tmp_path), "--corpus", str(tmp_path / "corpus")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=75, check=False)
    log = proc.stdout + proc.stderr
    crashes = sorted(p for p in tmp_path.iterdir() if p.is_file())
    inputs = "\n".join(f"{p.name}: base64 {base64.b64encode(p.read_bytes()).decode()}" for p in crashes)
    assert proc.returncode == 0 and not crashes, (
        f"fuzz target {target!r} failed (exit {proc.returncode}):\n{log[-6000:]}\n{inputs}")
    # it really fuzzed: libFuzzer's final stats report thousands of inputs
    runs = [int(line.split(":")[-1]) for line in log.splitlines()
            if line.startswith("stat::number_of_executed_units")]
    assert runs and runs[0] >= 1000, log[-3000:]
