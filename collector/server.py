"""Running the collector: listen, serve until SIGTERM/SIGINT, then drain.

Shutdown order: stop accepting connections, let in-flight requests finish
(their records are then safe, or they were answered 503), deliver what the
producer still buffers within the grace period, exit.  A 2xx that was sent is
never lost to a shutdown.
"""
from __future__ import annotations

import asyncio
import gc
import logging

from aiohttp import web

from collector.app import make_collector, make_server
from collector.kafka_sink import KafkaSink
from collector.sink import Sink
from snowmelt.config import Config
from snowmelt.lifecycle import wait_until_stopped
from snowmelt.residency import trim_heap_after_growth

log = logging.getLogger("snowmelt.collector")


async def serve(config: Config, sink: Sink | None = None, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None, reuse_port: bool = False) -> int:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None).

    Returns the number of records left undelivered at exit (0 unless the grace
    period ran out).
    """
    cc = config.collector
    sink = sink if sink is not None else KafkaSink(config)
    routes = make_collector(config, sink)
    await sink.start()
    runner = web.ServerRunner(make_server(routes), handle_signals=False, shutdown_timeout=cc.shutdown_grace)
    await runner.setup()
    site = web.TCPSite(runner, cc.host, cc.port, reuse_port=reuse_port or None, backlog=1024)
    await site.start()
    log.info("collector listening on %s:%d (delivery=%s, topic=%s)", cc.host, cc.port, cc.delivery,
             config.topics.raw)
    # megabyte requests (large bodies, batches split on threads) leave freed memory in malloc's arenas
    trimmer = asyncio.create_task(trim_heap_after_growth())
    try:
        await wait_until_stopped(stop, ready)
    finally:
        trimmer.cancel()
        log.info("collector stopping: draining in-flight requests and the producer")
        await runner.cleanup()
        left = await sink.close(cc.shutdown_grace)
        log.info("collector stopped (%d records undelivered)", left)
    return left


def run(config: Config, reuse_port: bool = False) -> int:
    # Requests allocate many short-lived objects and few cycles: collect the
    # young generation less often, and never scan what start-up allocated.
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)
    try:
        import uvloop  # type: ignore
        uvloop.install()
    except ImportError:
        pass
    left = asyncio.run(serve(config, reuse_port=reuse_port))
    return 1 if left else 0
