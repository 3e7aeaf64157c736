"""The stage of ``snowmelt up``: queue items through enrichment, shaped for the files and the API.

:class:`BatchEnricher` runs a batch of queue items (raw records, and the
collector's own bad rows) through :meth:`processor.stage.Enricher.enrich` and
returns a :class:`Batch`: the enriched TSV lines and bad rows for the files and
the stores, and the same events shaped for the Micro API.

:class:`StageProcess` runs it in a process of its own (``up.enrich_process``,
the default: a Python interpreter started afresh, sent batches and sending
back their output over two pipes as multiprocessing's connections do), so
that enriching -- CPU for the interpreter, one batch after another -- never
holds the interpreter lock the event loop needs to answer
trackers: a 1 MB request of 23,000 events that each become a bad row costs
seconds of CPU, and on a thread of the serving process it stretched every
other answer.  The process builds its own stage from the configured files
(the Iglu resolver config, the enrichments folder, the remote adapters);
a file that cannot be used is an error at start.  If the process dies (a
crash in native code, the kernel's OOM killer), it is started again and the
batch retried; a batch that kills it twice is split until the record that
does is found, and that record becomes a ``generic_error`` bad row.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Sequence

from collector.payloads import refit
from ext import decode_collector_payload
from processor import badrows
from processor.stage import Enricher
from snowmelt.lifecycle import ignore_stop_signals
from snowmelt.micro_shapes import GoodEntry, PrivacyView, collector_payload, raw_event
from snowmelt.up_files import Region, Spool, byte_lines

log = logging.getLogger("snowmelt.up")

Item = tuple  # ("raw" | "bad", bytes, write-ahead-log sequence number)

#: A batch's bad rows from this many bytes on come back from the stage process in a spool file (see Spool).
SPOOL_MIN_BYTES = 1 << 20


@dataclass(frozen=True)
class StageInfo:
    """What the stage was built with, for the start-up message: its enrichments (Snowplow's config names, in the
    order they run) and its Iglu repositories (in look-up order)."""

    enrichments: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()

    @classmethod
    def of(cls, enricher: Enricher) -> "StageInfo":
        return cls(tuple(e.name for e in enricher.enrichments), tuple(enricher.resolver.describe()))


@dataclass
class Batch:
    """What one batch of queue items became.

    Its bad rows are gathered in ``bad_rows`` and then sealed (:meth:`seal`)
    into ``bad_data``, one line each: one buffer crosses from the stage
    process and goes to the daily file as it is.  A request of 23,000 events
    that each become a bad row came back as 23,000 objects, and unpickling,
    joining and checking them held the serving process's interpreter for
    over 100 ms; the stage process does that work now.
    """

    good_lines: list[str] = field(default_factory=list)
    bad_rows: list[bytes] = field(default_factory=list)
    good: list[GoodEntry] = field(default_factory=list)  # for the Micro API
    bad_sources: list[dict | None] = field(default_factory=list)  # each bad row's collector payload, for the API
    records: int = 0
    last_seq: int = 0  # the highest write-ahead-log sequence number among its items (0 without the log)
    bad_data: bytes = b""  # the sealed bad rows, one line each
    bad_count: int = 0
    bad_spool: Spool | None = None  # or, from SPOOL_MIN_BYTES on, in a file the stage process wrote
    bad_region: Region | None = None  # where the bad rows went in the daily file, once written

    def seal(self) -> "Batch":
        """Move ``bad_rows`` into ``bad_data``."""
        if self.bad_rows:
            self.bad_data += byte_lines(self.bad_rows)
            self.bad_count += len(self.bad_rows)
            self.bad_rows = []
        return self

    def bad_output(self) -> bytes | Spool:
        """The sealed bad rows, as they are to be appended."""
        return self.bad_spool if self.bad_spool is not None else self.bad_data

    def spool(self, folder: str) -> "Batch":
        """Move ``bad_data`` into a spool file of ``folder`` when it is SPOOL_MIN_BYTES or more (kept as it is if
        the file cannot be written)."""
        if len(self.bad_data) >= SPOOL_MIN_BYTES:
            try:
                os.makedirs(folder, exist_ok=True)
                self.bad_spool, self.bad_data = Spool.write(folder, self.bad_data), b""
            except OSError as exc:
                log.warning("cannot spool %d bytes of bad rows to %s (%s); handing them over in memory",
                            len(self.bad_data), folder, exc)
        return self

    def unspooled(self) -> "Batch":
        """This batch with its spooled bad rows read back into ``bad_data`` and the spool removed."""
        if self.bad_spool is not None:
            self.bad_data, spool, self.bad_spool = self.bad_data + self.bad_spool.read(), self.bad_spool, None
            spool.remove()
        return self



class BatchEnricher:
    """Runs queue items through the stage and shapes the results for files and API (a thread or a process)."""

    def __init__(self, enricher: Enricher, record_limit: int | None = None):
        self.enricher = enricher
        self.privacy = PrivacyView.of(enricher.enrichments)
        # a raw record over this many bytes was taken whole by the collector (QueueSink(split_later=True)):
        # split here as the collector would have, its parts enriched and its oversized events bad rows
        self.record_limit = record_limit

    def run(self, items: list[Item]) -> Batch:
        with self.enricher.batch():  # the batch's schema look-ups share one time budget
            return self._run(items).seal()

    def _run(self, items: list[Item]) -> Batch:
        batch = Batch(last_seq=max(item[2] for item in items) if items else 0)
        limit = self.record_limit
        for kind, value, _seq in items:
            if kind == "bad":  # the collector's own bad rows (size_violation)
                self._add_bad(batch, value, None)
                continue
            batch.records += 1
            if limit is None or len(value) <= limit:
                self._enrich(batch, value)
                continue
            try:
                fitted = refit(decode_collector_payload(value), value, limit)
            except Exception as exc:  # the collector wrote it, so this is a bug: a bad row, the loop goes on
                log.exception("cannot split a record")
                self._add_bad(batch, badrows.generic_error(value, [repr(exc)]), None)
                continue
            for row in fitted.bad_rows:
                self._add_bad(batch, row, None)
            for part in fitted.payloads:
                self._enrich(batch, part)
        return batch

    def _enrich(self, batch: Batch, value: bytes) -> None:
        try:
            out = self.enricher.enrich(value)
        except Exception as exc:  # a bug in the stage: the record becomes a bad row, the loop goes on
            log.exception("the stage raised on a record")
            self._add_bad(batch, badrows.generic_error(value, [repr(exc)]), None)
            return
        cp = collector_payload(out.payload) if out.bad and out.payload is not None else None
        for row in out.bad:
            self._add_bad(batch, row, cp)
        for line, params in zip(out.good, out.sources):
            batch.good_lines.append(line)
            try:
                batch.good.append(GoodEntry.of(line, raw_event(out.payload, out.vendor, out.version, params),
                                               self.privacy))
            except Exception:  # the file has the line; the API skips what it cannot show
                log.exception("cannot shape an enriched event for the API")

    @staticmethod
    def _add_bad(batch: Batch, row_bytes: bytes, cp: dict | None) -> None:
        batch.bad_rows.append(row_bytes)
        batch.bad_sources.append(cp)  # one request's rows share its collector payload: pickled once


# --------------------------------------------------------------------------- in a process of its own

_in_child: BatchEnricher | None = None
_spool_dir: str | None = None


def _start_in_child(parent: int, resolver: str, enrichments: str, remote_adapters: Sequence,
                    logging_config=None, record_limit: int | None = None,
                    schema_cache: str | None = None, spool_dir: str | None = None) -> tuple[str, str] | tuple[int, StageInfo]:
    """Build the stage in the stage process; its process id and what it was built with, or (error type, message)
    when a configured file cannot be used."""
    global _in_child, _spool_dir
    _spool_dir = spool_dir
    threading.Thread(target=_exit_with, args=(parent,), name="snowmelt-stage-watchdog", daemon=True).start()
    if logging_config is not None:
        from snowmelt.logs import configure
        configure(logging_config)
    try:
        enricher = Enricher.from_files(resolver, enrichments, remote_adapters, schema_cache)
    except (ValueError, OSError) as exc:
        return type(exc).__name__, str(exc)
    _in_child = BatchEnricher(enricher, record_limit)
    return os.getpid(), StageInfo.of(enricher)


def _exit_with(parent: int) -> None:
    """End this process once ``parent`` is gone (a kill -9 of ``snowmelt up`` leaves nobody to stop it)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _run_in_child(items: list[Item]) -> Batch:
    batch = _in_child.run(items)
    return batch.spool(_spool_dir) if _spool_dir is not None else batch


