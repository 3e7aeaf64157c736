"""Noticing a role that has stopped working without an error: a partition whose records wait.

A consumer can stop handing its role records, or the role's commits stop
going through, with nothing logged: the role keeps answering ``/health`` and
the records waiting on its partitions wait for ever.  :class:`StallWatch` says
when that has gone on for ``timeout`` seconds: a partition the role holds has
records past its committed offset (the partition's end is above it), the
committed offset has not moved, and no batch has been in hand, the whole time.

Only a role with nothing in hand counts: a slow batch (an enrichment waiting
on a slow API) is work, not a stall, and a batch whose output the broker never
acknowledges already ends the enrich worker after ``message.timeout.ms``
(:func:`processor.worker.exit_uncommitted`).

Kafka-client agnostic: partitions are any hashable key; the caller gives the
committed offsets, the ends, the number of batches in hand and its clock's
time.  Both roles give the committed offsets they know (the enrich worker's
ledger, a loader's own commits) and an end that does not depend on their
consumer fetching: the broker's last stable offset
(:meth:`snowmelt.membership.GroupDescriber.ends`), the larger of it and the
consumer's high watermark for the enrich worker (:mod:`processor.worker`,
:mod:`loaders.runner`).
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Stalled:
    """A partition with records waiting and no progress for ``seconds``."""

    tp: Hashable
    committed: int
    high: int
    seconds: float

    def __str__(self) -> str:
        # (topic, partition): a loader's key, and Faust's TP, a named tuple
        name = "{}[{}]".format(*self.tp) if isinstance(self.tp, tuple) and len(self.tp) == 2 else str(self.tp)
        return (f"{name}: {self.high - self.committed} records waiting past committed offset {self.committed}, "
                f"none committed for {self.seconds:.0f}s")


class StallWatch:
    """Per partition: since when it has had records waiting, an unchanged commit and nothing in hand."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._since: dict[Hashable, tuple[int, float]] = {}  # tp -> (committed offset, waiting since)

    def check(self, committed: Mapping[Hashable, int | None], high: Callable[[Hashable], int | None],
              in_hand: int, now: float) -> list[Stalled]:
        """The partitions stalled for ``timeout`` seconds as of ``now``."""
        if in_hand:
            self._since.clear()
            return []
        stalled = []
        since = {}
        for tp, offset in committed.items():
            top = high(tp)
            if offset is None or top is None or top <= offset:
                continue  # caught up, or not known yet
            last = self._since.get(tp)
            started = last[1] if last is not None and last[0] == offset else now
            since[tp] = (offset, started)
            if now - started >= self.timeout:
                stalled.append(Stalled(tp, offset, top, now - started))
        self._since = since
        return stalled

    def reset(self) -> None:
        """Start every partition's count again (the broker was found unreachable: an outage, not a stall)."""
        self._since.clear()
