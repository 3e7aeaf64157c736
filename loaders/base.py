"""What every loader's store is: ``open``, ``write(batch)``, ``close``.

A loader (``loaders/runner.py``) consumes the enriched and bad topics in its
own consumer group, cuts each partition's records into :class:`Batch` es and
hands each to its :class:`Store`.  A partition's offsets are committed only
after ``write`` returned, so everything a store holds is at least once; what
makes it exactly once for the reader is the store's own idempotence:

- ``write`` must be safe to repeat with the same batch (after a crash or a
  retry): :attr:`Batch.token` names the batch deterministically (topic,
  partition, offset range), and the store uses it as its deduplication key
  (ClickHouse's ``insert_deduplication_token``, the S3 object key);
- ``write`` raises :class:`StoreUnavailable` when the store is down or too
  slow; the loader then pauses consumption, backs off and retries the same
  batch, so memory stays bounded and nothing is dropped.  Any other exception
  is a bug or bad configuration and stops the loader without committing.

Records are the topics' values as they are: enriched events are Snowplow's
131-field TSV lines (UTF-8, no newline), bad rows self-describing JSON.
"""
from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ENRICHED = "enriched"
BAD = "bad"


class StoreUnavailable(Exception):
    """The store cannot take the batch now (down, overloaded, timed out); retry it later."""


def is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8 (one C call, no text object kept)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class Lines(Sequence):
    """Records read as lines of a file (``snowmelt up``'s daily files): ``data`` is the lines as they are, each
    ended by a line break; split into values only when something asks for one.

    The stores that write lines as lines (bad rows into S3 and ClickHouse) take
    ``data`` whole: a 4 MB batch of bad rows was split into thousands of
    values and joined again twice, each step holding the interpreter for
    milliseconds while trackers waited for their answers.
    """

    __slots__ = ("data", "_count", "_values")

    def __init__(self, data: bytes) -> None:
        if data and not data.endswith(b"\n"):
            raise ValueError("Lines holds whole lines, each ended by a line break")
        self.data = data
        self._count: int | None = None  # counted when first asked for (a pass over the bytes)
        self._values: list[bytes] | None = None

    def __len__(self) -> int:
        if self._count is None:
            self._count = self.data.count(b"\n")
        return self._count

    def __bool__(self) -> bool:
        return bool(self.data)

    def __getitem__(self, index):
        if self._values is None:
            self._values = self.data[:-1].split(b"\n") if self.data else []
        return self._values[index]

    def __eq__(self, other) -> bool:
        return list(self) == list(other) if isinstance(other, (Sequence, Lines)) else NotImplemented

    __hash__ = None


@dataclass(frozen=True)
class Batch:
    """Consecutive records of one partition: offsets ``first_offset`` to ``last_offset`` inclusive.

    ``kind`` is :data:`ENRICHED` or :data:`BAD`; ``values`` are the record
    values in offset order (a tuple, or :class:`Lines` read from a file) (a compacted or transactional topic may leave gaps
    in the offsets, so ``len(values)`` can be less than the range).
    ``first_timestamp_ms`` is the Kafka timestamp of the first record: a time
    that is the same on every retry, for placing the batch (an S3 partition
    path) without reading the wall clock.
    ``prepared`` is what the store's :meth:`Store.prepare` made of the values
    (parsed rows, encoded objects), or None; it is the store's own, and only
    ever derived from the fields above.
    """

    kind: str
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    values: Sequence[bytes]
    first_timestamp_ms: int = 0
    prepared: Any = field(default=None, compare=False, repr=False)

    @property
    def token(self) -> str:
        """Deterministic name of this batch: the same records always get the same token."""
        return f"{self.topic}-{self.partition}-{self.first_offset}-{self.last_offset}"

    def __len__(self) -> int:
        return len(self.values)


class Store(abc.ABC):
    """A destination of batches (see the module docstring for the contract)."""

    #: names the store in logs and metrics ("clickhouse", "s3")
    name: str = "store"
    #: whether :meth:`prepare` runs on a writer thread, beside the write before, instead of on the loader's
    #: loop: for a preparation that mostly lets go of the interpreter's lock (compression), which then
    #: overlaps the loop's reading too.  One that holds the lock (parsing into Arrow) only slows the loop there.
    prepare_off_loop: bool = False

    @abc.abstractmethod
    def open(self) -> None:
        """Connect, create or migrate what the store needs; ``StoreUnavailable`` if it cannot yet."""

    def prepare(self, batch: Batch) -> Batch:
        """``batch`` with the work its write needs and the store does not (parsing, encoding) done: the loader
        calls it while the batch before is being written, so that work overlaps the write.

        Only the batch's fields and the store's configuration go into it (no I/O), so a prepared batch
        written twice is written the same.  The default prepares nothing.
        """
        return batch

    @abc.abstractmethod
    def write(self, batch: Batch) -> None:
        """Store ``batch`` durably; idempotent for the same :attr:`Batch.token`.  ``batch`` may or may not
        have been through :meth:`prepare`."""

    def close(self) -> None:
        """Release connections and files."""
