"""py-spy flame graphs of a running benchmark process, kept beside the results.

    with flame(pid, "bench/results/flame-enrich-worker.svg"):
        ...  # the timed part

Records the process (and its native threads' Python frames) from entry to exit
of the block; ``--nonblocking`` so sampling does not pause the process being
measured.  Without py-spy on PATH, or when ``path`` is None, nothing is
recorded and the benchmark runs as usual.

Also the benchmarks' one reader of ``/proc``: CPU seconds of a process, a
process group, each thread of a process, the process table with its trees, and
a process's memory fields (``status_kb``, ``peak_rss_mb``); and
:class:`CpuSampler`, a process's CPU seconds sampled while a block runs, to
read between two moments (:func:`interpolate`).  :func:`pin` puts a running
process on given CPUs.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@contextlib.contextmanager
def flame(pid: int, path: str | Path | None, rate: int = 97, *, gil: bool = False):
    """Record a flame graph (SVG) of ``pid`` while the block runs; ``gil``: of the threads holding the
    interpreter's lock only, each thread apart (what a process bound by its one interpreter spends it on)."""
    exe = shutil.which("py-spy")
    if path is None or exe is None:
        if path is not None:
            print("py-spy not found: no flame graph recorded", file=sys.stderr)
        yield None
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # written beside the graph and moved over it only when py-spy wrote one: a graph left from an earlier
    # run is never taken for this one's
    fresh = path.with_name(path.name + ".part")
    fresh.unlink(missing_ok=True)
    proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking",
                             *(("--gil", "--threads") if gil else ()),
                             "--format", "flamegraph", "--output", str(fresh)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if fresh.exists():
            fresh.replace(path)
        else:
            print(f"py-spy wrote no flame graph for pid {pid} ({path} not written): "
                  f"{err.decode(errors='replace')[-500:]}", file=sys.stderr)


def self_time(svg: str | Path, top: int = 25) -> list[tuple[float, str]]:
    """The functions with the most samples of their own (not in callees) in a py-spy flame graph.

    Returns ``(share of all samples, "function (file)")``, largest first; line
    numbers are dropped so a function's lines add up.
    """
    import html
    import re

    frames = []
    for title, y, x, w in re.findall(
            r'<title>(.*?)</title><rect [^>]*?y="(\d+)"[^>]*?fg:x="(\d+)" fg:w="(\d+)"', Path(svg).read_text()):
        name = re.sub(r" \([\d,]+ samples?, [\d.]+%\)$", "", html.unescape(title))
        name = re.sub(r":\d+\)$", ")", name)
        frames.append((int(y), int(x), int(w), name))
    if not frames:
        return []
    total = max(x + w for _, x, w, _ in frames)
    # py-spy draws an icicle graph: a frame's callees sit one row (16 px) below it
    by_row: dict[int, list[tuple[int, int]]] = {}
    for y, x, w, _ in frames:
        by_row.setdefault(y, []).append((x, w))
    own: dict[str, int] = {}
    for y, x, w, name in frames:
        children = sum(cw for cx, cw in by_row.get(y + 16, ()) if x <= cx < x + w)
        own[name] = own.get(name, 0) + w - children
    ranked = sorted(((n / total, name) for name, n in own.items() if n > 0), reverse=True)
    return ranked[:top]


def _stat(path: Path) -> tuple[str, list[str]] | None:
    """A ``/proc/.../stat`` file as (name, the fields after it); None when the process or thread is gone."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()


def _cpu(fields: list[str], tick: int) -> float:
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime


def _processes():
    """(pid, the fields after its name) of every live process."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(Path("/proc", entry, "stat"))) is not None:
            yield int(entry), stat[1]


def process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds user+system) of every process."""
    tick = os.sysconf("SC_CLK_TCK")
    return {pid: (int(fields[1]), _cpu(fields, tick)) for pid, fields in _processes()}


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs of the machine spent not idle so far (from ``/proc/stat``): every process's
    time, the stores' and brokers' a benchmark starts included."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) ``pid`` has used so far (``ProcessLookupError`` once it is gone)."""
    if (stat := _stat(Path(f"/proc/{pid}/stat"))) is None:
        raise ProcessLookupError(pid)
    return _cpu(stat[1], os.sysconf("SC_CLK_TCK"))


def _at_or_before(samples: list[tuple], at: float) -> tuple:
    """The last ``(wall, ...)`` sample taken at or before ``at`` (the first one if none was)."""
    return ([s for s in samples if s[0] <= at] or samples[:1])[-1]


def _at_or_after(samples: list[tuple], at: float) -> tuple:
    """The first ``(wall, ...)`` sample taken at or after ``at`` (the last one if none was)."""
    return ([s for s in samples if s[0] >= at] or samples[-1:])[0]


def interpolate(samples: list[tuple[float, float]], at: float) -> float:
    """The CPU seconds at wall time ``at`` from ``(wall, cpu)`` samples."""
    (t0, c0), (t1, c1) = _at_or_before(samples, at), _at_or_after(samples, at)
    return c0 if t1 == t0 else c0 + (c1 - c0) * (at - t0) / (t1 - t0)


