"""What every ``snowmelt`` process run by the tests shares: environment, log, readiness, stop."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.services.server import free_port, popen
from tests.services.wait import wait_until


def snowmelt_env(settings: dict) -> dict:
    """This environment without ``SNOWMELT_*`` config (extension flags kept), plus ``settings``.

    ``settings`` are dotted config keys: ``{"collector.port": 8080}`` becomes
    ``SNOWMELT_COLLECTOR__PORT=8080``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWMELT_") or "EXTENSIONS" in k}
    for key, value in settings.items():
        env["SNOWMELT_" + key.replace(".", "__").upper()] = str(value)
    return env


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started that still run (``/proc``, every thread's children)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:  # a thread that ended meanwhile
            pass
    return found


def proc_text(pid: int | str, name: str) -> str:
    """``/proc/PID/NAME`` as text, NULs as spaces (``cmdline``); empty once the process has ended."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def signal_set(field: str, pid: int | str = "self") -> set[int]:
    """The signals of the kernel's mask ``field`` of a process: ``SigIgn`` (ignored), ``SigCgt`` (handled)."""
    mask = next((int(line.split()[1], 16) for line in proc_text(pid, "status").splitlines()
                 if line.startswith(f"{field}:")), 0)
    return {sig for sig in range(1, 65) if mask >> (sig - 1) & 1}


class SnowmeltProcess:
    """``python -m snowmelt.cli ARGS`` with its output in a temporary log file."""

    name = "snowmelt"

    def __init__(self, args: list[str], env: dict):
        self.args = [sys.executable, "-m", "snowmelt.cli", *args]
        self.env = env
        self.log = tempfile.NamedTemporaryFile(prefix=f"snowmelt-{self.name}-", suffix=".log", delete=False)
        self.proc: subprocess.Popen | None = None

    #: started as the leader of a process group of its own, as a shell starts a command: a signal to the group
    #: (:meth:`signal_group`, as a terminal's Ctrl-C) reaches it and every process it started
    own_group = False

    def spawn(self) -> None:
        self.proc = popen(self.args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                          start_new_session=self.own_group)

    def signal_group(self, sig: int) -> None:
        """``sig`` to the process and every process of its group (``own_group`` must be set)."""
        assert self.own_group, "not started in a group of its own"
        os.killpg(self.proc.pid, sig)

    def wait_http(self, url: str, timeout: float) -> None:
        """Poll ``url`` until it answers 200, failing early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready at {url} after {timeout}s:\n{self.output()}")

    def output(self, chars: int = 6000) -> str:
        return Path(self.log.name).read_text(errors="replace")[-chars:]

    def wait_exited(self, timeout: float, what: str, since: float | None = None) -> tuple[int, float, str]:
        """Poll until the process exits (``AssertionError`` naming ``what`` after ``timeout`` seconds); its exit
        status, the seconds from ``since`` (a ``time.monotonic()``; by default the call), and its whole log."""
        started = time.monotonic() if since is None else since
        try:
            wait_until(lambda: self.proc.poll() is not None, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{self.output()}") from None
        return self.proc.returncode, time.monotonic() - started, self.output(10 ** 7)

    def exits_as_stalled(self, timeout: float, what: str, since: float | None = None) -> tuple[float, str]:
        """:meth:`wait_exited`, asserting the status is 4 (a stall, ``snowmelt.lifecycle.EXIT_STALLED``); the
        seconds it took and the whole log."""
        status, took, log = self.wait_exited(timeout, what, since)
        assert status == 4, log[-6000:]
        return took, log

    def kill(self) -> None:
        """SIGKILL: no drain, no commit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the process drains before it exits."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stacks = _stacks(self.proc.pid)  # where it is stuck, before it is killed
            self.proc.kill()
            self.proc.wait()
            raise TimeoutError(f"{self.name} did not exit within {timeout}s of SIGTERM\n{stacks}"
                               f"--- its output ---\n{self.output()}") from None

    def remove_log(self) -> None:
        self.log.close()
        if os.path.exists(self.log.name):
            os.unlink(self.log.name)


class MetricsProcess(SnowmeltProcess):
    """A ``snowmelt`` worker that serves Prometheus ``/metrics`` on a free port of 127.0.0.1.

    ``values`` are the worker's dotted config keys; ``SECTION.metrics_host`` and
    ``SECTION.metrics_port`` are added (``section``: ``"load"``, ``"enrich"``),
    then ``settings`` override.  ``extra_env`` is added to the environment.
    ``start()`` returns once ``/metrics`` answers.
    """

    def __init__(self, args: list[str], section: str, values: dict, settings: dict | None = None,
                 extra_env: dict | None = None):
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        values = {**values, f"{section}.metrics_host": "127.0.0.1", f"{section}.metrics_port": str(self.metrics_port)}
        values.update(settings or {})
        env = snowmelt_env(values)
        env.update(extra_env or {})
        super().__init__(args, env)

    def start(self, timeout: float = 60.0):
        self.spawn()
        self.wait_http(self.metrics_url, timeout)
        return self

    def close(self) -> None:
        """Kill the process if it still runs and remove its log."""
        self.kill()
        self.remove_log()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        """SIGTERM (the process drains), then :meth:`close`."""
        try:
            self.terminate()
        finally:
            self.close()

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return resp.read().decode()

    #: a signal on which the process writes its threads' and asyncio tasks' stacks to its output (None: none)
    dump_signal: int | None = None

    def diagnosis(self) -> str:
        """What the running process is doing, for the message of a wait that timed out: its own counters and
        gauges (no histogram buckets), the stacks it writes on :attr:`dump_signal` (asyncio tasks included,
        which a thread dump does not show), and the threads' stacks by py-spy when it is installed."""
        try:
            lines = [line for line in self.metrics().splitlines()
                     if line.startswith("snowmelt_") and "_bucket{" not in line]
            counters = "\n".join(lines)
        except OSError as exc:
            counters = f"(no /metrics: {exc})"
        return f"--- {self.name} /metrics ---\n{counters}\n{self._own_dump()}{_stacks(self.proc.pid)}"

    def _own_dump(self, timeout: float = 5.0, chars: int = 60_000) -> str:
        """Send :attr:`dump_signal` and return what the process wrote after it (once its output stops growing)."""
        if self.dump_signal is None or self.proc.poll() is not None:
            return ""
        log = Path(self.log.name)
        start = log.stat().st_size
        self.proc.send_signal(self.dump_signal)
        deadline = time.monotonic() + timeout
        size, still_since = start, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = log.stat().st_size
            if now != size:
                size, still_since = now, time.monotonic()
            elif size > start and time.monotonic() - still_since > 0.5:
                break
        with log.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        if not text:
            return f"--- {self.name} wrote nothing within {timeout:g}s of signal {self.dump_signal} ---\n"
        return f"--- {self.name}'s own stack dump (signal {self.dump_signal}) ---\n{text[:chars]}\n"


def _stacks(pid: int) -> str:
    """The threads' stacks of process ``pid`` by ``py-spy dump`` when it is installed (the test and bench extras)."""
    if shutil.which("py-spy") is None:
        return ""
    try:
        out = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(py-spy dump failed: {exc})\n"
    return f"--- py-spy dump ---\n{out.stdout}{out.stderr}"
