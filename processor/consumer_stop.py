"""Stopping the enrich worker's Kafka consumer (aiokafka, under Faust) even when aiokafka's close fails.

aiokafka 0.14's ``Fetcher.close`` cancels its pending fetch tasks and awaits
each.  A fetch that failed (the broker closed the connection: a broker restart,
an idle-connection reap) sleeps out ``retry_backoff_ms`` in its error handler,
outside the ``try`` that absorbs cancellation, so awaiting it re-raises
``CancelledError`` out of ``AIOKafkaConsumer.stop()``.  Under Faust that
exception ends the consumer thread before it signals that it stopped, and the
worker's shutdown waits out mode's 60 s stop timeout: SIGTERM then takes over a
minute, longer than a Kubernetes grace period.

:func:`stop_consumer` stops the consumer, and when that error comes from the
fetcher (not from a cancellation of the caller) finishes what ``stop()`` left
undone: the other fetch tasks and the client's connections.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return bool(cancelling()) if cancelling is not None else False


async def stop_consumer(consumer) -> None:
    """``await consumer.stop()`` for an ``aiokafka.AIOKafkaConsumer``, absorbing the fetcher's stray
    ``CancelledError`` (see the module docstring); a cancellation of the caller itself still propagates."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        if _being_cancelled():
            raise
        log.warning("the Kafka consumer's fetcher raised CancelledError while closing (a fetch was in its retry "
                    "back-off); closing the rest of it")
        fetcher = getattr(consumer, "_fetcher", None)
        for task in list(getattr(fetcher, "_pending_tasks", ())):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        client = getattr(consumer, "_client", None)
        if client is not None:
            await client.close()


def consumer_thread_class():
    """Faust's aiokafka consumer thread, stopping its consumer with :func:`stop_consumer`."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    class ConsumerThread(AIOKafkaConsumerThread):
        async def on_thread_stop(self) -> None:
            # what AIOKafkaConsumerThread.on_thread_stop does, with the consumer stopped by stop_consumer
            await super(AIOKafkaConsumerThread, self).on_thread_stop()
            if self._consumer is not None:
                await stop_consumer(self._consumer)

    return ConsumerThread
