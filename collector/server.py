"""Running the collector: listen, serve until SIGTERM/SIGINT, then drain.

Shutdown order: stop accepting connections, let in-flight requests finish
(their records are then safe or answered 503), flush the producer within the
grace period, exit.  A 2xx that was sent is never lost to a shutdown.
"""
from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from collector.app import make_app
from collector.sink import KafkaSink, Sink
from snowmelt.config import Config

log = logging.getLogger("snowmelt.collector")



async def serve(config: Config, sink: Sink | None = None, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None, reuse_port: bool = False) -> None:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None)."""
    cc = config.collector
    sink = sink if sink is not None else KafkaSink(config)
    app = make_app(config, sink)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=cc.shutdown_grace,
                           handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, cc.host, cc.port, reuse_port=reuse_port or None, backlog=1024)
    await site.start()
    log.info("collector listening on %s:%d (delivery=%s, topic=%s)", cc.host, cc.port, cc.delivery,
             config.topics.raw)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("collector stopping: draining in-flight requests and the producer")
        await runner.cleanup()
        log.info("collector stopped")


def run(config: Config, reuse_port: bool = False) -> None:
    try:
        import uvloop  # type: ignore
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(config, reuse_port=reuse_port))