def serve_requests(requests_fd: int, answers_fd: int) -> None:
    """The stage process's loop: each request read from ``requests_fd`` is a pickled ``(function, args)`` of
    a module-level function; its answer, pickled to ``answers_fd``, is ``(True, value)`` or ``(False,
    exception)``.  It ends when the requests' pipe closes (``snowmelt up`` stops it) or this process's parent
    is gone (see :func:`_exit_with`, which :func:`_start_in_child` starts)."""
    ignore_stop_signals()  # a terminal's Ctrl-C reaches the whole group: up drains through this process
    requests, answers = Connection(requests_fd, writable=False), Connection(answers_fd, readable=False)
    while True:
        try:
            request = requests.recv()
        except EOFError:
            return
        _answer(answers, *request)
        del request  # a batch's records are not kept while the next one is awaited


def _answer(answers: Connection, function, args) -> None:
    try:
        answer = (True, function(*args))
    except Exception as exc:
        answer = (False, exc)
    try:
        answers.send(answer)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an answer that cannot be pickled
        answers.send((False, RuntimeError(f"the stage process's answer cannot be sent: {exc!r}")))


class StageDied(Exception):
    """The stage process ended before it answered (a crash in native code, the kernel's OOM killer)."""


class StageProcess:
    """:class:`BatchEnricher` in a child process (see the module docstring)."""

    def __init__(self, resolver: str, enrichments: str, remote_adapters: Sequence = (), logging_config=None,
                 record_limit: int | None = None, schema_cache: str | None = None, spool_dir: str | None = None):
        # spool_dir: where large batches of bad rows are handed over (Spool); None hands everything over in memory
        self.args = (resolver or "", enrichments or "", tuple(dict(a) for a in remote_adapters), logging_config,
                     record_limit, schema_cache, spool_dir)
        self._child: subprocess.Popen | None = None
        self._requests: Connection | None = None  # this side's ends of the two pipes
        self._answers: Connection | None = None
        self._lock = threading.Lock()  # one request at a time
        # the thread requests wait on, so that a batch never waits for a thread of the loop's default executor
        self._caller = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="snowmelt-stage-caller")
        self.pid = 0
        self.restarts = 0
        self.info = StageInfo()  # what the stage was built with, once started

    def start(self) -> None:
        """Start the process and build the stage there; ``ValueError``/``OSError`` naming a file that cannot be used."""
        # A fresh interpreter (not a fork of a process with threads), a child of this process, which it watches:
        # it ends when this one does, even by kill -9.  Not multiprocessing's spawn, which starts a third process
        # (its resource tracker, 15 MB) that nothing here needs.  It finds this process's modules where this
        # process found them.
        requests_read, requests_write = os.pipe()
        answers_read, answers_write = os.pipe()
        path = [entry or os.getcwd() for entry in sys.path]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-c", "import sys; from snowmelt.up_stage import serve_requests; "
                 "serve_requests(int(sys.argv[1]), int(sys.argv[2]))", str(requests_read), str(answers_write)],
                stdin=subprocess.DEVNULL, pass_fds=(requests_read, answers_write), env=env)
        except BaseException:
            for fd in (requests_write, answers_read):
                os.close(fd)
            raise
        finally:
            os.close(requests_read)
            os.close(answers_write)
        self._requests = Connection(requests_write, readable=False)
        self._answers = Connection(answers_read, writable=False)
        try:
            answer = self._call(_start_in_child, os.getpid(), *self.args)
        except BaseException:
            self._stop_child()
            raise
        if isinstance(answer[0], int):
            self.pid, self.info = answer
        else:
            self._stop_child()
            kind, message = answer
            raise (OSError if kind in ("OSError", "FileNotFoundError", "PermissionError") else ValueError)(message)

    def _call(self, function, *args):
        """``function(*args)`` in the stage process (blocking); :class:`StageDied` if the process ends first."""
        with self._lock:
            if self._child is None:
                raise StageDied("the stage process is not running")
            try:
                self._requests.send((function, args))
                ok, value = self._answers.recv()
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                raise StageDied(f"the stage process ended ({self._child.poll()})") from exc
        if not ok:
            raise value
        return value

    async def _request(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._caller, self._call, function, *args)

    async def run(self, items: list[Item]) -> Batch:
        """Enrich ``items`` in the process; a record that kills it becomes a bad row (see the module docstring)."""
        try:
            return await self._submit(items)
        except StageDied:
            log.error("the stage process died on a batch of %d records; starting it again", len(items))
            await self._restart()
        return await self._isolate(items)

    async def _isolate(self, items: list[Item]) -> Batch:
        """``items`` once more; if the process dies again, halves of them until the record that kills it."""
        try:
            return await self._submit(items)
        except StageDied:
            await self._restart()
        if len(items) == 1:
            kind, value, seq = items[0]
            log.error("a record kills the stage process; it becomes a generic_error bad row")
            row = badrows.generic_error(value, ["the record stopped the enrichment process"]) \
                if kind == "raw" else value
            batch = Batch(last_seq=seq, records=1 if kind == "raw" else 0)
            BatchEnricher._add_bad(batch, row, None)
            return batch.seal()
        half = len(items) // 2
        return merge(await self._isolate(items[:half]), await self._isolate(items[half:]))

    def pids(self) -> list[int]:
        """The stage process's id (none while it is being started again)."""
        return [self.pid] if self._child is not None and self.pid else []

    async def _submit(self, items: list[Item]) -> Batch:
        return await self._request(_run_in_child, items)

    async def _restart(self) -> None:
        self.restarts += 1
        await asyncio.get_running_loop().run_in_executor(self._caller, self._stop_child)
        await asyncio.get_running_loop().run_in_executor(None, self.start)

    def _stop_child(self, timeout: float = 30.0) -> None:
        """End the process: its requests' pipe closed, it exits once its batch is done (killed after
        ``timeout`` seconds)."""
        with self._lock:
            child, self._child, self.pid = self._child, None, 0
            for pipe in (self._requests, self._answers):
                if pipe is not None:
                    pipe.close()
            self._requests = self._answers = None
        if child is not None:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def close(self) -> None:
        self._stop_child()
        self._caller.shutdown(wait=False)


def merge(first: Batch, second: Batch) -> Batch:
    """The output of two consecutive parts of a batch (sealed), as one."""
    first, second = first.unspooled(), second.unspooled()
    return Batch(first.good_lines + second.good_lines, [], first.good + second.good,
                 first.bad_sources + second.bad_sources, first.records + second.records,
                 max(first.last_seq, second.last_seq), first.bad_data + second.bad_data,
                 first.bad_count + second.bad_count)
