"""snowmelt.crash: a crash in C code ends the process at once, with every thread's Python stack written.

Each case runs in a child process, crashes it for real (a read of address 0, an
``abort()``) and waits for its exit: before, a process that had opened chdb hung
in ClickHouse's handlers, on any thread, and never exited.
"""
from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from snowmelt.crash import fatal_signals_kept
from tests.services.process import signal_set

#: a crashed process is gone within this; a hung one never is
DEATH_SECONDS = 30

CRASHES = {
    "segfault on the main thread": ("ctypes.string_at(0)", signal.SIGSEGV),
    "abort() on another thread": ("t = threading.Thread(target=os.abort, name='crasher'); t.start(); t.join()",
                                  signal.SIGABRT),
}


def run_child(body: str, tmp_path) -> subprocess.CompletedProcess:
    pytest.importorskip("chdb")
    script = textwrap.dedent("""\
        import ctypes, os, sys, threading
        from snowmelt.crash import report_fatal_signals
        from loaders.clickhouse import ChdbBackend
        report_fatal_signals()
        opened = []  # the session made on a thread, as snowmelt up's store opens it
        t = threading.Thread(target=lambda: opened.append(ChdbBackend(sys.argv[1])))
        t.start(); t.join()
        opened[0].query("SELECT 1")
        print("opened", flush=True)
    """) + body + "\n"
    try:
        return subprocess.run([sys.executable, "-c", script, str(tmp_path / "chdb")], capture_output=True,
                              text=True, timeout=DEATH_SECONDS)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the crashed process still runs after {DEATH_SECONDS} s: {exc.stderr!r}") from None


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_a_crash_after_chdb_opened_ends_the_process_with_its_stacks(case, tmp_path):
    body, sig = CRASHES[case]
    done = run_child(body, tmp_path)
    assert done.stdout == "opened\n", done.stderr[-3000:]
    assert done.returncode == -sig, done.stderr[-3000:]
    assert "Fatal Python error: " in done.stderr, done.stderr[-3000:]
    assert 'File "<string>"' in done.stderr, done.stderr[-3000:]  # the frame that crashed


def caught(sig: int) -> bool:
    """Whether this process has a handler for ``sig`` (the kernel's view, not Python's)."""
    return sig in signal_set("SigCgt")


def ignored(sig: int) -> bool:
    """Whether this process ignores ``sig`` (the kernel's view)."""
    return sig in signal_set("SigIgn")


def test_what_a_library_installs_in_the_block_is_undone_from_any_thread():
    libc = ctypes.CDLL(None)
    libc.signal.argtypes, libc.signal.restype = (ctypes.c_int, ctypes.c_void_p), ctypes.c_void_p
    seen = []

    def library():  # a library's start-up on a thread: one handler taken away, another signal ignored
        with fatal_signals_kept():
            libc.signal(signal.SIGTRAP, 0)  # SIG_DFL
            libc.signal(signal.SIGSYS, 1)  # SIG_IGN
            seen.append((caught(signal.SIGTRAP), caught(signal.SIGSYS), ignored(signal.SIGSYS)))

    signal.signal(signal.SIGTRAP, lambda *_: None)  # what was there before: faulthandler's, a JVM's
    sigsys = caught(signal.SIGSYS), ignored(signal.SIGSYS)
    try:
        thread = threading.Thread(target=library)
        thread.start()
        thread.join()
        assert seen == [(False, False, True)]  # the library's own, inside the block
        assert caught(signal.SIGTRAP) and (caught(signal.SIGSYS), ignored(signal.SIGSYS)) == sigsys
    finally:
        signal.signal(signal.SIGTRAP, signal.SIG_DFL)
