"""The store of ``snowmelt up``: ClickHouse's engine (chdb) and S3-layout files under the data dir.

The Kafka path has loader processes consuming the enriched and bad topics
(``loaders/runner.py``); ``snowmelt up`` has no broker, so :class:`LocalLoader`
reads the daily files (:mod:`snowmelt.up_files`) the way a loader reads a
partition, and writes what it reads to the same stores the loaders use --
:class:`~loaders.clickhouse.ClickHouseStore` on chdb under ``DATA_DIR/clickhouse``
and :class:`~loaders.s3.S3Store` with the local-folder backend under
``DATA_DIR/s3`` -- on its own thread, every ``interval`` seconds or
``batch_size`` lines, so that neither the collector nor the enrichment waits
for an insert.

It reads only as far as the last checkpoint (what a restart never cuts off the
files).  Each store has a position per kind in ``DATA_DIR/stores/<store>.position``
(a :class:`~snowmelt.wal.DurableState`): the file and byte offset it has
loaded up to and, while a batch is being written, the batch's end and time.
A batch is named by its file and byte range (``Batch.token``: topic
``up-<day>``, offsets in bytes), which the stores use to deduplicate, and the
range is saved before the write: after a crash the same range is written
again under the same token, so the store holds each line once.  A store that
is unavailable (a full disk, however the store reports it: ``ENOSPC`` or
chdb's ``NOT_ENOUGH_SPACE``) keeps its position and is retried at the next
tick; the daily files hold every record whatever happens to the stores.  On
shutdown :meth:`LocalLoader.close` loads everything the checkpoint covers
before returning.
"""
from __future__ import annotations

import errno
import logging
import threading
import time
from pathlib import Path

from loaders.base import Batch, Lines, Store, StoreUnavailable
from snowmelt.up_files import KINDS, Extents
from snowmelt.wal import DurableState

log = logging.getLogger("snowmelt.up.store")

#: Bytes read from a file for one batch at most (a bad row is at most 1 MB; a longer line is read whole).
#: Small enough that no single step of a batch (splitting, joining, encoding) holds the interpreter's
#: lock for long while the event loop beside it answers trackers: 20 MB batches held it 20-30 ms.
MAX_READ = 4 * 1024 * 1024


def _disk_full(exc: BaseException | None) -> bool:
    """True when ``exc`` (or its cause) is a full disk: ENOSPC or EDQUOT, or ClickHouse's NOT_ENOUGH_SPACE
    (code 243, what chdb raises), which passes once space is freed, like :class:`StoreUnavailable`."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc)
        if "NOT_ENOUGH_SPACE" in text or "Code: 243." in text:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _token_prefix(name: str) -> str:
    """The "topic" of a daily file's batches (their tokens are ``up-<day>-0-<start>-<end>``)."""
    return f"up-{name.rsplit('.', 1)[0]}"


