"""Serving until told to stop, and ending at once: the same for every long-running role."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Callable

#: the exit status of a role that found itself stalled (no progress, no error) and ended so that its
#: supervisor restarts it: a worker or loader holding a partition whose records wait unread (snowmelt/stall.py),
#: or whose consumer is left outside its group (snowmelt/membership.py)
EXIT_STALLED = 4

#: the signals that stop a role: a supervisor's SIGTERM, a terminal's Ctrl-C
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def wait_until_stopped(stop: asyncio.Event | None = None, ready: asyncio.Event | None = None) -> None:
    """Set ``ready``, then wait for ``stop`` -- or, when ``stop`` is None, for SIGTERM or SIGINT."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()


def on_stop_signals(action: Callable[[int], None]) -> None:
    """Run ``action(signum)`` on the first SIGTERM or SIGINT; every later one does nothing.

    A Python signal handler runs in the main thread between two of its bytecodes, so a signal arriving
    while the handler runs starts the handler again inside itself: a supervisor or a user repeating
    SIGTERM faster than a busy process's handler ends would nest handlers until the recursion limit,
    and the role would die of the RecursionError instead of draining. The first signal sets a flag
    before anything else; a handler nested after it returns at once."""
    started = False

    def handler(signum, _frame):
        nonlocal started
        if started:
            return
        started = True
        action(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def ignore_stop_signals() -> None:
    """Ignore SIGTERM and SIGINT from here on.

    In a role that has stopped, whose process only exits: Python's exit (and asyncio's loop, when it
    closes) puts back the default action of the signals it handled, so a SIGTERM repeated then (a
    supervisor's second one) would end a role that stopped cleanly by that signal, and its exit status
    would no longer say how the stop went.

    In a helper process that its role ends (``snowmelt up``'s stage process, the membership describer): a
    terminal's Ctrl-C or a service manager's SIGTERM reaches the role's whole process group, and the
    helper must outlive it while the role drains through it."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def exit_now(log: logging.Logger, status: int, message: str, *args) -> None:
    """Log ``message`` as critical and end the process at once with ``status``: no drain, no commit,
    no handler or thread waited for (what was not committed is read again by the next process)."""
    log.critical(message, *args)
    logging.shutdown()
    os._exit(status)


def stall_timeout(section: str, seconds: float) -> float:
    """``SECTION.stall_timeout`` as given; ``ValueError`` when negative (0 turns the stall check off)."""
    if seconds < 0:
        raise ValueError(f"{section}.stall_timeout must be 0 (off) or more seconds, got {seconds:g}")
    return seconds
