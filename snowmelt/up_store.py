"""The store of ``snowmelt up``: ClickHouse's engine (chdb) and S3-layout files under the data dir.

The Kafka path has loader processes consuming the enriched and bad topics
(``loaders/runner.py``); ``snowmelt up`` has no broker, so :class:`LocalLoader`
takes each enriched batch's good lines and bad rows from the pipeline (after
they are appended to the daily files) and writes them to the same stores the
loaders use -- :class:`~loaders.clickhouse.ClickHouseStore` on chdb under
``DATA_DIR/clickhouse`` and :class:`~loaders.s3.S3Store` with the local-folder
backend under ``DATA_DIR/s3`` -- on its own thread, every ``interval`` seconds
or ``batch_size`` records, so that neither the collector nor the enrichment
waits for an insert.

Batches are named like the loaders' (``Batch.token``) with a topic that is
this run's start time, so a restart never reuses a token.  A store that is
unavailable (a full disk, however the store reports it: ``ENOSPC`` or chdb's
``NOT_ENOUGH_SPACE``) keeps its pending records and is retried at the next
tick; the daily files hold every record whatever happens to the stores.  On
shutdown :meth:`LocalLoader.close` writes what is pending before returning.
"""
from __future__ import annotations

import errno
import logging
import threading
import time
from dataclasses import dataclass, field

from loaders.base import BAD, ENRICHED, Batch, Store, StoreUnavailable

log = logging.getLogger("snowmelt.up.store")


@dataclass
class _Pending:
    kind: str
    values: list[bytes] = field(default_factory=list)
    next_offset: int = 0


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


class LocalLoader:
    """Buffers enriched lines and bad rows and writes them to ``stores`` on a thread."""

    def __init__(self, stores: list[Store], *, interval: float = 1.0, batch_size: int = 20_000):
        self.stores = list(stores)
        self.interval = interval
        self.batch_size = max(1, batch_size)
        self.topic = f"up-{int(time.time() * 1000)}"
        self._pending = {ENRICHED: _Pending(ENRICHED), BAD: _Pending(BAD)}
        # per store, the batches it has not written yet (kept across ticks while it is unavailable)
        self._backlog: dict[str, list[Batch]] = {store.name: [] for store in self.stores}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written: dict[str, int] = {store.name: 0 for store in self.stores}

    def start(self) -> None:
        for store in self.stores:
            store.open()
        self._thread = threading.Thread(target=self._run, name="snowmelt-up-store", daemon=True)
        self._thread.start()

    def add(self, good_lines: list[str], bad_rows: list[bytes]) -> None:
        """Queue a batch's output for the stores (called by the enrichment thread)."""
        with self._lock:
            self._pending[ENRICHED].values.extend(line.encode("utf-8", "replace") for line in good_lines)
            self._pending[BAD].values.extend(bad_rows)
            full = len(self._pending[ENRICHED].values) >= self.batch_size
        if full:
            self._wake.set()

    def _cut(self) -> list[Batch]:
        now_ms = int(time.time() * 1000)
        batches = []
        with self._lock:
            for pending in self._pending.values():
                if not pending.values:
                    continue
                first = pending.next_offset
                pending.next_offset += len(pending.values)
                batches.append(Batch(pending.kind, self.topic, 0, first, pending.next_offset - 1,
                                     tuple(pending.values), now_ms))
                pending.values = []
        return batches

    def flush(self) -> None:
        """Write everything pending to every store (retrying a store that was unavailable)."""
        batches = self._cut()
        for store in self.stores:
            backlog = self._backlog[store.name]
            backlog.extend(batches)
            while backlog:
                batch = backlog[0]
                try:
                    store.write(batch)
                except Exception as exc:
                    if not isinstance(exc, StoreUnavailable) and not _disk_full(exc):
                        # a bug or a row the store refuses: the daily files still have it
                        log.exception("%s could not write batch %s; it is in the daily files", store.name,
                                      batch.token)
                        backlog.pop(0)
                        continue
                    log.warning("%s unavailable (%s): %d batches wait for the next try",
                                store.name, exc, len(backlog))
                    break
                if batch.kind == ENRICHED:
                    self.written[store.name] += len(batch)
                backlog.pop(0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the store thread die
                log.exception("writing to the stores failed")

    def drain(self) -> None:
        """Stop the thread and write what is pending (the stores stay open)."""
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
