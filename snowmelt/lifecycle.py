"""Serving until told to stop: the same for every long-running role."""
from __future__ import annotations

import asyncio
import signal


async def wait_until_stopped(stop: asyncio.Event | None = None, ready: asyncio.Event | None = None) -> None:
    """Set ``ready``, then wait for ``stop`` -- or, when ``stop`` is None, for SIGTERM or SIGINT."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()
