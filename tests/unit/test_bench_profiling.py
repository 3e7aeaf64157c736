"""bench.profiling: a process's CPU seconds between two moments, read from samples, its flame graphs, and pinning it."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.profiling import CpuSampler, flame, interpolate, machine_busy_seconds, pin, process_cpu, self_time
from tests.services.wait import wait_until


def test_interpolate_reads_between_samples_and_holds_at_the_ends():
    samples = [(10.0, 1.0), (12.0, 2.0), (14.0, 2.0)]
    assert interpolate(samples, 11.0) == pytest.approx(1.5)
    assert interpolate(samples, 13.0) == 2.0
    assert interpolate(samples, 9.0) == 1.0 and interpolate(samples, 20.0) == 2.0


def test_a_busy_process_s_cpu_between_two_moments_and_little_once_it_waits():
    # a child that spends one CPU-second, however long that takes on a busy machine, then waits on its stdin
    busy = subprocess.Popen([sys.executable, "-c", "import sys, time\nwhile time.process_time() < 1.0: pass\n"
                             "print('done', flush=True)\nsys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with CpuSampler(busy.pid, interval=0.05) as cpu:
            start = time.perf_counter()
            assert busy.stdout.readline() == "done\n"
            done = time.perf_counter()
            # samples of the waiting child, 0.4 s of them
            wait_until(lambda: cpu.samples[-1][0] >= done + 0.4, 10, "0.4 s of samples after the busy second")
            end = cpu.samples[-1][0]
        assert 0.7 < cpu.between(start, end) <= 1.1  # its start-up before the first sample is not counted
        assert cpu.between(done, end) < 0.1
    finally:
        busy.kill()
        busy.wait()


def test_a_process_gone_leaves_the_samples_taken():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with CpuSampler(gone.pid) as cpu:
        pass
    assert cpu.samples == [] and cpu.between(0.0, 1.0) is None


def test_each_thread_s_cpu_between_two_moments_with_the_first_thread_apart():
    # a child whose first thread and a second Python thread each spend 0.4 CPU-seconds, then wait on stdin
    child = ("import sys, threading, time\n"
             "spun = threading.Event()\n"
             "def spin():\n"
             "    while time.thread_time() < 0.4: pass\n"
             "    spun.set()\n"
             "    threading.Event().wait()\n"
             "threading.Thread(target=spin, daemon=True).start()\n"
             "while time.thread_time() < 0.4: pass\n"
             "spun.wait()\n"
             "print('done', flush=True)\nsys.stdin.read()")
    busy = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with CpuSampler(busy.pid, interval=0.05, threads=True) as cpu:
            start = time.perf_counter()
            assert busy.stdout.readline() == "done\n"
            end = time.perf_counter()
        used = cpu.threads_between(start, end)
        assert 0.2 < used.pop("main") <= 0.6  # the first thread, whatever the process is called
        assert 0.2 < sum(used.values()) <= 0.6  # the other Python thread, under the process's name
        assert sum(cpu.threads_between(end, end).values()) < 0.1
    finally:
        busy.kill()
        busy.wait()


def test_no_thread_samples_unless_asked():
    quick = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    try:
        with CpuSampler(quick.pid) as cpu:
            pass
    finally:
        quick.wait()
    assert cpu.samples and cpu.thread_samples is None and cpu.threads_between(0.0, 1.0) is None


@pytest.mark.skipif(shutil.which("py-spy") is None, reason="py-spy is installed with the bench extra")
def test_a_flame_graph_not_recorded_leaves_the_old_one_and_says_so(tmp_path, capsys):
    old = tmp_path / "flame.svg"
    old.write_text("an earlier run's graph")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with flame(gone.pid, old):
        pass
    assert old.read_text() == "an earlier run's graph"
    assert "py-spy wrote no flame graph" in capsys.readouterr().err
    assert not (tmp_path / "flame.svg.part").exists()


@pytest.mark.skipif(shutil.which("py-spy") is None, reason="py-spy is installed with the bench extra")
def test_a_recorded_flame_graph_replaces_the_old_one(tmp_path):
    old = tmp_path / "flame.svg"
    old.write_text("an earlier run's graph")
    busy = subprocess.Popen([sys.executable, "-c", "import time\nwhile time.process_time() < 30: pass"])
    try:
        with flame(busy.pid, old):
            start = process_cpu(busy.pid)  # the graph's samples: half a CPU-second of the busy child
            wait_until(lambda: process_cpu(busy.pid) - start >= 0.5, 30, "half a CPU-second of the child")
    finally:
        busy.kill()
        busy.wait()
    assert old.read_text().startswith("<?xml")


def test_the_machine_s_busy_seconds_count_a_busy_child():
    # every process's CPU time is in it: half a CPU-second of a child's, at least (the machine may do more)
    busy = subprocess.Popen([sys.executable, "-c", "import time\nwhile time.process_time() < 30: pass"])
    try:
        before, start = machine_busy_seconds(), process_cpu(busy.pid)
        wait_until(lambda: process_cpu(busy.pid) - start >= 0.5, 30, "half a CPU-second of the child")
        assert machine_busy_seconds() - before >= 0.45  # ticks of 10 ms, read twice
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.skipif(shutil.which("py-spy") is None, reason="py-spy is installed with the bench extra")
def test_a_flame_graph_of_the_lock_holders_leaves_out_the_threads_working_without_it(tmp_path):
    # one thread spins in Python (holding the interpreter's lock), another compresses with zlib (which lets
    # the lock go while it works): only the first is in the graph of the lock's holders, threads apart
    script = ("import os, threading, time, zlib\n"
              "data = os.urandom(1 << 22)\n"
              "def compressing_without_the_lock():\n    while True: zlib.compress(data, 9)\n"
              "def spinning_in_python():\n    while time.process_time() < 60: pass\n"
              "threading.Thread(target=compressing_without_the_lock, daemon=True).start()\n"
              "print('ready', flush=True)\n"
              "spinning_in_python()\n")
    busy = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    graph = tmp_path / "flame-gil.svg"
    try:
        assert busy.stdout.readline() == "ready\n"  # its imports are not in the graph
        with flame(busy.pid, graph, rate=199, gil=True):
            start = process_cpu(busy.pid)
            wait_until(lambda: process_cpu(busy.pid) - start >= 1.0, 30, "a CPU-second of the child")
    finally:
        busy.kill()
        busy.wait()
    own = {name.split(" (")[0]: share for share, name in self_time(graph, top=1000)}
    # the compressing thread holds the lock only to start each call
    assert own["spinning_in_python"] > 0.8 and own.get("compressing_without_the_lock", 0) < 0.1
    assert "thread (" in graph.read_text()  # one stack per thread


# a process with a thread of its own, which starts one more when told to (a line on stdin); its threads wait on
# an event that is never set, and it ends when its stdin closes
PINNED_PROCESS = """
import sys, threading
forever = threading.Event()
threading.Thread(target=forever.wait, daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()
threading.Thread(target=forever.wait, daemon=True).start()
print("started", flush=True)
sys.stdin.readline()
"""


def cpus_allowed(pid: int) -> set[str]:
    """Each thread's ``Cpus_allowed_list``."""
    lists = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                lists.add(line.split(":", 1)[1].strip())
    return lists


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin to one of them")
def test_every_thread_of_a_pinned_process_runs_on_the_cpu_it_was_given_those_it_starts_later_too():
    cpu = max(os.sched_getaffinity(0))
    proc = subprocess.Popen([sys.executable, "-c", PINNED_PROCESS], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert len(cpus_allowed(proc.pid)) == 1 and cpus_allowed(proc.pid) != {str(cpu)}  # all CPUs, before
        pin(proc.pid, {cpu})
        assert cpus_allowed(proc.pid) == {str(cpu)}
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "started"
        assert len(list(Path(f"/proc/{proc.pid}/task").iterdir())) == 3
        assert cpus_allowed(proc.pid) == {str(cpu)}  # the thread started after inherits it
    finally:
        proc.kill()
        proc.wait()


def test_pinning_passes_over_a_thread_that_ends_meanwhile_and_catches_one_started_meanwhile(monkeypatch):
    """Threads come and go while a process is pinned: one that has ended is passed over (``taskset -a`` exits 1
    on it), and one started during the pass, by a thread not yet pinned, is pinned by the next pass."""
    tasks = [{"100", "101", "102"}, {"100", "101", "102", "103"}, {"100", "101", "102", "103"}]
    listed = iter(tasks)
    set_on: dict[int, set[int]] = {}

    def listdir(path):
        assert path == "/proc/100/task"
        return sorted(next(listed))

    def sched_setaffinity(tid, cpus):
        if tid == 101:
            raise ProcessLookupError(3, "No such process")  # ended after it was listed
        set_on[tid] = cpus

    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(os, "sched_setaffinity", sched_setaffinity)
    pin(100, {1})
    assert set_on == {100: {1}, 102: {1}, 103: {1}}
    assert next(listed, None) is None  # it stopped at the pass that found no thread left to pin


def test_pinning_a_process_that_has_ended_says_so():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(ProcessLookupError, match=f"process {proc.pid} has ended"):
        pin(proc.pid, {min(os.sched_getaffinity(0))})
