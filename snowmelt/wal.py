"""A write-ahead log: records made durable in groups before they are acknowledged, replayed after a crash.

``snowmelt up`` appends each request's raw records here before it answers
2xx (:class:`~collector.sink.QueueSink`), replays what its output files do not
cover yet when it starts, and trims what they do.

Files: ``DIR/<first sequence number, 20 digits>.wal`` segments, each a run of
records::

    crc32 (4 bytes LE) | length (4) | sequence number (8) | kind (1) | payload (length bytes)

The CRC covers everything after it.  Sequence numbers grow by one per record
(a record whose write failed is cut off and its number given to the next).  A segment is
closed once it holds ``segment_bytes``; a closed segment is deleted once every
record in it is at or below the trimmed sequence number.  Reading stops at the
first record that is short or fails its CRC: that is where a crash cut the last
write, and the tail is cut off before anything new is appended.

Group commit: :meth:`WriteAheadLog.append` (on the event loop) writes the
records at once with one system call (into the page cache: microseconds, and
no thread to wake), then, by ``fsync`` policy:

``always`` (the default)
    returns a future that one syncer thread resolves after its next
    ``fdatasync``, which covers every request written before it started: an
    acknowledged record survives a kill -9, a kernel panic and a power cut.
``interval``
    nothing to wait for: written means it survives a kill -9 of the process;
    the syncer runs ``fdatasync`` at most every ``fsync_interval`` seconds, so a
    power cut loses up to that much.
``never``
    written, never synced by us: the operating system decides.

A write that fails (a full disk) is cut off the segment again and its
``OSError`` raised, so the caller refuses those records (503) and nothing
half-written is ever replayed.

:class:`DurableState` keeps a small JSON document (a checkpoint, a loader's
position) in two preallocated slots written in turn, so an update needs no new
disk space and a torn write leaves the previous state readable.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

log = logging.getLogger("snowmelt.wal")

HEADER = struct.Struct("<IIQB")  # crc32, payload length, sequence number, kind
_CRC = struct.Struct("<I")
FSYNC_POLICIES = ("always", "interval", "never")
SUFFIX = ".wal"


@dataclass
class _Segment:
    path: Path
    last_seq: int  # the number before the segment's first while it is empty


def _sealed(body: bytes) -> bytes:
    """``body`` after the CRC-32 of it (records and state slots alike)."""
    return _CRC.pack(zlib.crc32(body)) + body


def encode_record(seq: int, kind: int, payload: bytes) -> bytes:
    return _sealed(HEADER.pack(0, len(payload), seq, kind)[_CRC.size:] + payload)


def read_records(path: Path) -> tuple[list[tuple[int, int, bytes]], int]:
    """The whole records of the segment at ``path`` and the byte length they take (where a torn tail starts)."""
    data = path.read_bytes()
    records, pos, size = [], 0, len(data)
    while pos + HEADER.size <= size:
        crc, length, seq, kind = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if end > size or zlib.crc32(memoryview(data)[pos + 4:end]) != crc:
            break
        records.append((seq, kind, data[pos + HEADER.size:end]))
        pos = end
    return records, pos


class WriteAheadLog:
    """Segmented, CRC-checked, group-committed log of ``(kind, payload)`` records (see the module docstring)."""

    def __init__(self, directory: str | Path, fsync: str = "always", fsync_interval: float = 1.0,
                 segment_bytes: int = 64 * 1024 * 1024):
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync policy must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        self.directory = Path(directory)
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.segment_bytes = max(1, segment_bytes)
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._size = 0  # bytes in the open segment
        self._next_seq = 1
        self._lock = threading.Condition()
        self._waiters: list[asyncio.Future] = []
        self._retired: list[int] = []  # descriptors of closed segments, to sync and close
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._synced_at = time.monotonic()
        self._unsynced = False
        self._failing_since: float | None = None

    # ------------------------------------------------------------------ opening and replay

    def open(self) -> None:
        """Find the segments, cut a torn tail off the last one, open it for appending.

        Only the last segment is read: each earlier one ends just before the
        number the next one is named after.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        firsts = sorted(int(p.stem) for p in self.directory.glob("*" + SUFFIX) if p.stem.isdigit())
        length = 0
        for first, following in zip(firsts, firsts[1:]):
            self._segments.append(_Segment(self._path(first), following - 1))
        if firsts:
            path = self._path(firsts[-1])
            records, length = read_records(path)
            if length < path.stat().st_size:
                log.warning("%s ends in a torn write (%d bytes cut off): the process stopped mid-write",
                            path, path.stat().st_size - length)
                with open(path, "r+b") as f:
                    f.truncate(length)
            self._segments.append(_Segment(path, records[-1][0] if records else firsts[-1] - 1))
            self._next_seq = self._segments[-1].last_seq + 1
        if self._segments and length < self.segment_bytes:
            self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND)
            self._size = length
        else:
            self._roll()

    def _path(self, first: int) -> Path:
        return self.directory / f"{first:020d}{SUFFIX}"

    def replay(self, after: int) -> Iterator[tuple[int, int, bytes]]:
        """The records with a sequence number above ``after``, in order, one segment in memory at a time."""
        for segment in list(self._segments):
            if segment.last_seq <= after:
                continue
            records, length = read_records(segment.path)
            if length < segment.path.stat().st_size:
                log.error("%s is damaged after %d bytes; the records after that point are skipped",
                          segment.path, length)
            for record in records:
                if record[0] > after:
                    yield record

    @property
    def last_seq(self) -> int:
        """The highest sequence number handed out so far."""
        return self._next_seq - 1

    def skip_to(self, seq: int) -> None:
        """Hand out numbers above ``seq`` from now on (a checkpoint may be ahead of a log that lost its tail)."""
        self._next_seq = max(self._next_seq, seq + 1)

    def _roll(self) -> None:
        """Start a new segment; the old one is synced and closed by the syncer (or here before it runs)."""
        if self._fd is not None:
            with self._lock:
                self._retired.append(self._fd)
                self._lock.notify()
            if self._thread is None:
                self._sync_retired()
        path = self._path(self._next_seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = 0
        with self._lock:
            self._segments.append(_Segment(path, self._next_seq - 1))
        _sync_directory(self.directory)

    # ------------------------------------------------------------------ appending

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the syncer thread; futures resolve on ``loop``."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="snowmelt-wal-sync", daemon=True)
        self._thread.start()

    def append(self, records: Sequence[tuple[int, bytes]]) -> tuple[int, asyncio.Future | None]:
        """Write ``records`` (kind, payload); (first sequence number, future resolved once they are durable).

        Called on the event loop: the bytes are written at once (to the page
        cache, microseconds) and, with ``fsync`` ``always``, the future resolves
        after the syncer's next ``fdatasync`` (one for every request written
        meanwhile); with the other policies there is nothing to wait for (None).
        A failed write raises its ``OSError`` after cutting the segment back.
        Futures resolve in sequence order.
        """
        first = self._next_seq
        data = b"".join([encode_record(first + i, kind, payload) for i, (kind, payload) in enumerate(records)])
        before = self._size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._failed(exc, before)
            raise
        if self._failing_since is not None:
            log.info("writing the write-ahead log again after %.1fs of failures", time.monotonic() - self._failing_since)
            self._failing_since = None
        self._next_seq += len(records)
        self._size = before + len(data)
        self._segments[-1].last_seq = self._next_seq - 1
        if self._size >= self.segment_bytes:
            try:
                self._roll()
            except OSError:
                log.exception("cannot start a new write-ahead log segment; appending to the current one")
        if self.fsync != "always":
            if self.fsync == "interval" and not self._unsynced:
                with self._lock:
                    self._unsynced = True
                    self._lock.notify()
            return first, None
        future = self._loop.create_future()
        with self._lock:
            self._waiters.append(future)
            self._lock.notify()
        return first, future

    def _failed(self, exc: OSError, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError:
            log.exception("cannot cut the write-ahead log back to %d bytes after a failed write", size)
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("cannot write the write-ahead log (%s): requests are answered 503 until it can be "
                        "written", exc)

    def _run(self) -> None:
        """The syncer: ``fdatasync`` for the requests waiting (group commit), retired segments, intervals."""
        while True:
            with self._lock:
                while not self._waiters and not self._retired and not self._stopping:
                    timeout = None
                    if self._unsynced:
                        timeout = self._synced_at + self.fsync_interval - time.monotonic()
                        if timeout <= 0:
                            break
                    self._lock.wait(timeout)
                if self._stopping and not self._waiters:
                    return
                waiters, fd = self._waiters, self._fd
                self._waiters = []
                self._unsynced = False
            error = None
            try:
                self._sync_retired()
                if waiters or self.fsync == "interval":
                    os.fdatasync(fd)
            except OSError as exc:
                log.error("cannot sync the write-ahead log: %s", exc)
                error = exc
            self._synced_at = time.monotonic()
            if waiters:
                try:
                    self._loop.call_soon_threadsafe(_resolve, waiters, error)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass

    def _sync_retired(self) -> None:
        with self._lock:
            retired, self._retired = self._retired, []
        for fd in retired:
            try:
                if self.fsync != "never":
                    os.fdatasync(fd)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ trimming and closing

    def trim(self, upto: int) -> int:
        """Delete the closed segments whose records are all at or below ``upto``; how many were deleted."""
        deleted = 0
        with self._lock:
            while len(self._segments) > 1 and self._segments[0].last_seq <= upto:
                segment = self._segments.pop(0)
                try:
                    segment.path.unlink()
                    deleted += 1
                except FileNotFoundError:
                    pass
        return deleted

    def close(self) -> None:
        """Stop the syncer (resolving what waits for it), sync and close the segments."""
        if self._thread is not None:
            with self._lock:
                self._stopping = True
                self._lock.notify()
            self._thread.join()
            self._thread = None
        self._sync_retired()
        if self._fd is not None:
            try:
                if self.fsync != "never":
                    os.fdatasync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None


def _resolve(waiters: list[asyncio.Future], error: OSError | None) -> None:
    for future in waiters:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- small durable state


class DurableState:
    """A JSON document of at most ``slot_bytes - 16`` bytes in a two-slot file (see the module docstring).

    Each slot: crc32 (4) | generation (8) | length (4) | JSON.  :meth:`load`
    returns the valid slot with the highest generation; :meth:`save` writes the
    other slot in place (the file is preallocated, so a full disk cannot refuse
    it), with ``fdatasync`` when ``sync``.
    """

    SLOT = struct.Struct("<IQI")

    def __init__(self, path: str | Path, sync: bool = True, slot_bytes: int = 4096):
        self.path = Path(path)
        self.sync = sync
        self.slot_bytes = slot_bytes
        self._fd: int | None = None
        self._generation = 0

    def load(self) -> dict | None:
        """The last state saved, or None when there is none (no file, or no valid slot)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        best = None
        for slot in range(2):
            chunk = data[slot * self.slot_bytes:(slot + 1) * self.slot_bytes]
            if len(chunk) < self.SLOT.size:
                continue
            crc, generation, length = self.SLOT.unpack_from(chunk)
            body = chunk[4:self.SLOT.size + length]
            if length > self.slot_bytes - self.SLOT.size or zlib.crc32(body) != crc:
                continue
            if best is None or generation > best[0]:
                best = (generation, chunk[self.SLOT.size:self.SLOT.size + length])
        if best is None:
            return None
        self._generation = best[0]
        return json.loads(best[1])

    def save(self, state: dict) -> None:
        body = json.dumps(state, separators=(",", ":")).encode()
        if len(body) > self.slot_bytes - self.SLOT.size:
            raise ValueError(f"{self.path}: a state of {len(body)} bytes does not fit a slot")
        if self._fd is None:
            self.load()  # the generation to follow
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(self._fd).st_size < 2 * self.slot_bytes:  # new (or cut short)
                os.ftruncate(self._fd, 2 * self.slot_bytes)
                os.posix_fallocate(self._fd, 0, 2 * self.slot_bytes)
                os.fsync(self._fd)
                _sync_directory(self.path.parent)
        self._generation += 1
        slot = _sealed(self.SLOT.pack(0, self._generation, len(body))[_CRC.size:] + body)
        os.pwrite(self._fd, slot, (self._generation % 2) * self.slot_bytes)
        if self.sync:
            os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
