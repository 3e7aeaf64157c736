"""bench.enrich_kafka_bench's --cpu: every thread of the worker on the one CPU, the threads it starts later too."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.enrich_kafka_bench import pin

# a process with a thread of its own, which starts one more when told to (a line on stdin)
PROCESS = """
import sys, threading, time
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("started", flush=True)
time.sleep(60)
"""


def allowed(pid: int) -> set[str]:
    """Each thread's ``Cpus_allowed_list``."""
    lists = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                lists.add(line.split(":", 1)[1].strip())
    return lists


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin to one of them")
def test_every_thread_of_the_worker_runs_on_the_cpu_it_was_given():
    cpu = max(os.sched_getaffinity(0))
    proc = subprocess.Popen([sys.executable, "-c", PROCESS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert len(allowed(proc.pid)) == 1 and allowed(proc.pid) != {str(cpu)}  # all CPUs, before
        pin(proc.pid, {cpu})
        assert allowed(proc.pid) == {str(cpu)}
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "started"
        assert len(list(Path(f"/proc/{proc.pid}/task").iterdir())) == 3
        assert allowed(proc.pid) == {str(cpu)}  # the thread started after inherits it
    finally:
        proc.kill()
        proc.wait()
