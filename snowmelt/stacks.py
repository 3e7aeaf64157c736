"""Where a running process is: every thread's stack and every asyncio task's, as text.

A worker that stops making progress without an error (a hang) says nothing in
its log.  ``kill -USR1 <pid>`` makes the enrich worker write this dump to its
output: the threads show where each one runs (or blocks), and the tasks of the
event loops show what each coroutine is waiting for, which no thread dump
shows.  The loops of other threads are read without their thread's help, so a
dump works while one of them is stuck (the one that runs the dump must not be:
a blocked main loop shows in ``py-spy dump --pid``); a task that changes state
while it is read may be missing or cut, which is good enough for a diagnosis.
"""
from __future__ import annotations

import asyncio
import io
import sys
import threading
import traceback
from collections.abc import Mapping

#: frames kept of each task's stack (the innermost ones say what it waits for)
TASK_FRAMES = 12


def await_chain(coro) -> tuple[list, object | None]:
    """The frames of ``coro`` and of what it awaits, outermost first; and the last awaitable that has no frame."""
    frames = []
    obj = coro
    for _ in range(200):  # an await chain is never this deep; a cycle would be a bug, not a reason to hang
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None) or getattr(obj, "ag_frame", None)
        if frame is None:
            return frames, (obj if obj is not coro else None)
        frames.append(frame)
        nxt = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None) or getattr(obj, "ag_await", None)
        if nxt is None:
            return frames, None
        obj = nxt
    return frames, None


def format_stacks(loops: Mapping[str, asyncio.AbstractEventLoop | None]) -> str:
    """Every thread's stack, then the pending tasks of each named loop with their stacks."""
    out = io.StringIO()
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        out.write(f"=== thread {names.get(ident, ident)} ===\n")
        out.write("".join(traceback.format_stack(frame)))
    for name, loop in loops.items():
        if loop is None:
            continue
        try:
            tasks = list(asyncio.all_tasks(loop))
        except RuntimeError as exc:  # the loop's task set changed too often while it was read
            out.write(f"=== tasks of the {name} loop: not readable ({exc}) ===\n")
            continue
        out.write(f"=== {len(tasks)} tasks of the {name} loop ===\n")
        for task in sorted(tasks, key=lambda t: t.get_name()):
            coro = task.get_coro()
            out.write(f"--- {task.get_name()}: {getattr(coro, '__qualname__', coro)!s}\n")
            frames, awaited = await_chain(coro)
            if frames:
                summary = traceback.StackSummary.extract((frame, frame.f_lineno) for frame in frames[-TASK_FRAMES:])
                out.write("".join(summary.format()))
            else:
                out.write("    (no frame: not started, or done)\n")
            waiter = getattr(task, "_fut_waiter", None)  # the future the task is suspended on
            if waiter is not None or awaited is not None:
                out.write(f"    waiting on {waiter if waiter is not None else awaited!r}\n")
    return out.getvalue()
