"""snowmelt.stacks: the dump a worker writes on SIGUSR1 follows each task's awaits, on its own loop and others'."""
from __future__ import annotations

import asyncio
import threading

from snowmelt.stacks import format_stacks


async def _parked(event: asyncio.Event) -> None:
    await event.wait()


async def _outer(event: asyncio.Event) -> None:
    await _parked(event)


def test_a_task_s_stack_goes_down_its_awaits_on_a_loop_of_another_thread():
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def main():
        holder["event"] = asyncio.Event()
        asyncio.current_task().set_name("thread-main")
        task = asyncio.create_task(_outer(holder["event"]), name="parked-task")
        await asyncio.sleep(0)
        started.set()
        await task

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="other-loop-thread")
    thread.start()
    try:
        assert started.wait(10)
        dump = format_stacks({"other": loop, "absent": None})
    finally:
        loop.call_soon_threadsafe(holder["event"].set)
        thread.join(10)
        loop.close()
    assert "=== thread other-loop-thread ===" in dump
    assert "=== 2 tasks of the other loop ===" in dump
    parked = dump.split("--- parked-task:", 1)[1].split("\n--- ", 1)[0]
    # the task's own coroutine, the one it awaits, and asyncio's Event.wait, outermost first
    assert parked.index("in _outer") < parked.index("in _parked") < parked.index("in wait")
    assert "waiting on <Future pending" in parked
    assert "of the absent loop" not in dump
