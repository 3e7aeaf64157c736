"""Machine instructions of one pass of a child process, counted by Valgrind's callgrind: a measure noise cannot move.

The parent (:func:`count`) runs the child under callgrind with counting off; the child does its set-up and
warm-up, then marks the pass to count (:func:`counted_pass`); the parent switches counting on
(``callgrind_control -i on``) just for that pass, and off before the child goes on, and reads the total
from callgrind's log.  The child puts what it wants to report (numbers of events, rows) in the dict the
pass yields; the parent gets it back.  Callgrind runs everything about 50 times slower: keep the counted
pass small.  Needs ``valgrind`` (``apt-get install valgrind``).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["available", "count", "counted_pass"]


def available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


@contextlib.contextmanager
def counted_pass(flag: str) -> Iterator[dict]:
    """In the child: the block is the pass counted; what it puts in the yielded dict goes to the parent."""
    Path(flag + ".ready").write_text("")
    while not Path(flag + ".go").exists():
        time.sleep(0.02)
    report: dict = {}
    yield report
    Path(flag + ".done").write_text(json.dumps(report))
    while not Path(flag + ".end").exists():  # nothing after the pass is counted: not even this process's exit
        time.sleep(0.02)


def _wait_for(path: Path, process: subprocess.Popen, deadline: float, timeout: float) -> None:
    while not path.exists():
        if process.poll() is not None:
            raise SystemExit(f"the process under callgrind ended ({process.returncode}) before {path.name}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the process under callgrind did not reach {path.name} in {timeout:.0f} s")
        time.sleep(0.1)


def count(command: Callable[[str], list[str]], *, timeout: float, keep: Path | None = None,
          env: dict[str, str] | None = None) -> tuple[int, dict]:
    """(instructions of the child's counted pass, what the pass reported); ``command(flag)`` is the child's
    command line, which hands ``flag`` to :func:`counted_pass`.  Its callgrind output is copied to ``keep``
    when given (``callgrind_annotate`` reads it)."""
    with tempfile.TemporaryDirectory() as tmp:
        flag = str(Path(tmp) / "flag")
        log = Path(tmp) / "valgrind.log"
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={tmp}/callgrind.out",
             f"--log-file={log}", *command(flag)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env if env is not None else os.environ)
        try:
            deadline = time.monotonic() + timeout
            _wait_for(Path(flag + ".ready"), process, deadline, timeout)
            subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], check=True, capture_output=True)
            Path(flag + ".go").write_text("")
            _wait_for(Path(flag + ".done"), process, deadline, timeout)
            subprocess.run(["callgrind_control", "-i", "off", str(process.pid)], check=True, capture_output=True)
            Path(flag + ".end").write_text("")
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / "callgrind.out", keep)
        match = re.search(r"Collected : (\d+)", log.read_text())
        if process.returncode or match is None:
            raise SystemExit(f"callgrind on {' '.join(command(flag))} failed ({process.returncode}):\n"
                             f"{process.stderr.read()[-2000:]}{log.read_text()[-2000:]}")
        return int(match.group(1)), json.loads(Path(flag + ".done").read_text())
