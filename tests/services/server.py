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
import collections
import concurrent.futures
import contextlib
import os
import random
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


def _ephemeral_low() -> int:
    """The first port of the kernel's range for outgoing connections (``ip_local_port_range``)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


#: where free_ports looks: below the kernel's range for outgoing connections.  A port the kernel picks
#: (``bind`` to port 0) is one it may also give an outgoing connection -- to Kafka, to an HTTP server --
#: between the test's pick and its server's bind, and the server then exits "Address already in use".
#: A port below that range is never taken by a connection.
_FIRST_PORT = 15000
_PORTS_END = _ephemeral_low()
#: ports this process has handed out lately: a port is not handed out twice while its first taker may
#: not have bound it yet
_HANDED: collections.OrderedDict[int, None] = collections.OrderedDict()
_HANDED_MAX = 2000


def _worker_slice() -> range:
    """This process's share of the ports: each pytest-xdist worker draws from its own slice, so two
    workers never pick the same port.  Empty where the outgoing range starts too low to leave room."""
    if _PORTS_END - _FIRST_PORT < 1000:
        return range(0)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), index + 1)
    size = (_PORTS_END - _FIRST_PORT) // workers
    start = _FIRST_PORT + index * size
    return range(start, start + size)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports of 127.0.0.1, none handed out before by this process lately.

    Drawn at random from below the kernel's range for outgoing connections (see :data:`_FIRST_PORT`), from
    this pytest worker's slice of it, each checked free by binding it; where that range leaves too little
    room (a system whose outgoing range starts low), the kernel picks them."""
    ports: list[int] = []
    pool = _worker_slice()
    rng = random.SystemRandom()
    for _ in range(50 * count if pool else 0):
        if len(ports) == count:
            break
        port = rng.choice(pool)
        if port in _HANDED or port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    if len(ports) < count:  # from the kernel's range, which the slices are below
        ports += _kernel_ports(count - len(ports))
    for port in ports:
        _HANDED[port] = None
        if len(_HANDED) > _HANDED_MAX:
            _HANDED.popitem(last=False)
    return ports


def _kernel_ports(count: int) -> list[int]:
    """``count`` free ports the kernel picks, held open together so none repeats."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
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
