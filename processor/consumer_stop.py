"""Stopping the enrich worker's Kafka consumer (aiokafka, under Faust) within a bound, even when aiokafka's close fails.

Two ways ``AIOKafkaConsumer.stop()`` kept the worker from exiting after SIGTERM:

* aiokafka 0.14's ``Fetcher.close`` cancels its pending fetch tasks and awaits
  each.  A fetch that failed (the broker closed the connection: a broker
  restart, an idle-connection reap) sleeps out ``retry_backoff_ms`` in its
  error handler, outside the ``try`` that absorbs cancellation, so awaiting it
  re-raises ``CancelledError`` out of ``stop()``.  Under Faust that exception
  ends the consumer thread before it signals that it stopped, and the worker's
  shutdown waits out mode's 60 s stop timeout.
* ``stop()`` waits on the broker without a bound of its own: leaving the group
  waits out the request timeout (40 s) on a broker that stopped answering, and
  the fetcher's routine can absorb the cancellation ``Fetcher.close`` sends it
  (it awaits fetch tasks that absorb theirs) and then wait for an assignment
  that never comes.

:func:`stop_consumer` gives ``stop()`` :data:`STOP_SECONDS`; then (or after that
stray ``CancelledError``) it cancels what is left of the consumer's tasks and
closes the client's connections itself.  The worker has committed its offsets
before the consumer stops, so nothing is lost; a consumer that did not leave
its group is dropped from it after the session timeout.  Both are longer than a
Kubernetes grace period (30 s) otherwise.
"""
from __future__ import annotations

import asyncio
import io
import logging

log = logging.getLogger(__name__)

#: longest wait for aiokafka's own ``stop()`` before the consumer is closed without it
STOP_SECONDS = 10.0
#: longest wait for each group of the consumer's tasks to end once cancelled
_CANCEL_SECONDS = 1.0


async def stop_consumer(consumer, timeout: float = STOP_SECONDS) -> None:
    """Stop an ``aiokafka.AIOKafkaConsumer`` within about ``timeout`` seconds (see the module docstring);
    a cancellation of the caller itself propagates."""
    stop = asyncio.ensure_future(consumer.stop())
    try:
        await asyncio.wait({stop}, timeout=timeout)
    except asyncio.CancelledError:
        stop.cancel()
        raise
    if stop.done():
        try:
            stop.result()
            return
        except asyncio.CancelledError:
            log.warning("the Kafka consumer's fetcher raised CancelledError while closing (a fetch was in its retry "
                        "back-off); closing the rest of it")
    else:
        log.warning("the Kafka consumer did not stop within %gs; closing its connections without it (it may not "
                    "have left its group: the group drops it after its session timeout). Stuck in:\n%s",
                    timeout, _stack(stop))
        stop.cancel()
        await _settle([stop])
    await _close(consumer)


async def _close(consumer) -> None:
    """What ``stop()`` leaves undone: the consumer's tasks cancelled, its client's connections closed."""
    consumer._closed = True
    fetcher = getattr(consumer, "_fetcher", None)
    coordinator = getattr(consumer, "_coordinator", None)
    tasks = [getattr(fetcher, "_fetch_task", None), *getattr(fetcher, "_pending_tasks", ())]
    tasks += [getattr(coordinator, name, None) for name in
              ("_coordination_task", "_heartbeat_task", "_commit_refresh_task")]
    tasks = [task for task in tasks if isinstance(task, asyncio.Future) and not task.done()]
    for task in tasks:
        task.cancel()
    await _settle(tasks)
    client = getattr(consumer, "_client", None)
    if client is not None:
        sync = getattr(client, "_sync_task", None)
        if sync is not None and not sync.done():
            sync.cancel()
            await _settle([sync])
        client._sync_task = None
        from aiokafka.conn import CloseReason

        closing = [conn.close(reason=CloseReason.SHUTDOWN) for conn in list(client._conns.values())]
        client._conns.clear()
        closing = [fut for fut in closing if isinstance(fut, asyncio.Future)]
        if closing:  # the sockets close on the next turns of the loop
            await asyncio.wait(closing, timeout=_CANCEL_SECONDS)


async def _settle(tasks) -> None:
    """Wait a moment for cancelled tasks to end; one that absorbs its cancellation is left behind."""
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=_CANCEL_SECONDS)
        for task in pending:
            log.warning("a Kafka consumer task did not end when cancelled: %r", task)


def _stack(task: asyncio.Future) -> str:
    out = io.StringIO()
    if isinstance(task, asyncio.Task):
        task.print_stack(limit=20, file=out)
    return out.getvalue()


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
