"""Faust's consumer handing the enrich agent each partition's fetched records as one message.

Faust passes every fetched record through its consumer loop (a read-offset
check, a flow-control wait racing the delivery in new tasks), its conductor
(decoding, the topic queue) and the agent's stream on its own.  On one event
per raw record that path was most of the enrich worker's time (0.20x the
stage alone).  The agent batches anyway, so :class:`ChunkedGetmany` makes the
consumer yield one message per partition per fetch: its value is a
:class:`RecordChunk` (the records' offsets and values, in order), its offset
the chunk's last.  Group membership, assignment, pause and resume, flow
control, seeks and the commit loop stay Faust's.

How long a fetch waits is the worker's (:func:`fetch_waiting`): Faust asks the
broker for any data at all (``fetch_min_bytes`` 1), so below saturation each
fetch returned the one or two records that had just arrived, and every record
paid for a fetch request, a chunk and a batch of its own.

The raw topic is consumed with Faust's acknowledgements off: a message per
chunk would look to Faust like a gap per chunk, and what is committed is the
worker's :class:`processor.ledger.OffsetLedger`, which sees every offset.
For the same reason every chunk is passed on, even one below what Faust last
delivered (records read again after a seek back over a hole).
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass


def fetch_waiting(thread_class: type, min_bytes: int, max_wait_ms: int) -> type:
    """``thread_class`` (Faust's aiokafka consumer thread) whose consumer's fetches wait at the broker until
    ``min_bytes`` of records are there or ``max_wait_ms`` has passed, whichever comes first.

    Faust makes the consumer with ``fetch_max_wait_ms=1500`` and aiokafka's ``fetch_min_bytes`` of 1, and
    passes neither on from its settings: they are set on the consumer it made, which hands them to its
    fetcher when it starts."""

    class FetchWaitingThread(thread_class):  # type: ignore[valid-type, misc]
        def _create_worker_consumer(self, transport):
            consumer = super()._create_worker_consumer(transport)
            for name in ("_fetch_min_bytes", "_fetch_max_wait_ms"):
                if not hasattr(consumer, name):  # an aiokafka that keeps them elsewhere: say so at start-up
                    raise RuntimeError(f"aiokafka's consumer has no {name}: cannot set the enrich fetch settings")
            consumer._fetch_min_bytes = min_bytes
            consumer._fetch_max_wait_ms = max_wait_ms
            return consumer

    return FetchWaitingThread


@dataclass(slots=True)
class RecordChunk:
    """Consecutive fetched records of one partition: ``offsets[i]`` is the offset of ``values[i]``."""

    offsets: list[int]
    values: list[bytes]

    def __len__(self) -> int:
        return len(self.offsets)


class ChunkedGetmany:
    """Mixin for Faust's aiokafka consumer: ``getmany`` yields ``(tp, message of a RecordChunk)``.

    The checks Faust makes per record are made per chunk: the flow is active,
    the generation has not changed since the fetch, the partition is still
    active.  A chunk fetched before a seek may still arrive after it; the
    ledger recognises its records by offset (as it did one record at a time).

    Faust stops fetching a partition whose stream buffer is nearly full
    (``on_buffer_full``) and fetches it again once the buffer has drained to
    40 % (``on_buffer_drop``).  When that leaves no partition to fetch, Faust's
    consumer loop sleeps a whole second, while the agent empties the buffer in a
    few batches and then waits: a worker with one busy partition lost about a
    second each time.  Here the loop waits for a buffer to drain instead.
    """

    _drained: asyncio.Event | None = None  # set when a held-back partition may be fetched again

    def _drained_event(self) -> asyncio.Event:
        if self._drained is None:
            self._drained = asyncio.Event()
        return self._drained

    def on_buffer_drop(self, tp) -> None:
        super().on_buffer_drop(tp)  # type: ignore[misc]
        self._drained_event().set()

    def resume_partitions(self, tps) -> None:
        super().resume_partitions(tps)  # type: ignore[misc]
        self._drained_event().set()

    async def _wait_next_records(self, timeout: float):
        """Faust's, but for when every partition is held back by its full stream buffer: then it waits for
        one to drain (at most ``timeout``) instead of sleeping a second."""
        if self.flow_active and not self.app.client_only:
            drained = self._drained_event()
            drained.clear()
            if not self._get_active_partitions():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(drained.wait(), timeout)
                active = self._get_active_partitions()
                if not active:
                    return {}, active
        return await super()._wait_next_records(timeout)  # type: ignore[misc]

    async def getmany(self, timeout: float) -> AsyncIterator:  # type: ignore[override]
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            try:
                await self.perform_seek()  # as Faust: back to the committed offsets while the flow is stopped
            except Exception as exc:
                self.log.warning("exception performing seek when flow not active: %r", exc)
            return
        for tp, fetched in records.items():
            if not fetched:
                continue
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if active_partitions is not None and tp not in active_partitions \
                    and tp not in self._buffered_partitions:
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            message = self._to_message(tp, fetched[-1])
            message.value = RecordChunk([r.offset for r in fetched], [r.value for r in fetched])
            message.generation_id = generation_id
            # Faust's loop passes on only a message at or past the partition's read offset, which it sets after
            # each delivery: one that waited for room in a full stream buffer while the ledger sought back over
            # a hole sets it past the hole again, and the records read again would be dropped. Which records
            # count is the ledger's to say (it knows a repeat by its offset).
            self._read_offset[tp] = None
            yield tp, message
