"""The output files of ``snowmelt up`` and the checkpoint that ties them to its write-ahead log.

:class:`DailyFiles` appends enriched lines to ``DATA_DIR/enriched/YYYY-MM-DD.tsv``
(Snowplow's enriched TSV) and bad rows to ``DATA_DIR/bad/YYYY-MM-DD.jsonl`` (one
per line), UTC days, each append whole or cut off again.

:class:`Checkpoint` records, after each batch is appended, the sequence number
of the last write-ahead-log record whose output is in the files and where each
file ended then (``{"seq": S, "files": {"enriched": [name, size], "bad": ...}}``).
On start, :meth:`DailyFiles.restore` cuts the files back to those ends (output
of records after ``S`` that a crash left behind, which the log replays), so a
record's output is in the files exactly once; the log is trimmed up to ``S``;
the stores load only what a checkpoint covers (:mod:`snowmelt.up_store`).
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from loaders.base import is_utf8
from snowmelt.wal import DurableState

log = logging.getLogger("snowmelt.up.files")

#: kind -> file suffix, in the order a batch is appended
KINDS = {"enriched": "tsv", "bad": "jsonl"}

Extents = dict  # kind -> [file name, size] or None (no file yet)


def text_lines(lines: list[str]) -> bytes:
    """``lines`` (enriched TSV rows: one line each) as UTF-8 lines; a lone surrogate (a JSON escape such as
    ``\\udcff``) is written as '?', as Java's encoder does in Snowplow's enrich, so that an event's text can
    never make the append fail."""
    if not lines:
        return b""
    return ("\n".join(lines) + "\n").encode("utf-8", "replace")


def byte_lines(rows: list[bytes]) -> bytes:
    """``rows`` (bad rows: compact JSON) as lines, in C calls over the joined bytes (a request may make
    23,000 of them); a row that is not UTF-8 or holds a line break is mended row by row."""
    if not rows:
        return b""
    data = b"\n".join(rows) + b"\n"
    if data.count(b"\n") == len(rows) and (data.isascii() or is_utf8(data)):
        return data
    return "".join(r.decode("utf-8", "replace").replace("\n", " ") + "\n" for r in rows).encode("utf-8")




#: The folder of DATA_DIR where the stage process leaves large batches of bad rows (:class:`Spool`).
SPOOL_FOLDER = "spool"
#: How much of a file :meth:`DailyFiles.append` copies per system call, and :meth:`Region.last_lines` reads.
COPY_CHUNK = 1 << 20


class Spool:
    """Lines that the stage process left in a file of its own, for the serving process to append.

    A request of 23,000 events that each become a bad row makes 84 MB of
    them.  Through the process pool's pipe they were read 64 KB at a time
    into a growing buffer and unpickled, all under the serving process's
    interpreter lock: over a second of it per request, in which trackers
    waited for their answers.  From a spool file they are copied a megabyte
    per system call, the interpreter free meanwhile, and never held in memory.
    """

    __slots__ = ("path", "size")

    def __init__(self, path: str, size: int) -> None:
        self.path, self.size = path, size

    @classmethod
    def write(cls, folder: str | Path, data: bytes) -> "Spool":
        """``data`` in a new file of ``folder``."""
        fd, path = tempfile.mkstemp(prefix="batch-", suffix=".spool", dir=folder)
        try:
            with open(fd, "wb", buffering=0) as f:
                _write_all(f, memoryview(data))
        except BaseException:
            os.unlink(path)
            raise
        return cls(path, len(data))

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __len__(self) -> int:
        return self.size

    def __reduce__(self):
        return Spool, (self.path, self.size)


def clear_spools(folder: Path) -> int:
    """Remove the spool files a stopped process left in ``folder`` (their records are replayed from the log);
    how many."""
    removed = 0
    for path in folder.glob("*.spool"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


class Region:
    """Where a batch's lines went in a daily file, read back only when asked for (the Micro API's bad rows)."""

    __slots__ = ("path", "offset", "size")

    def __init__(self, path: str, offset: int, size: int) -> None:
        self.path, self.offset, self.size = path, offset, size

    def last_lines(self, n: int) -> list[bytes]:
        """The region's last ``n`` lines (without their line breaks), reading back from its end only as far as
        they go; none if the file is gone or shorter than it was."""
        if n <= 0 or self.size <= 0:
            return []
        parts: list[bytes] = []
        end, breaks = self.offset + self.size, 0
        try:
            with open(self.path, "rb", buffering=0) as f:
                while end > self.offset and breaks <= n:
                    start = max(self.offset, end - COPY_CHUNK)
                    chunk = os.pread(f.fileno(), end - start, start)
                    if len(chunk) != end - start:
                        return []
                    parts.append(chunk)
                    breaks += chunk.count(b"\n")
                    end = start
        except OSError:
            return []
        data = b"".join(reversed(parts))
        return data.split(b"\n")[:-1][-n:]


class DailyFiles:
    """Appends lines to ``<root>/<kind>/YYYY-MM-DD.<ext>`` (UTC), one open file per kind.

    The day never goes back (a clock stepped back keeps appending to the later
    day's file), so every file but the last of a kind is complete.
    """

    def __init__(self, root: Path, clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self.clock = clock
        self._open: dict[str, tuple[str, Any]] = {}
        self._day = ""
        #: where each kind's output ends: [file name, size], None before its first line
        self.ends: Extents = {kind: None for kind in KINDS}

    def path(self, kind: str) -> Path:
        day = datetime.fromtimestamp(self.clock(), timezone.utc).strftime("%Y-%m-%d")
        self._day = max(self._day, day)
        return self.root / kind / f"{self._day}.{KINDS[kind]}"

    def append(self, kind: str, data: bytes | Spool) -> tuple[Any, int] | None:
        """Append ``data`` (whole lines, or a :class:`Spool` of them) whole or not at all; returns (file, size
        before) for :meth:`write_batch`.

        A failed write (a full disk) is cut off the file again before the error
        is raised, so a retry never leaves half a line behind.
        """
        if not data:
            return None
        path = self.path(kind)
        current = self._open.get(kind)
        if current is None or current[0] != str(path):
            if current is not None:
                current[1].close()
            path.parent.mkdir(parents=True, exist_ok=True)
            # unbuffered: nothing is left in a buffer to be written (or lost) after a failure
            current = (str(path), open(path, "ab", buffering=0))
            self._open[kind] = current
        f = current[1]
        before = f.seek(0, 2)
        try:
            if isinstance(data, Spool):
                _copy(data, f)
            else:
                _write_all(f, memoryview(data))
        except BaseException:
            _cut(f, before)
            raise
        self.ends[kind] = [path.name, before + len(data)]
        return f, before

    def write_batch(self, good_lines: list[str], bad_rows: list[bytes] | bytes | Spool) -> Region | None:
        """Append a batch's good lines and bad rows, both or neither (a failure is raised); where the bad rows
        went."""
        ends = dict(self.ends)
        written = self.append("enriched", text_lines(good_lines))
        try:
            bad = self.append("bad", bad_rows if isinstance(bad_rows, (bytes, Spool)) else byte_lines(bad_rows))
        except BaseException:
            if written is not None:
                _cut(*written)
            self.ends = ends
            raise
        return Region(bad[0].name, bad[1], len(bad_rows)) if bad is not None else None

    def sync(self) -> None:
        """Make what was appended durable (before a checkpoint that covers it)."""
        for _path, f in self._open.values():
            os.fdatasync(f.fileno())

    def current_ends(self) -> Extents:
        """Where each kind's files end now, from the folders (for a data folder without a checkpoint)."""
        ends: Extents = {}
        for kind, suffix in KINDS.items():
            files = sorted((self.root / kind).glob(f"*.{suffix}"))
            ends[kind] = [files[-1].name, files[-1].stat().st_size] if files else None
        self.ends = dict(ends)
        return ends

    def restore(self, ends: Extents) -> int:
        """Cut each kind's files back to ``ends``: later files are removed, the end file truncated.

        Returns the bytes cut off (output a crash left behind past the checkpoint).
        """
        cut = 0
        for kind, suffix in KINDS.items():
            end = ends.get(kind)
            for f in sorted((self.root / kind).glob(f"*.{suffix}")):
                size = f.stat().st_size
                if end is None or f.name > end[0]:
                    cut += size
                    f.unlink()
                elif f.name == end[0] and size > end[1]:
                    cut += size - end[1]
                    with open(f, "r+b") as handle:
                        handle.truncate(end[1])
                        os.fdatasync(handle.fileno())
                elif f.name == end[0] and size < end[1]:
                    log.error("%s has %d bytes where the checkpoint says %d: it was changed or lost outside "
                              "snowmelt up", f, size, end[1])
            self.ends[kind] = list(end) if end is not None else None
            if end is not None:
                self._day = max(self._day, Path(end[0]).stem)
        if cut:
            log.info("cut %d bytes of output written after the last checkpoint; the write-ahead log has "
                     "their records", cut)
        return cut

    def close(self) -> None:
        for _path, f in self._open.values():
            f.close()
        self._open.clear()


def _write_all(f, view: memoryview) -> None:
    """All of ``view`` to the unbuffered file ``f`` (a write may take less than it is given)."""
    while view:
        view = view[f.write(view):]


def _copy(spool: Spool, f) -> None:
    """The spool's bytes to ``f``, a megabyte per system call (the interpreter is free during each); an
    ``OSError`` if the spool is shorter than it says."""
    buffer = bytearray(min(COPY_CHUNK, max(spool.size, 1)))
    left = spool.size
    with open(spool.path, "rb", buffering=0) as src:
        while left:
            n = src.readinto(memoryview(buffer)[:min(left, len(buffer))])
            if not n:
                raise OSError(f"the spool file {spool.path} ended {left} bytes early")
            _write_all(f, memoryview(buffer)[:n])
            left -= n


def _cut(f, size: int) -> None:
    """Truncate ``f`` back to ``size`` bytes (what a failed append added), logging if even that fails."""
    try:
        f.truncate(size)
    except OSError:
        log.exception("cannot cut %s back to %d bytes after a failed write", f.name, size)


class Checkpoint:
    """The last write-ahead-log sequence number whose output is in the files, and where they ended."""

    def __init__(self, path: Path, sync: bool = True):
        self.state = DurableState(path, sync=sync)
        self.seq = 0
        self.ends: Extents = {kind: None for kind in KINDS}
        self.existed = False

    def load(self) -> bool:
        """Read the last checkpoint; False when there is none (a new or older data folder)."""
        state = self.state.load()
        if state is None:
            return False
        self.seq = int(state["seq"])
        self.ends = {kind: state["files"].get(kind) for kind in KINDS}
        self.existed = True
        return True

    def save(self, seq: int, ends: Extents) -> None:
        self.state.save({"seq": seq, "files": {kind: ends.get(kind) for kind in KINDS}})
        self.seq = seq
        self.ends = {kind: (list(v) if v is not None else None) for kind, v in ends.items()}

    def close(self) -> None:
        self.state.close()
