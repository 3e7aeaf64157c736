"""Which raw-topic offsets the enrich worker may commit.

A committed offset must mean that every record before it on its partition has
its output acknowledged by the broker.  Faust's own accounting does not hold
to that across rebalances: records fetched before a rebalance are dropped from
its buffers (or skipped, and acknowledged as if processed) on the assumption
that they are fetched again, but it only seeks back where the committed offset
is above 0; and it commits the first run of acknowledged offsets even when the
offset at the committed position itself was never acknowledged.  Each of
these lost a record now and then when workers joined or left under load.

So the worker keeps its own ledger, per partition it owns:

- ``base``: the offset to commit next, read from the broker when the partition
  is assigned (the group's committed offset, else where ``auto_offset_reset``
  starts); it advances only over offsets whose output was acknowledged
  (:meth:`OffsetLedger.release`), so the commit never passes a record that was
  not written, however the records arrived;
- ``next_seen``: the next offset the worker expects to receive.  A record that
  arrives past it means the records in between were dropped on the way
  (:meth:`OffsetLedger.arrived` returns the offset to seek back to); the
  records after the hole are processed anyway (their output only repeats), and
  the ones in the hole arrive again after the seek.

Exactly once (``OffsetLedger(exactly_once=True)``): a record's output is
committed in the same transaction as the offset after it, so a record may be
processed only when it is the next one of its partition: :meth:`accept`
drops a record of an earlier assignment, one below the next expected offset
(its output is already in a transaction) and one past it (a hole: the
records in between are read again first, and it arrives again after them),
as well as every record that arrives before the partition's base is known
(the partition is then read again from its base).

Kafka-client agnostic: partitions are any hashable key; times come from the
caller's clock.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field

# A partition whose hole has not been filled this long after a seek is sought again.
RESEEK_AFTER = 5.0


@dataclass
class _Partition:
    base: int | None = None                 # next offset to commit; None until read from the broker
    committed: int | None = None            # last offset committed (the broker's, at first)
    next_seen: int | None = None            # next offset expected to arrive (this generation)
    lowest_seen: int | None = None          # lowest offset that arrived before ``base`` was known
    released: set[int] = field(default_factory=set)   # acknowledged offsets at or past ``base``
    seeking_since: float | None = None      # when a seek back to ``next_seen`` was asked for


class OffsetLedger:
    """The committable offset of each partition this worker owns (see the module doc)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, exactly_once: bool = False):
        self._parts: dict[Hashable, _Partition] = {}
        self.exactly_once = exactly_once
        self.generation: int | None = None
        self._clock = clock
        self.holes = 0  # seeks asked for: records dropped before they reached the worker

    # -- ownership ---------------------------------------------------------------------------

    def assigned(self, tps: Iterable[Hashable], generation: int | None) -> None:
        """A new assignment: ``tps`` are owned from now on, with their base still to be read."""
        self.generation = generation
        self._parts = {tp: _Partition() for tp in tps}

    def revoked(self, tps: Iterable[Hashable]) -> None:
        for tp in tps:
            self._parts.pop(tp, None)

    def owned(self) -> list[Hashable]:
        return list(self._parts)

    def without_base(self) -> list[Hashable]:
        """Owned partitions whose base has not been read from the broker yet."""
        return [tp for tp, part in self._parts.items() if part.base is None]

    def set_bases(self, bases: Mapping[Hashable, int]) -> dict[Hashable, int]:
        """Record the broker's starting offsets; returns ``{tp: offset}`` to seek back to.

        A partition whose records began to arrive past its base before the base
        was known has a hole at its start.
        """
        seeks: dict[Hashable, int] = {}
        for tp, offset in bases.items():
            part = self._parts.get(tp)
            if part is None or part.base is not None:
                continue
            part.base = part.committed = offset
            part.released = {o for o in part.released if o >= offset}
            dropped = self.exactly_once and part.lowest_seen is not None  # accept() dropped them all
            if dropped or (part.lowest_seen is not None and part.lowest_seen > offset):
                part.next_seen = offset
                part.seeking_since = self._clock()
                self.holes += 1
                seeks[tp] = offset
            else:
                part.next_seen = max(offset, part.next_seen or offset)
        return seeks

    # -- records ----------------------------------------------------------------------------

    def arrived(self, tp: Hashable, offset: int, generation: int | None) -> int | None:
        """A record reached the worker; returns the offset to seek ``tp`` back to, if records were dropped."""
        part = self._parts.get(tp)
        if part is None or generation != self.generation:
            return None  # fetched for an earlier assignment: processed, but says nothing of this one
        if part.base is None:
            part.lowest_seen = offset if part.lowest_seen is None else min(part.lowest_seen, offset)
            part.next_seen = max(offset + 1, part.next_seen or 0)
            return None
        if offset <= part.next_seen:
            if offset == part.next_seen:
                part.seeking_since = None  # the hole's first record: the seek took effect
            part.next_seen = max(part.next_seen, offset + 1)
            return None
        now = self._clock()
        if part.seeking_since is not None and now - part.seeking_since < RESEEK_AFTER:
            return None  # already sought back: records fetched before the seek are still arriving
        part.seeking_since = now
        self.holes += 1
        return part.next_seen

    def accept(self, tp: Hashable, offset: int, generation: int | None) -> tuple[bool, int | None]:
        """Exactly once: ``(process it, offset to seek tp back to)`` for a record that reached the worker."""
        part = self._parts.get(tp)
        if part is None or generation != self.generation:
            return False, None  # fetched for an earlier assignment
        if part.base is not None and offset == part.next_seen:
            part.next_seen = offset + 1
            part.seeking_since = None
            return True, None
        if part.base is not None and offset < part.next_seen:
            return False, None  # already processed, or committed before the assignment
        return False, self.arrived(tp, offset, generation)

    def release(self, tp: Hashable, offsets: Iterable[int]) -> None:
        """The output of these records is acknowledged by the broker."""
        part = self._parts.get(tp)
        if part is None:
            return  # no longer owned: the new owner reads them again
        base = part.base
        if base is None:
            part.released.update(offsets)
        else:
            part.released.update(o for o in offsets if o >= base)

    # -- commits ----------------------------------------------------------------------------

    def committable(self) -> dict[Hashable, int]:
        """``{tp: offset}`` for every owned partition whose base moved past its last commit."""
        out: dict[Hashable, int] = {}
        for tp, part in self._parts.items():
            if part.base is None:
                continue
            base, released = part.base, part.released
            while base in released:
                released.discard(base)
                base += 1
            part.base = base
            if part.committed is None or base > part.committed:
                out[tp] = base
        return out

    def committed_offsets(self) -> dict[Hashable, int | None]:
        """The last committed offset of every owned partition (None while its base is unknown)."""
        return {tp: part.committed for tp, part in self._parts.items()}

    def committed(self, offsets: Mapping[Hashable, int]) -> None:
        for tp, offset in offsets.items():
            part = self._parts.get(tp)
            if part is not None:
                part.committed = offset
