"""A test run that is killed leaves no service behind: the kernel kills what it started."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.services.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]

# Starts SeaweedFS and the Kafka broker the way the fixtures do, prints their pids, then waits for its stdin
# to close (it is killed first).
_RUN = """
import sys
from tests.services.kafka import KafkaBroker
from tests.services.s3 import SeaweedFS
s3 = SeaweedFS().start()
broker = KafkaBroker().start()
print(s3.proc.pid, broker.pid, flush=True)
sys.stdin.read()
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its reaper is dead too
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_services_die_with_a_test_run_killed_by_sigkill():
    run = subprocess.Popen([sys.executable, "-c", _RUN], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)
    try:
        line = run.stdout.readline()
        assert line, "the services did not start"
        pids = [int(p) for p in line.split()]
        assert all(alive(p) for p in pids)
        run.send_signal(signal.SIGKILL)  # no atexit, no finaliser: only the kernel can clean up
        run.wait(30)
        wait_until(lambda: not any(alive(p) for p in pids), 30, "the services to die with the test run")
    finally:
        if run.poll() is None:
            run.kill()


# A process started from a thread that then ends (as a cluster starts its nodes, or a test restarts one from an
# executor): it must outlive that thread and die with the run.
_RUN_FROM_A_THREAD = """
import subprocess, sys, threading
from tests.services.server import popen
started = []
thread = threading.Thread(target=lambda: started.append(popen(["sleep", "300"], stdin=subprocess.DEVNULL)))
thread.start()
thread.join()
print(started[0].pid, flush=True)
sys.stdin.read()
"""


def test_a_process_started_from_a_thread_outlives_the_thread_and_dies_with_the_run():
    run = subprocess.Popen([sys.executable, "-c", _RUN_FROM_A_THREAD], cwd=ROOT, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    try:
        line = run.stdout.readline()
        assert line, "the child was not started"
        pid = int(line)
        # its thread is gone: the child is not
        assert alive(pid), "the child died with the thread that started it"
        run.send_signal(signal.SIGKILL)
        run.wait(30)
        wait_until(lambda: not alive(pid), 30, "the child to die with the run")
    finally:
        if run.poll() is None:
            run.kill()