class LocalLoader:
    """Loads the daily files under ``root`` into ``stores`` on a thread, as far as :meth:`advance` allows."""

    def __init__(self, stores: list[Store], root: Path, *, interval: float = 1.0, batch_size: int = 20_000,
                 sync: bool = True):
        self.stores = list(stores)
        self.root = Path(root)
        self.interval = interval
        self.batch_size = max(1, batch_size)
        self._states = {store.name: DurableState(self.root / "stores" / f"{store.name}.position", sync=sync)
                        for store in self.stores}
        self._positions: dict[str, dict] = {}
        self._limit: Extents = {kind: None for kind in KINDS}
        self._lines_waiting = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, initial: Extents | None = None) -> None:
        """Open the stores and read their positions; a store without one starts at ``initial`` (or the start)."""
        for store in self.stores:
            store.open()
        for store in self.stores:
            state = self._states[store.name]
            position = state.load()
            if position is None:
                position = {}
                for kind in KINDS:
                    end = (initial or {}).get(kind)
                    position[kind] = {"file": end[0], "offset": end[1]} if end else {"file": None, "offset": 0}
                state.save(position)
            self._positions[store.name] = position
        self._thread = threading.Thread(target=self._run, name="snowmelt-up-store", daemon=True)
        self._thread.start()

    def advance(self, ends: Extents, lines: int = 0) -> None:
        """The files are durable up to ``ends`` (a checkpoint); ``lines`` were added since the last call."""
        with self._lock:
            self._limit = {kind: (list(v) if v is not None else None) for kind, v in ends.items()}
            self._lines_waiting += lines
            full = self._lines_waiting >= self.batch_size
        if full:
            self._wake.set()

    # ------------------------------------------------------------------ reading the files

    def _next_file(self, kind: str, after: str | None, last: str) -> str | None:
        """The first file of ``kind`` named after ``after`` (any, when None) and at most ``last``."""
        later = sorted(p.name for p in (self.root / kind).glob(f"*.{KINDS[kind]}")
                       if (after is None or p.name > after) and p.name <= last)
        return later[0] if later else None

    def _next_batch(self, kind: str, position: dict, limit: list | None) -> Batch | None:
        """The next lines after ``position`` (moved on to the next file when one is done), or None."""
        if limit is None:
            return None
        while True:
            name, offset = position["file"], position["offset"]
            path = self.root / kind / name if name is not None else None
            present = path is not None and path.exists()
            end = (limit[1] if name == limit[0] else path.stat().st_size) if present else 0
            if not present or offset >= end:  # not there, or read to its end: the next file, if any
                following = self._next_file(kind, name, limit[0]) if name is None or name < limit[0] else None
                if following is None:
                    return None
                if name is not None and not present:
                    log.warning("%s/%s is gone; the store goes on with %s", kind, name, following)
                position.update(file=following, offset=0)
                continue
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(min(end - offset, MAX_READ))
                while b"\n" not in data and end - offset > len(data):  # a line longer than MAX_READ: whole
                    data += f.read(min(end - offset - len(data), MAX_READ))
            if len(data) > MAX_READ and b"\n" in data:  # that line alone
                data = data[:data.index(b"\n") + 1]
            cut = data.rfind(b"\n") + 1  # the lines read whole
            if not cut:
                log.error("%s: no complete line between bytes %d and %d; the store skips them", path, offset, end)
                position["offset"] = end
                continue
            lines = Lines(data[:cut] if cut < len(data) else data)
            if cut > self.batch_size and len(lines) > self.batch_size:  # more lines than a batch takes: the first
                values = data.split(b"\n", self.batch_size)
                cut = len(data) - len(values.pop())
                lines = Lines(data[:cut])
            return Batch(kind, _token_prefix(name), 0, offset, offset + cut - 1, lines, int(time.time() * 1000))

    @staticmethod
    def _batch(kind: str, name: str, start: int, end: int, timestamp_ms: int, data: bytes) -> Batch:
        if data and not data.endswith(b"\n"):  # the file was cut short since (by hand): what is left of the line
            data += b"\n"
        return Batch(kind, _token_prefix(name), 0, start, end - 1, Lines(data), timestamp_ms)

    def _reread(self, kind: str, position: dict) -> Batch:
        """The batch in flight at ``position`` (saved before its write), read again with the same bytes."""
        path = self.root / kind / position["file"]
        with open(path, "rb") as f:
            f.seek(position["offset"])
            data = f.read(position["end"] - position["offset"])
        return self._batch(kind, position["file"], position["offset"], position["end"], position["ts"], data)

    # ------------------------------------------------------------------ writing

    def flush(self) -> None:
        """Load each store up to the limit (a store that is unavailable is left for the next try)."""
        with self._lock:
            limit = dict(self._limit)
            self._lines_waiting = 0
        for store in self.stores:
            self._load(store, limit)

    def _load(self, store: Store, limit: Extents) -> None:
        positions, state = self._positions[store.name], self._states[store.name]
        for kind in KINDS:
            position = positions[kind]
            while True:
                if position.get("end") is not None:
                    batch = self._reread(kind, position)
                else:
                    batch = self._next_batch(kind, position, limit.get(kind))
                    if batch is None:
                        break
                    position.update(end=batch.last_offset + 1, ts=batch.first_timestamp_ms)
                    state.save(positions)
                try:
                    store.write(batch)
                except Exception as exc:
                    if isinstance(exc, StoreUnavailable) or _disk_full(exc):
                        log.warning("%s unavailable (%s): batch %s waits for the next try", store.name, exc,
                                    batch.token)
                        return
                    # a bug or a row the store refuses: the daily files still have it
                    log.exception("%s could not write batch %s; it is in the daily files", store.name, batch.token)
                position["offset"] = position.pop("end")
                position.pop("ts", None)
                state.save(positions)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the store thread die
                log.exception("writing to the stores failed")

    def drain(self) -> None:
        """Stop the thread and load everything up to the limit (the stores stay open)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def close(self) -> None:
        """:meth:`drain`, then close the stores."""
        self.drain()
        for store in self.stores:
            store.close()
        for state in self._states.values():
            state.close()