class CpuSampler:
    """``(clock(), CPU seconds)`` of process ``pid`` every ``interval`` seconds while the block runs::

        with CpuSampler(worker.pid, threads=True) as cpu:
            first, last = ...  # time.perf_counter() of the first and last output
        cpu.between(first, last)  # the process's CPU seconds in that window
        cpu.threads_between(first, last)  # and each thread's (threads=True)
    """

    def __init__(self, pid: int, interval: float = 0.1, clock=time.perf_counter, threads: bool = False):
        self.pid, self.interval, self.clock = pid, interval, clock
        self.samples: list[tuple[float, float]] = []
        # (clock(), thread_cpu(pid, main="main")) with each sample, when threads is set
        self.thread_samples: list[tuple[float, dict[str, float]]] | None = [] if threads else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _sample(self) -> bool:
        try:
            now, used = self.clock(), process_cpu(self.pid)
        except ProcessLookupError:
            return False
        self.samples.append((now, used))
        if self.thread_samples is not None:
            self.thread_samples.append((now, thread_cpu(self.pid, main="main")))
        return True

    def _run(self) -> None:
        while self._sample() and not self._stop.wait(self.interval):
            pass

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def between(self, start: float, end: float) -> float | None:
        """CPU seconds the process used from ``start`` to ``end`` (its clock), None without samples."""
        if not self.samples:
            return None
        return interpolate(self.samples, end) - interpolate(self.samples, start)

    def threads_between(self, start: float, end: float) -> dict[str, float] | None:
        """CPU seconds each thread name used from the last sample at or before ``start`` to the first at or
        after ``end`` (:func:`cpu_by_thread`), None without thread samples (``threads=True``)."""
        if not self.thread_samples:
            return None
        return cpu_by_thread(_at_or_before(self.thread_samples, start)[1], _at_or_after(self.thread_samples, end)[1])


def status_kb(pid: int | str, keys=None) -> dict[str, int]:
    """The memory fields of ``/proc/PID/status`` in kB (``VmRSS``, ``VmHWM``, ``RssAnon`` ...; ``pid`` may be
    ``"self"``), only ``keys`` when given."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if rest.endswith(" kB") and (keys is None or key in keys):
            values[key] = int(rest.split()[0])
    return values


def peak_rss_mb(pid: int) -> float | None:
    """The highest resident memory ``pid`` has had (``VmHWM``), in MB; None once it is gone."""
    try:
        return status_kb(pid, ("VmHWM",))["VmHWM"] / 1024
    except (OSError, KeyError):
        return None


def group_cpu(pgid: int) -> float:
    """CPU seconds used so far by the live processes of process group ``pgid`` (a broker and its JVM)."""
    tick = os.sysconf("SC_CLK_TCK")
    return sum(_cpu(fields, tick) for _pid, fields in _processes() if int(fields[2]) == pgid)


def process_tree(pid: int | None, table: dict[int, tuple[int, float]]) -> list[int]:
    """``pid`` and its children, grandchildren, ... in ``table`` (empty for a process that is gone)."""
    children: dict[int, list[int]] = {}
    for child, (ppid, _cpu_s) in table.items():
        children.setdefault(ppid, []).append(child)
    tree, todo = [], [pid] if pid in table else []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def thread_cpu(pid: int, main: str | None = None) -> dict[str, float]:
    """CPU seconds (user + system) each thread of ``pid`` has used so far, by thread name.

    librdkafka names its threads ``rdk:main``, ``rdk:broker…``; Python's threads keep the
    process's name.  Threads of one name are summed.  With ``main``, the process's first
    thread (the one running the event loop) is reported under that name instead, apart
    from the other Python threads.
    """
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        if (stat := _stat(task / "stat")) is not None:  # else the thread ended meanwhile
            name = main if main is not None and task.name == str(pid) else stat[0]
            out[name] = out.get(name, 0.0) + _cpu(stat[1], tick)
    return out


def cpu_by_thread(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The CPU seconds each thread name used between two :func:`thread_cpu` readings, largest first."""
    used = {name: round(after[name] - before.get(name, 0.0), 2) for name in after}
    return dict(sorted(((n, s) for n, s in used.items() if s > 0), key=lambda item: -item[1]))


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of running process ``pid`` on ``cpus``; the threads they start later inherit it.

    Pass after pass over ``/proc/PID/task`` until a pass finds no thread not yet pinned: a thread started
    during a pass by one not yet pinned is caught by the next. A thread that ends meanwhile is passed over
    (``taskset -a`` exits 1 on it); ``ProcessLookupError`` when the process itself is gone.
    """
    pinned: set[int] = set()
    while True:
        try:
            threads = {int(tid) for tid in os.listdir(f"/proc/{pid}/task")}
        except FileNotFoundError:
            raise ProcessLookupError(f"process {pid} has ended: nothing to pin") from None
        if not threads - pinned:
            return
        for tid in threads - pinned:
            with contextlib.suppress(ProcessLookupError):  # the thread has ended
                os.sched_setaffinity(tid, cpus)
        pinned |= threads


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the listing quietly
    for path in sys.argv[1:]:
        print(path)
        for share, name in self_time(path):
            print(f"  {share * 100:5.1f} %  {name}")
