"""``snowmelt up``: the whole pipeline in one process, no broker.

One aiohttp server on one port serves the collector's tracking routes and a
Snowplow-Micro-compatible API.  The collector writes to a bounded
:class:`~collector.sink.QueueSink` instead of Kafka (a 2xx means the request's
records are in the queue; a full queue answers 503).  One consumer task takes
raw records off the queue in batches and runs each batch through the same
stage the Kafka path runs (:meth:`processor.stage.Enricher.enrich`) on one
worker thread: the stage costs about 27 us an event (48 us with the shaping
for the API; one core, tp2 batches of 50 page views), so a batch of 100 such
records is ~0.25 s of CPU -- too long to hold the event loop -- and an Iglu
look-up may block on HTTP.  On the thread, the loop keeps answering trackers
(the interpreter switches threads every 5 ms).  Each batch's output is
appended to ``DATA_DIR/enriched/YYYY-MM-DD.tsv`` (Snowplow's enriched TSV) and
``DATA_DIR/bad/YYYY-MM-DD.jsonl`` (one bad row per line; the collector's
size_violation rows included), flushed, and then kept in memory for the API
(the most recent ``up.max_events`` good events and bad rows).  A batch that
cannot be written (a full disk) is held and retried with backoff, each append
whole or cut off again; the queue behind it fills and the collector answers 503
until the write goes through, so nothing answered 2xx is dropped.

The Micro API (:mod:`snowmelt.micro`) and the live dashboard share the port;
they answer as :mod:`snowmelt.access` decides (a Host the server answers for,
then a local client or ``up.api_token``), the tracking routes answer anyone.

Shutdown (SIGTERM, Ctrl-C): stop accepting connections, let in-flight requests
finish, drain the queue through enrichment into the files, exit 0.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import fcntl
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from aiohttp import web

from collector.app import handler_args, make_collector
from collector.sink import QueueSink
from processor import badrows
from processor.stage import Enricher
from snowmelt import __version__
from snowmelt.access import host_refusal, is_loopback_host, token_refusal
from snowmelt.micro import (MicroApi, MicroStore, PrivacyView, bad_row_errors, collector_payload, good_event,
                            raw_event, raw_event_from_bad_row)
from snowmelt.config import Config
from snowmelt.dashboard import backend_query as dashboard_query
from snowmelt.lifecycle import wait_until_stopped

log = logging.getLogger("snowmelt.up")



# --------------------------------------------------------------------------- a batch's output


@dataclass
class Batch:
    """What one batch of queue items became."""

    good_lines: list[str] = field(default_factory=list)
    bad_rows: list[bytes] = field(default_factory=list)
    good: list[dict] = field(default_factory=list)
    bad: list[dict] = field(default_factory=list)
    records: int = 0



# --------------------------------------------------------------------------- the stage, per batch


class BatchEnricher:
    """Runs queue items through the stage and shapes the results for files and API (a worker thread)."""

    def __init__(self, enricher: Enricher):
        self.enricher = enricher
        self.privacy = PrivacyView.of(enricher.enrichments)

    def run(self, items: list[tuple[str, bytes]]) -> Batch:
        with self.enricher.batch():  # the batch's schema look-ups share one time budget
            return self._run(items)

    def _run(self, items: list[tuple[str, bytes]]) -> Batch:
        batch = Batch()
        for kind, value in items:
            if kind == "bad":  # the collector's own bad rows (size_violation)
                self._add_bad(batch, value, None)
                continue
            batch.records += 1
            try:
                out = self.enricher.enrich(value)
            except Exception as exc:  # a bug in the stage: the record becomes a bad row, the loop goes on
                log.exception("the stage raised on a record")
                self._add_bad(batch, badrows.generic_error(value, [repr(exc)]), None)
                continue
            cp = collector_payload(out.payload) if out.bad and out.payload is not None else None
            for row in out.bad:
                self._add_bad(batch, row, cp)
            for line, params in zip(out.good, out.sources):
                batch.good_lines.append(line)
                try:
                    event = good_event(line, raw_event(out.payload, out.vendor, out.version, params))
                    event["rawEvent"] = self.privacy.apply(event["rawEvent"], event["event"])
                    batch.good.append(event)
                except Exception:  # the file has the line; the API skips what it cannot show
                    log.exception("cannot shape an enriched event for the API")
        return batch

    @staticmethod
    def _add_bad(batch: Batch, row_bytes: bytes, cp: dict | None) -> None:
        batch.bad_rows.append(row_bytes)
        try:
            row = json.loads(row_bytes)
        except ValueError:
            row = {}
        data_payload = (row.get("data") or {}).get("payload")
        raw = None
        if isinstance(data_payload, dict) and isinstance(data_payload.get("raw"), dict):
            raw = raw_event_from_bad_row(data_payload["raw"])
        batch.bad.append({"collectorPayload": cp, "rawEvent": raw, "errors": bad_row_errors(row)})


# --------------------------------------------------------------------------- files


class DailyFiles:
    """Appends lines to ``<root>/<kind>/YYYY-MM-DD.<ext>`` (UTC), one open file per kind."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self.clock = clock
        self._open: dict[str, tuple[str, Any]] = {}

    def path(self, kind: str, suffix: str) -> Path:
        day = datetime.fromtimestamp(self.clock(), timezone.utc).strftime("%Y-%m-%d")
        return self.root / kind / f"{day}.{suffix}"

    def append(self, kind: str, suffix: str, lines: Iterable[str]) -> tuple[Any, int] | None:
        """Append ``lines`` whole or not at all; returns (file, size before) for :meth:`write_batch`.

        A failed write (a full disk) is cut off the file again before the error
        is raised, so a retry never leaves half a line behind.
        """
        # a lone surrogate (a JSON escape such as \\udcff) is written as '?', as Java's encoder does in
        # Snowplow's enrich: an event's text can never make the append fail
        data = "".join(line + "\n" for line in lines).encode("utf-8", "replace")
        if not data:
            return None
        path = self.path(kind, suffix)
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
            view = memoryview(data)
            while view:
                view = view[f.write(view):]
        except BaseException:
            _cut(f, before)
            raise
        return f, before

    def write_batch(self, batch: Batch) -> None:
        """Append the batch's good lines and bad rows, both or neither (a failure is raised)."""
        written = self.append("enriched", "tsv", batch.good_lines)
        try:
            self.append("bad", "jsonl", (r.decode("utf-8", "replace").replace("\n", " ") for r in batch.bad_rows))
        except BaseException:
            if written is not None:
                _cut(*written)
            raise

    def close(self) -> None:
        for _path, f in self._open.values():
            f.close()
        self._open.clear()


