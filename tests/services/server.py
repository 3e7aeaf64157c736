"""What the throw-away servers of the tests (PostgreSQL, SeaweedFS S3) share.

:class:`ServerProcess` is one server process on 127.0.0.1 with its data in a
temporary directory that survives :meth:`~ServerProcess.stop` and
:meth:`~ServerProcess.kill`, so :meth:`~ServerProcess.start` after them brings
the same data back on the same ports.  The process runs in its own session
(``stop``/``kill`` signal its whole group), its output goes to ``log_path``,
and every running server is killed at interpreter exit, or by the kernel when
the test run is killed (:func:`popen`), so a run that dies leaves
none behind.  A start polls the subclass's readiness probe with a
deadline and raises the subclass's ``start_error`` with the log tail when the
process exits or the deadline passes.

A subclass gives its ``command()``, its ``ready_probe()`` (a callable that
raises until the server answers) and optionally ``prepare()`` (run before each
spawn) and ``popen_kwargs()`` (``cwd``, ``env``).

:class:`ExternalServer` is the mixin for a server named by the environment:
nothing is started or stopped, ``start`` only waits for it to answer.

:class:`LoopThreadServer` is a server of the tests' own (the fault proxies)
run on an event loop of its own in a daemon thread.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

def _arm_death_signal(parent: int) -> None:
    """In the child, before exec: SIGKILL when the thread that forked it ends (``PR_SET_PDEATHSIG``)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


# Children started from other threads are forked by this one thread, which lives as long as the process:
# the kernel's death signal follows the *thread* that forked a child, and a worker thread (a pool's, a
# fixture's) may end long before the run does.
_spawner: concurrent.futures.ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def popen(cmd, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen(cmd, **kwargs)`` whose child gets SIGKILL when this process dies, however it dies.

    The ``atexit`` kill covers a normal end and Ctrl-C; this covers SIGTERM and SIGKILL of the test run
    (Linux ``PR_SET_PDEATHSIG``), from whichever thread the child is started: off the main thread the
    fork is handed to one long-lived thread.
    """
    global _spawner
    if not sys.platform.startswith("linux"):
        return subprocess.Popen(cmd, **kwargs)
    parent = os.getpid()
    arm = {"preexec_fn": lambda: _arm_death_signal(parent)}
    if threading.current_thread() is threading.main_thread():
        return subprocess.Popen(cmd, **kwargs, **arm)
    with _spawner_lock:
        if _spawner is None:
            _spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="child-spawner")
    return _spawner.submit(lambda: subprocess.Popen(cmd, **kwargs, **arm)).result()


# Running servers started by this process (strong references), killed at exit.
_LIVE: set[ServerProcess] = set()


@atexit.register
def _kill_live() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.kill()


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports of 127.0.0.1 (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    """One free TCP port of 127.0.0.1."""
    return free_ports(1)[0]


def non_loopback_address() -> str | None:
    """An IPv4 address of one of this machine's own interfaces that is not loopback, or None (Linux only).

    A connection from this machine to that address arrives from that address,
    not from 127.0.0.1: to a server, a client on another machine.  Read with
    ``SIOCGIFADDR`` on every interface (an interface that is down or has no
    IPv4 address answers an error and is passed over).
    """
    if not sys.platform.startswith("linux"):
        return None
    import fcntl
    import ipaddress
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            try:
                answer = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
            except OSError:
                continue
            address = socket.inet_ntoa(answer[20:24])
            if not ipaddress.ip_address(address).is_loopback:
                return address
    return None


class ServerProcess:
    """One throw-away server process (see the module docstring)."""

    kind = "?"
    supports_stop = True
    #: the process's name and the server's, in start failures
    process_name = "server"
    display_name = "server"
    start_error: type[Exception] = RuntimeError
    start_timeout = 60.0
    stop_timeout = 30.0
    #: the signal of a graceful :meth:`stop`
    stop_signal = signal.SIGTERM

    def __init__(self, prefix: str, log_name: str):
        self.host = "127.0.0.1"
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.data_dir = self.root / "data"
        self.log_path = self.root / log_name
        self.proc: subprocess.Popen | None = None
        self.start_seconds = 0.0

    # ------------------------------------------------------------------ subclass hooks

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Run before each spawn (e.g. create or initialise the data directory)."""

    def popen_kwargs(self) -> dict[str, Any]:
        """Extra ``subprocess.Popen`` arguments (``cwd``, ``env``)."""
        return {}

    def ready_probe(self) -> Callable[[], Any]:
        """A callable that raises until the server answers."""
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle

    def start(self):
        """Start (same ports and data as before, if any); returns once the readiness probe answers."""
        t0 = time.monotonic()
        self.prepare()
        with open(self.log_path, "ab") as log:
            self.proc = popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True, **self.popen_kwargs())
        _LIVE.add(self)
        probe = self.ready_probe()
        deadline = time.monotonic() + self.start_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _LIVE.discard(self)
                raise self.start_error(f"{self.process_name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                probe()
                self.start_seconds = time.monotonic() - t0
                return self
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.05)
        self.kill()
        raise self.start_error(
            f"{self.display_name} not ready in {self.start_timeout:.0f}s ({last}):\n{self.log_tail()}")

    def stop(self) -> None:
        """``stop_signal`` to the process group, wait with a deadline, then SIGKILL. The data stays."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, self.stop_signal)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL: what was acknowledged before stays on disk."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=self.stop_timeout)
        self.proc = None
        _LIVE.discard(self)

    def close(self) -> None:
        """Stop and delete the data."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class ExternalServer:
    """Mixin (before the server class) for a running server named by the environment."""

    kind = "external"
    supports_stop = False
    #: ``stop``/``kill`` raise ``RuntimeError`` with this
    cannot_stop = "an external server cannot be stopped by the tests"

    def wait_answering(self, probe: Callable[[], Any]):
        """Poll ``probe`` (0.1 s apart) until it answers; ``start_error`` after ``start_timeout``."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                probe()
                return self
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise self.start_error(f"{self.describe()} does not answer: {exc}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        raise RuntimeError(self.cannot_stop)

    def kill(self) -> None:
        raise RuntimeError(self.cannot_stop)

    def close(self) -> None:
        pass


class LoopThreadServer:
    """A server whose coroutine :meth:`_serve` runs on an event loop of its own, in a daemon thread.

    ``_serve`` sets itself up, then awaits :meth:`_until_stopped` (which
    tells :meth:`start` it is ready) and cleans up when that returns, on
    :meth:`close`.  An exception before it is ready is raised by ``start``.
    """

    thread_name = "loop-server"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    async def _serve(self) -> None:
        raise NotImplementedError

    async def _until_stopped(self) -> None:
        self._stopped = asyncio.Event()
        self._ready.set()
        await self._stopped.wait()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except Exception as exc:  # noqa: BLE001  (reported by start())
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    def start(self):
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"{self.thread_name} did not start: {self._error!r}")
        return self

    def close(self) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(30)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
