"""How a pipeline process dies of a fatal signal: at once, with every thread's Python stack in its log.

A crash in a library's C code (librdkafka's failed assertions call ``abort()``,
a bad pointer faults) ends the process by a signal, with no traceback: its log
said nothing of where it was.  :func:`report_fatal_signals` has Python's
``faulthandler`` write each thread's stack to stderr first; then the signal's
default action ends the process (with a core dump where the system keeps one),
and its supervisor starts another.

chdb installs ClickHouse's own handlers for these signals, when it is loaded
and again with each session.  Outside a ClickHouse server they never end the
process (ClickHouse's server hands a fatal signal to a thread of its own, which
a chdb session does not seem to run): a process that had opened chdb and then
crashed hung, holding its partitions, instead of dying (a segfault, an ``abort()`` and
a ``kill -ABRT`` each left such a process alive 40 s later).  So chdb is
loaded and its sessions made inside :func:`fatal_signals_kept`, which puts back
the handlers that were there before (faulthandler's, or a JVM's).
"""
from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import io
import signal
from collections.abc import Iterator

#: the signals a crash in C code raises, whose default action ends the process with a core dump
FATAL_SIGNALS = (signal.SIGSEGV, signal.SIGFPE, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGSYS,
                 signal.SIGTRAP)

#: room for a ``struct sigaction``, which is only read and written back whole (152 bytes on Linux x86-64
#: and arm64)
_SIGACTION_SIZE = 512

_libc = ctypes.CDLL(None, use_errno=True)
_libc.sigaction.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_libc.sigaction.restype = ctypes.c_int


def _sigaction(sig: int, new: ctypes.Array | None, old: ctypes.Array | None) -> None:
    if _libc.sigaction(int(sig), new, old) != 0:
        raise OSError(ctypes.get_errno(), f"sigaction({signal.Signals(sig).name}) failed")


def report_fatal_signals() -> None:
    """From here on, a fatal signal writes every thread's Python stack to stderr, then ends the process."""
    try:
        faulthandler.enable(all_threads=True)
    except (AttributeError, ValueError, io.UnsupportedOperation):  # a stderr with no file descriptor
        pass


@contextlib.contextmanager
def fatal_signals_kept() -> Iterator[None]:
    """The process's handling of :data:`FATAL_SIGNALS` after the block is what it was before, whatever a
    library installed in it.  From any thread (``signal.signal`` works only on the main one)."""
    saved = {}
    for sig in FATAL_SIGNALS:
        saved[sig] = ctypes.create_string_buffer(_SIGACTION_SIZE)
        _sigaction(sig, None, saved[sig])
    try:
        yield
    finally:
        for sig, action in saved.items():
            _sigaction(sig, action, None)
