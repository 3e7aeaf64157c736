"""Noticing a partition whose records wait and are not read: a stall no other watch sees.

A consumer can be a member of its group, hold a partition, and still read
nothing from it: a partition left paused (librdkafka keeps a pause across a
revoke and a new assignment), a fetcher that lost its broker connection and
never asks again.  The role then holds nothing, so a watch of what it holds
(:meth:`loaders.runner.Loader.stalled_for`) sees nothing late, and the
membership watch (:mod:`snowmelt.membership`) sees a member.  The broker sees
it: the group's committed offset of that partition stays where it is while
the partition's end is past it.

:class:`BacklogWatch` keeps, for each partition the role holds, since when
records have waited past a committed offset that has not moved, from the
broker's answers (:meth:`snowmelt.membership.GroupDescriber.offsets`: the
committed offset, the partition's first offset when nothing was ever
committed, and the last stable offset).  A partition whose committed offset
moves, or that has nothing waiting, starts again; so does every partition when
the broker does not answer or the role may not be judged (it is stopping, its
store is down, a write is running).  After ``timeout`` seconds of one partition
waiting, the role exits with status 4 (:data:`snowmelt.lifecycle.EXIT_STALLED`)
and is restarted, reading from its committed offsets again.
"""
from __future__ import annotations

from dataclasses import dataclass

Partition = tuple[str, int]


@dataclass(frozen=True)
class Backlog:
    """A partition whose records have waited ``seconds`` past its committed offset ``committed``, which has
    not moved meanwhile; ``end`` is the partition's end then."""

    partition: Partition
    committed: int
    end: int
    seconds: float

    def __str__(self) -> str:
        topic, number = self.partition
        return (f"{topic}[{number}] has had {self.end - self.committed} records past its committed offset "
                f"{self.committed} for {self.seconds:.0f}s, and none of them was committed")


class BacklogWatch:
    """Since when each partition has had records waiting past a committed offset that has not moved."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._since: dict[Partition, tuple[int, float]] = {}  # partition -> (committed, waiting since)

    def check(self, offsets: dict[Partition, tuple[int, int]] | None, now: float) -> Backlog | None:
        """The partition that has waited longest, once it has waited ``timeout`` seconds as of ``now``;
        None otherwise.  ``offsets`` is ``partition -> (committed, end)`` of the partitions held, or None
        (not asked: every count starts again)."""
        if offsets is None:
            self._since.clear()
            return None
        since: dict[Partition, tuple[int, float]] = {}
        longest = None
        for partition, (committed, end) in offsets.items():
            if end <= committed:
                continue  # nothing waits
            before = self._since.get(partition)
            start = before[1] if before is not None and before[0] == committed else now
            since[partition] = (committed, start)
            if now - start >= self.timeout and (longest is None or now - start > longest.seconds):
                longest = Backlog(partition, committed, end, now - start)
        self._since = since
        return longest
