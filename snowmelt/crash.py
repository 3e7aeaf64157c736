"""How a pipeline process dies of a fatal signal: at once, with every thread's Python stack in its log.

A crash in a library's C code (librdkafka's failed assertions call ``abort()``,
a bad pointer faults) ends the process by a signal, with no traceback: its log
said nothing of where it was.  :func:`report_fatal_signals` has Python's
``faulthandler`` write each thread's stack to stderr first; then the signal's
default action ends the process (with a core dump where the system keeps one),
and its supervisor starts another.

Each chdb session installs ClickHouse's own handlers for these signals when it
is made.  Outside a ClickHouse server they wait for a thread that is not
there: a process that had opened chdb and then crashed hung, holding its
partitions, instead of dying (a segfault, an ``abort()`` and a ``kill -ABRT``
each left such a process alive 40 s later).  So whoever makes a session calls
:func:`default_fatal_signals` after it.
"""
from __future__ import annotations

import ctypes
import faulthandler
import io
import signal

#: the signals whose default action ends the process with a core dump, as a crash in C code raises them
FATAL_SIGNALS = (signal.SIGSEGV, signal.SIGFPE, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGSYS,
                 signal.SIGTRAP)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
_libc.signal.restype = ctypes.c_void_p
_SIG_ERR = ctypes.c_void_p(-1).value


def _dump_on_fatal_signals() -> None:
    try:
        faulthandler.enable(all_threads=True)
    except (AttributeError, ValueError, io.UnsupportedOperation):  # a stderr with no file descriptor
        pass


def default_fatal_signals() -> None:
    """Give each of :data:`FATAL_SIGNALS` its default action again, whatever a library installed; the stack
    dump stays on if it was.  From any thread (``signal.signal`` works only on the main one)."""
    dumping = faulthandler.is_enabled()
    faulthandler.disable()
    for sig in FATAL_SIGNALS:
        if _libc.signal(int(sig), None) == _SIG_ERR:  # None: SIG_DFL
            raise OSError(ctypes.get_errno(), f"cannot restore the default action of {sig.name}")
    if dumping:
        _dump_on_fatal_signals()


def report_fatal_signals() -> None:
    """From here on, a fatal signal writes every thread's Python stack to stderr and ends the process."""
    default_fatal_signals()
    _dump_on_fatal_signals()