def _cut(f, size: int) -> None:
    """Truncate ``f`` back to ``size`` bytes (what a failed append added), logging if even that fails."""
    try:
        f.truncate(size)
    except OSError:
        log.exception("cannot cut %s back to %d bytes after a failed write", f.name, size)


# --------------------------------------------------------------------------- the pipeline


def make_local_loader(config: Config, data_dir: Path):
    """The stores of ``snowmelt up`` under ``data_dir``: chdb and S3-layout files (see ``snowmelt.up_store``)."""
    from loaders.clickhouse import ClickHouseStore
    from loaders.s3 import S3Store
    from snowmelt.up_store import LocalLoader

    clickhouse = dataclasses.replace(config.clickhouse, backend="chdb", chdb_path=str(data_dir / "clickhouse"))
    s3 = dataclasses.replace(config.s3, backend="local", local_dir=str(data_dir / "s3"))
    return LocalLoader([ClickHouseStore(clickhouse), S3Store(s3)], interval=config.up.store_interval,
                       batch_size=config.load.batch_size)


class Pipeline:
    """Queue -> stage -> files + memory, and the HTTP app in front of it."""

    def __init__(self, config: Config, enricher: Enricher, data_dir: str | Path | None = None):
        self.config = config
        up = config.up
        self.sink = QueueSink(up.queue_max_records,
                              min(config.collector.max_payload_size, config.kafka.max_message_bytes),
                              max_bytes=up.queue_max_bytes)
        self.batch_enricher = BatchEnricher(enricher)
        self.data_dir = Path(data_dir if data_dir is not None else up.data_dir)
        self.files = DailyFiles(self.data_dir)
        self.loader = make_local_loader(config, self.data_dir) if up.store else None
        # the ClickHouse store (chdb), shared by the loader, the SQL endpoint and the models
        self.clickhouse = self.loader.stores[0] if self.loader is not None else None
        self.models = None  # the models' refresher, once the store is open
        self.store = MicroStore(up.max_events)
        self.batch_size = max(1, up.batch_size)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="snowmelt-enrich")
        self._consumer: asyncio.Task | None = None
        self._progress: asyncio.Task | None = None
        self._memory: asyncio.Task | None = None
        # totals since start, for the progress line
        self.records_in = 0
        self.good_out = 0
        self.bad_out = 0
        self.items_done = 0  # queue items taken off and processed (written, or failed to write)

    # ------------------------------------------------------------------ consumer

    async def start(self) -> None:
        if self.loader is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._start_store)
        self._consumer = asyncio.create_task(self._consume(), name="snowmelt-up-consumer")
        interval = self.config.up.progress_interval
        if interval > 0:
            self._progress = asyncio.create_task(self._report(interval), name="snowmelt-up-progress")
        if self.config.up.memory_limit_mb > 0:
            self._memory = asyncio.create_task(self._watch_memory(self.config.up.memory_limit_mb),
                                               name="snowmelt-up-memory")

    async def _watch_memory(self, limit_mb: int) -> None:
        """Refuse new requests (503) while the resident memory is over 90 % of ``up.memory_limit_mb``."""
        page = os.sysconf("SC_PAGE_SIZE")
        threshold = limit_mb * 1024 * 1024 * 0.9
        while True:
            with open("/proc/self/statm", "rb") as f:
                resident = int(f.read().split()[1]) * page
            over = resident > threshold
            if over and self.sink.refusing is None:
                log.warning("resident memory %.0f MB is over 90%% of up.memory_limit_mb (%d): answering 503 until "
                            "it falls", resident / 2**20, limit_mb)
                self.sink.refusing = "memory"
            elif not over and self.sink.refusing == "memory":
                log.info("resident memory %.0f MB: accepting requests again", resident / 2**20)
                self.sink.refusing = None
            await asyncio.sleep(0.25)

    async def _consume(self) -> None:
        queue = self.sink.queue
        loop = asyncio.get_running_loop()
        while True:
            first = await queue.get()
            if first is None:
                return
            items = [first]
            stop = False
            while len(items) < self.batch_size and not queue.empty():
                item = queue.get_nowait()
                if item is None:
                    stop = True
                    break
                items.append(item)
            try:
                batch = await loop.run_in_executor(self._executor, self.batch_enricher.run, items)
            except Exception:  # a bug outside the per-record guard: say so loudly, keep serving
                log.exception("a batch of %d records could not be enriched", len(items))
                batch = None
            if batch is not None and await self._write(batch, len(items)):
                self.store.add(batch.good, batch.bad)
                self.records_in += batch.records
                self.good_out += len(batch.good_lines)
                self.bad_out += len(batch.bad_rows)
            self.items_done += len(items)
            self.sink.release(items)
            if stop:
                return

    async def _write(self, batch: Batch, items: int) -> bool:
        """Write ``batch`` to the files (and hand it to the store), retrying while that fails.

        A failed write (a full disk) is retried with backoff until it succeeds;
        meanwhile nothing leaves the queue, so the queue fills and the collector
        answers 503 instead of accepting what could not be kept.  Only while
        draining at shutdown is a batch given up, after ``collector.shutdown_grace``
        seconds of failures; False then.
        """
        loop = asyncio.get_running_loop()
        delay, failing_since = 0.05, None
        while True:
            try:
                await loop.run_in_executor(self._executor, self._process, batch)
            except Exception as exc:  # noqa: BLE001  (a full disk or any failed write: held and retried)
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    log.warning("cannot write a batch of %d records (%s); holding it and the queue behind it, "
                                "retrying until it can be written", items, exc)
                if self.sink.closed and now - failing_since > self.config.collector.shutdown_grace:
                    log.error("shutting down: a batch of %d records (%d events) could not be written and is "
                              "lost (%s)", items, len(batch.good_lines), exc)
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if failing_since is not None:
                log.info("writing again after %.1fs of failures", time.monotonic() - failing_since)
            return True

    def _process(self, batch: Batch) -> None:
        self.files.write_batch(batch)
        if self.loader is not None:
            self.loader.add(batch.good_lines, batch.bad_rows)

    async def _report(self, interval: float) -> None:
        last = (time.monotonic(), 0, 0, 0)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            t0, r0, g0, b0 = last
            dt = max(now - t0, 1e-9)
            if (self.records_in, self.good_out, self.bad_out) != (r0, g0, b0) or self.sink.buffer_fill():
                log.info("records in %.1f/s, good %.1f/s, bad %.1f/s, queued %d (totals %d/%d/%d)",
                         (self.records_in - r0) / dt, (self.good_out - g0) / dt, (self.bad_out - b0) / dt,
                         self.sink.buffer_fill(), self.records_in, self.good_out, self.bad_out)
            last = (now, self.records_in, self.good_out, self.bad_out)

    async def drain(self) -> None:
        """Refuse new records, enrich and write every queued one, stop the consumer."""
        await self.sink.close(0)
        for task in (self._progress, self._memory):
            if task is not None:
                task.cancel()
        if self._consumer is not None and not self._consumer.done():
            await self.sink.queue.put(None)  # after every accepted item
            await self._consumer
        self._executor.shutdown(wait=True)
        self.files.close()
        if self.loader is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._stop_store)

    def _start_store(self) -> None:
        from loaders.models import Models, ModelsRefresher

        self.loader.start()
        models = Models(self.clickhouse.backend, self.config.clickhouse.database, self.config.models)
        models.create()
        self.models = ModelsRefresher(models).start()

    def _stop_store(self) -> None:
        # everything loaded, then modelled, then the engine closed
        self.loader.drain()
        if self.models is not None:
            self.models.stop()
        self.loader.close()

    async def idle(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is empty and its items are processed (for tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.items_done == self.sink.accepted_raw + self.sink.accepted_bad:
                return True
            await asyncio.sleep(0.01)
        return False

    # ------------------------------------------------------------------ HTTP

    def make_app(self) -> web.Application:
        """Collector routes and the Micro API on one aiohttp application.

        The consumer starts and the queue drains with the application's
        start-up and clean-up.
        """
        config = self.config
        cc = config.collector
        if not cc.name:  # v_collector says which pipeline recorded the event
            config = dataclasses.replace(config, collector=dataclasses.replace(cc, name=f"snowmelt-{__version__}-up"))
        routes = make_collector(config, self.sink)
        app = web.Application(client_max_size=cc.drop_payload_size, handler_args=handler_args(cc),
                              middlewares=[api_guard(config.up.api_token, config.api.public_hosts,
                                                     dashboard=self.clickhouse is not None)])
        MicroApi(self.store).add_routes(app)
        if self.clickhouse is not None:  # the live dashboard at / (before the collector's catch-all)
            from snowmelt.dashboard import add_dashboard_routes

            async def query(sql: str) -> list[dict]:
                if self.clickhouse.backend is None:  # the store opens with the app
                    return []
                return await dashboard_query(self.clickhouse.backend)(sql)

            add_dashboard_routes(app, query, database=config.clickhouse.database)
        app.router.add_route("*", "/{tail:.*}", routes.dispatch)

        async def on_startup(_app):
            await self.start()

        async def on_cleanup(_app):
            await self.drain()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app


# --------------------------------------------------------------------------- access to the API

#: Paths that read or change what ``snowmelt up`` holds, rather than record events.
API_PATHS = ("/micro/", "/dashboard/data")
#: The dashboard's page and files: no data, but browser-facing (Host checked, no CORS).
PAGE_PATHS = ("/dashboard/",)


def api_guard(token: str, public_hosts: tuple[str, ...] = (), dashboard: bool = False):
    """Middleware: :data:`API_PATHS` per :func:`snowmelt.access.token_refusal`; tracking routes open.

    The dashboard's page (``/`` when ``dashboard``, and ``/dashboard/...``) is
    answered only for a Host the server answers for; a CORS preflight for any
    of these gets no permission (the collector's catch-all would grant one).
    """
    @web.middleware
    async def guard(request: web.Request, handler):
        path = request.path
        api = path.startswith(API_PATHS)
        if api or path.startswith(PAGE_PATHS) or (dashboard and path == "/"):
            if request.method == "OPTIONS":
                return web.Response(status=403, text="not open to pages of other origins\n")
            answer = token_refusal(request, token, public_hosts) if api else host_refusal(request, public_hosts)
            if answer is not None:
                return answer
        return await handler(request)
    return guard


# --------------------------------------------------------------------------- running


def bind(host: str, port: int, key: str, backlog: int = 1024) -> socket.socket:
    """A listening socket on ``host:port``, or ``OSError`` in one line naming the address and the key."""
    try:
        return socket.create_server((host, port), backlog=backlog, reuse_port=False)
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port} ({key}): {exc.strerror or exc}") from None


class DataDirLock:
    """An exclusive lock on ``data_dir/.lock`` (one ``snowmelt up`` per data folder), held while open."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / ".lock"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a+")
        except OSError as exc:
            raise OSError(f"cannot use the data folder {self.path.parent} (up.data_dir): "
                          f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise OSError(f"the data folder {self.path.parent} (up.data_dir) is in use by another snowmelt up "
                          f"(pid {holder}); stop it or choose another folder") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


async def start_sql_endpoint(config: Config, pipeline: Pipeline,
                             sock: socket.socket | None = None) -> web.AppRunner | None:
    """ClickHouse's HTTP interface over the store on ``up.sql_host:up.sql_port`` (None when off)."""
    up = config.up
    if not up.sql_port or pipeline.loader is None:
        if sock is not None:
            sock.close()
        return None
    from snowmelt.sql_endpoint import make_configured_sql_app

    app = make_configured_sql_app(pipeline.clickhouse.backend, config, readonly=up.sql_readonly, token=up.sql_token)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    if sock is None:
        sock = bind(up.sql_host, up.sql_port, "up.sql_port")
    await web.SockSite(runner, sock).start()
    log.info("SQL (ClickHouse HTTP interface) on http://%s:%d, %s%s", up.sql_host, up.sql_port,
             "read-only" if up.sql_readonly else "read-write", ", token required" if up.sql_token else "")
    return runner


async def serve(config: Config, enricher: Enricher, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> Pipeline:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT), then drain; returns the pipeline.

    Refuses (ValueError) a SQL endpoint bound beyond loopback without ``up.sql_token``.
    Before anything is created or opened, both ports are bound and the data
    folder locked: a port in use or a folder held by another ``snowmelt up``
    is an ``OSError`` in one line naming the port or the folder.
    """
    up = config.up
    if up.sql_port and up.store and not up.sql_token and not is_loopback_host(up.sql_host):
        raise ValueError(f"up.sql_host is {up.sql_host}: a SQL endpoint reachable from other hosts needs "
                         f"up.sql_token (or keep up.sql_host on 127.0.0.1)")
    sock = bind(config.collector.host, up.port, "up.port")
    sql_sock = None
    try:
        if up.sql_port and up.store:
            sql_sock = bind(up.sql_host, up.sql_port, "up.sql_port")
        lock = DataDirLock(Path(up.data_dir))
    except OSError:
        sock.close()
        if sql_sock is not None:
            sql_sock.close()
        raise
    try:
        return await _serve(config, enricher, sock, sql_sock, ready, stop)
    finally:
        lock.release()


async def _serve(config: Config, enricher: Enricher, sock: socket.socket, sql_sock: socket.socket | None,
                 ready: asyncio.Event | None, stop: asyncio.Event | None) -> Pipeline:
    up = config.up
    pipeline = Pipeline(config, enricher)
    app = pipeline.make_app()
    # No access log: a line per tracker request drowns the progress line.
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=config.collector.shutdown_grace,
                           access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    log.info("snowmelt up: listening on %s:%d (collector + /micro API), writing to %s",
             config.collector.host, up.port, Path(up.data_dir).resolve())
    sql_runner = await start_sql_endpoint(config, pipeline, sql_sock)
    try:
        await wait_until_stopped(stop, ready)
    finally:
        log.info("stopping: finishing in-flight requests and enriching what is queued")
        if sql_runner is not None:
            await sql_runner.cleanup()
        await runner.cleanup()  # stops accepting, waits for handlers, then drains (on_cleanup)
        log.info("stopped: %d records in, %d good events, %d bad rows written to %s",
                 pipeline.records_in, pipeline.good_out, pipeline.bad_out, Path(up.data_dir).resolve())
    return pipeline


def run(config: Config) -> int:
    enricher = Enricher.from_files(config.up.resolver, config.up.enrichments, config.up.remote_adapters)
    try:
        import uvloop  # type: ignore
        uvloop.install()
    except ImportError:
        pass
    # The stage's thread is CPU-bound and the event loop answering trackers waits for the
    # interpreter after each of its system calls: hand it over every 0.5 ms instead of 5 ms,
    # so a large batch being enriched delays an answer by less.
    sys.setswitchinterval(0.0005)
    try:
        asyncio.run(serve(config, enricher))
    finally:
        enricher.close()
    return 0
