"""``snowmelt up``: the whole pipeline in one process, no broker.

One aiohttp server on one port serves the collector's tracking routes and a
Snowplow-Micro-compatible API.  The collector writes to a bounded
:class:`~collector.sink.QueueSink` instead of Kafka, through a write-ahead log
(:mod:`snowmelt.wal`, ``DATA_DIR/wal``): a request's raw records are appended
to the log (and, with ``up.wal_fsync: always``, synced) before its 2xx; a full
queue or a log that cannot be written answers 503.  One consumer task takes
raw records off the queue in batches and runs each batch through the same
stage the Kafka path runs (:meth:`processor.stage.Enricher.enrich`) on one
worker thread (or, with ``up.enrich_process``, the default, in a process of
its own: :mod:`snowmelt.up_stage`): the stage costs about 27 us an event (one
core, tp2 batches of 50 page views; the Micro API's shapes are made when read),
so a batch of 100 such records is ~0.15 s of CPU -- too long to hold the event
loop -- and an Iglu look-up may block on HTTP.  On the thread, the loop keeps
answering trackers (the interpreter switches threads every 0.5 ms).  Each
batch's output is appended to ``DATA_DIR/enriched/YYYY-MM-DD.tsv``
(Snowplow's enriched TSV) and ``DATA_DIR/bad/YYYY-MM-DD.jsonl`` (one bad row
per line; the collector's size_violation rows included) and kept in memory
for the API (the most recent ``up.max_events`` good events and bad rows).  A
batch that cannot be written (a full disk) is held and retried with backoff,
each append whole or cut off again; the queue behind it fills and the
collector answers 503 until the write goes through.

Every :data:`CHECKPOINT_INTERVAL` a checkpoint (:class:`~snowmelt.up_files.Checkpoint`)
records the last log record whose output is in the files and where the files
end; the stores (chdb and S3-layout files, :mod:`snowmelt.up_store`) load the
files up to it, and the log is trimmed up to it.  On start the files are cut
back to the checkpoint and the log's later records are processed again
before the port answers, so after a kill -9 every request answered 2xx is in
the files once, and the stores catch up from the files without duplicates.

The Micro API (:mod:`snowmelt.micro`) and the live dashboard share the port;
they answer as :mod:`snowmelt.access` decides (a Host the server answers for,
then a local client or ``up.api_token``), the tracking routes answer anyone.

Shutdown (SIGTERM, Ctrl-C): stop accepting connections, let in-flight requests
finish, drain the queue through enrichment into the files, checkpoint, load
the stores, exit 0.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import fcntl
import itertools
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from collector.app import handler_args, make_collector
from collector.sink import QueueSink, record_limit
from processor.stage import Enricher
from snowmelt import __version__
from snowmelt.access import host_refusal, is_loopback_host, token_refusal
from snowmelt.micro import MicroApi, MicroStore
from snowmelt.config import Config, schema_cache_dir
from snowmelt.http_body import SERVER_OPTIONS
from snowmelt.lifecycle import wait_until_stopped
from snowmelt.residency import process_rss_kib
from snowmelt.up_files import SPOOL_FOLDER, Checkpoint, DailyFiles, clear_spools
from snowmelt.up_stage import Batch, BatchEnricher, Item, StageInfo, StageProcess
from snowmelt.wal import WriteAheadLog

log = logging.getLogger("snowmelt.up")

#: Seconds between checkpoints (what the files hold: the stores load up to it, the log is trimmed up to it).
CHECKPOINT_INTERVAL = 0.2



# --------------------------------------------------------------------------- the pipeline


def make_local_loader(config: Config, data_dir: Path, sync: bool):
    """The stores of ``snowmelt up`` under ``data_dir``: chdb and S3-layout files loaded from the daily files
    (see ``snowmelt.up_store``)."""
    from loaders.clickhouse import ClickHouseStore
    from loaders.s3 import S3Store
    from snowmelt.up_store import LocalLoader

    clickhouse = dataclasses.replace(config.clickhouse, backend="chdb", chdb_path=str(data_dir / "clickhouse"))
    s3 = dataclasses.replace(config.s3, backend="local", local_dir=str(data_dir / "s3"))
    return LocalLoader([ClickHouseStore(clickhouse), S3Store(s3)], data_dir, interval=config.up.store_interval,
                       batch_size=config.load.batch_size, sync=sync)


class Pipeline:
    """Queue -> stage -> files + memory, and the HTTP app in front of it."""

    def __init__(self, config: Config, enricher: Enricher | StageProcess, data_dir: str | Path | None = None):
        self.config = config
        up = config.up
        self.data_dir = Path(data_dir if data_dir is not None else up.data_dir)
        # the output files are synced before each checkpoint when acknowledged records are synced
        self.sync = up.wal and up.wal_fsync == "always"
        self.wal = WriteAheadLog(self.data_dir / "wal", up.wal_fsync, up.wal_fsync_interval,
                                 up.wal_segment_mb * 1024 * 1024) if up.wal else None
        self.checkpoint = Checkpoint(self.data_dir / "wal" / "checkpoint", sync=self.sync)
        # a request over the record limit is queued (and logged) whole and split by the stage, off this process
        self.sink = QueueSink(up.queue_max_records, record_limit(config),
                              max_bytes=up.queue_max_bytes, log=self.wal, split_later=True)
        # the stage: in a process of its own (started by the caller), or on a thread of this one
        self.stage = enricher if isinstance(enricher, StageProcess) else None
        self.batch_enricher = BatchEnricher(enricher, record_limit(config)) if self.stage is None else None
        #: what the stage was built with (its enrichments and Iglu repositories), for the start-up message
        self.stage_info = enricher.info if self.stage is not None else StageInfo.of(enricher)
        self.files = DailyFiles(self.data_dir)
        self.loader = make_local_loader(config, self.data_dir, self.sync) if up.store else None
        # the ClickHouse store (chdb), shared by the loader, the SQL endpoint and the models
        self.clickhouse = self.loader.stores[0] if self.loader is not None else None
        self.models = None  # the models' refresher, once the store is open
        self.store = MicroStore(up.max_events)
        self.batch_size = max(1, up.batch_size)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="snowmelt-enrich")
        self._consumer: asyncio.Task | None = None
        self._progress: asyncio.Task | None = None
        self._memory: asyncio.Task | None = None
        # totals since start, for the progress line: tracking requests (one raw record each: the collector
        # of snowmelt up queues a request whole), enriched events and bad rows written
        self.requests_in = 0
        self.good_out = 0
        self.bad_out = 0
        self.items_done = 0  # queue items taken off and processed (written, or failed to write)
        self._store_start = None  # where a store without a position starts (see _recover)
        self._written_seq = 0  # the last log record whose output is in the files
        self._lines_since_checkpoint = 0
        self._checkpointer: asyncio.Task | None = None

    # ------------------------------------------------------------------ consumer

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._recover)
        if self.loader is not None:
            await loop.run_in_executor(None, self._start_store)
        if self.wal is not None:
            await self._replay()
            await loop.run_in_executor(self._executor, self._checkpoint)
            self.wal.start(loop)
        self._checkpointer = asyncio.create_task(self._checkpoints(), name="snowmelt-up-checkpoints")
        self._consumer = asyncio.create_task(self._consume(), name="snowmelt-up-consumer")
        interval = self.config.up.progress_interval
        if interval > 0:
            self._progress = asyncio.create_task(self._report(interval), name="snowmelt-up-progress")
        if self.config.up.memory_limit_mb > 0:
            self._memory = asyncio.create_task(self._watch_memory(self.config.up.memory_limit_mb),
                                               name="snowmelt-up-memory")

    async def _watch_memory(self, limit_mb: int) -> None:
        """Refuse new requests (503) while the resident memory of this process and its stage process is over
        90 % of ``up.memory_limit_mb``."""
        threshold = limit_mb * 1024 * 1024 * 0.9
        while True:
            resident = resident_bytes([os.getpid(), *(self.stage.pids() if self.stage is not None else ())])
            over = resident > threshold
            if over and self.sink.refusing is None:
                log.warning("resident memory %.0f MB is over 90%% of up.memory_limit_mb (%d): answering 503 until "
                            "it falls", resident / 2**20, limit_mb)
                self.sink.refusing = "memory"
            elif not over and self.sink.refusing == "memory":
                log.info("resident memory %.0f MB: accepting requests again", resident / 2**20)
                self.sink.refusing = None
            await asyncio.sleep(0.25)

    def _recover(self) -> None:
        """Cut the files back to the last checkpoint (or take them as they are in a folder without one)."""
        clear_spools(self.data_dir / SPOOL_FOLDER)  # hand-overs a stop cut short: the log replays their records
        if self.checkpoint.load():
            self.files.restore(self.checkpoint.ends)
        else:
            ends = self.files.current_ends()
            self.checkpoint.save(0, ends)
            self._store_start = ends  # what an older snowmelt up wrote was loaded by it
        if self.wal is not None:
            self.wal.open()
            self.wal.skip_to(self.checkpoint.seq)

    async def _replay(self) -> None:
        """Process the log's records after the checkpoint: accepted before a crash, not yet in the files."""
        started, replayed = time.monotonic(), 0
        records = self.wal.replay(self.checkpoint.seq)
        while chunk := list(itertools.islice(records, self.batch_size)):
            await self._handle([(QueueSink.ITEM_KINDS[kind], payload, seq) for seq, kind, payload in chunk])
            replayed += len(chunk)
        if replayed:
            log.info("replayed %d records of the write-ahead log (accepted before the last stop, not yet "
                     "written) in %.1fs", replayed, time.monotonic() - started)

    async def _handle(self, items: list[Item]) -> None:
        """Enrich ``items`` on the stage's thread, then write the output (held and retried while that fails)."""
        loop = asyncio.get_running_loop()
        try:
            if self.stage is not None:
                batch = await self.stage.run(items)
            else:
                batch = await loop.run_in_executor(self._executor, self.batch_enricher.run, items)
        except Exception:  # a bug outside the per-record guard: say so loudly, keep serving
            log.exception("a batch of %d records could not be enriched", len(items))
            batch = None
        if batch is None:
            return
        try:
            written = await self._write(batch, len(items))
        finally:
            if batch.bad_spool is not None:
                batch.bad_spool.remove()
        if written:
            # spooled bad rows are read back from the daily file when the Micro API asks for them
            self.store.add(batch.good, batch.bad_data if batch.bad_spool is None else batch.bad_region,
                           batch.bad_sources)
            self.requests_in += batch.records
            self.good_out += len(batch.good_lines)
            self.bad_out += batch.bad_count

    async def _consume(self) -> None:
        queue = self.sink.queue
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
            await self._handle(items)
            self.items_done += len(items)
            self.sink.release(items)
            if stop:
                return

    async def _write(self, batch: Batch, items: int) -> bool:
        """Write ``batch`` to the files, retrying while that fails.

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
        """Append the batch to the files (a failed append is raised and retried); a checkpoint follows."""
        batch.bad_region = self.files.write_batch(batch.good_lines, batch.bad_output())
        self._written_seq = max(self._written_seq, batch.last_seq)
        self._lines_since_checkpoint += len(batch.good_lines)

    def _unchecked(self) -> bool:
        """True when the files or the log went past the last checkpoint."""
        return self.files.ends != self.checkpoint.ends or self._written_seq > self.checkpoint.seq

    async def _checkpoints(self) -> None:
        """Checkpoint what was written, every :data:`CHECKPOINT_INTERVAL` seconds."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            if self._unchecked():
                await loop.run_in_executor(self._executor, self._checkpoint)

    def _checkpoint(self) -> None:
        """Record that the files hold the output up to the last record written; then the stores may load it
        and the log drop it (on the stage's thread, after the writes it covers).

        One checkpoint a tick, not one a batch: with ``wal_fsync: always`` it
        syncs the output files, and a sync per batch would compete with the
        log's own (ext4 commits every file's data in one journal).  A checkpoint
        that cannot be saved is not retried with a batch (the files have it):
        the next one covers it, and until then a restart cuts the files back to
        the previous checkpoint and replays from there.
        """
        if not self._unchecked():
            return
        seq, lines = max(self._written_seq, self.checkpoint.seq), self._lines_since_checkpoint
        try:
            if self.sync:
                self.files.sync()
            self.checkpoint.save(seq, self.files.ends)
        except OSError:
            log.exception("cannot save the checkpoint after writing up to record %d; a restart now would "
                          "process again what came after the previous one", seq)
            return
        self._lines_since_checkpoint = 0
        if self.loader is not None:
            self.loader.advance(self.checkpoint.ends, lines)
        if self.wal is not None:
            self.wal.trim(seq)

    async def _report(self, interval: float) -> None:
        last = (time.monotonic(), 0, 0, 0)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            t0, r0, g0, b0 = last
            dt = max(now - t0, 1e-9)
            if (self.requests_in, self.good_out, self.bad_out) != (r0, g0, b0) or self.sink.buffer_fill():
                log.info(progress_line((self.requests_in - r0) / dt, (self.good_out - g0) / dt,
                                       (self.bad_out - b0) / dt, self.sink.buffer_fill(), self.requests_in,
                                       self.good_out, self.bad_out))
            last = (now, self.requests_in, self.good_out, self.bad_out)

    async def drain(self) -> None:
        """Refuse new records, enrich and write every queued one, stop the consumer."""
        await self.sink.close(0)
        for task in (self._progress, self._memory, self._checkpointer):
            if task is not None:
                task.cancel()
        deadline = time.monotonic() + self.config.collector.shutdown_grace
        while self.sink.reserved and time.monotonic() < deadline:  # requests the log is still writing
            await asyncio.sleep(0.005)
        if self._consumer is not None and not self._consumer.done():
            await self.sink.queue.put(None)  # after every accepted item
            await self._consumer
        await asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint)
        self._executor.shutdown(wait=True)
        self.files.close()
        if self.wal is not None:
            self.wal.trim(self.checkpoint.seq)
            self.wal.close()
        self.checkpoint.close()
        if self.loader is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._stop_store)

    def _start_store(self) -> None:
        from loaders.models import Models, ModelsRefresher

        self.loader.start(self._store_start)
        self.loader.advance(self.checkpoint.ends)
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
            from snowmelt.dashboard import add_dashboard_routes, backend_query as dashboard_query

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


def progress_line(requests: float, good: float, bad: float, queued: int, total_requests: int, total_good: int,
                  total_bad: int) -> str:
    """The progress line: rates per second since the last line, then totals since start."""
    return (f"requests {requests:.1f}/s, good events {good:.1f}/s, bad rows {bad:.1f}/s, {queued} requests queued "
            f"(since start: {total_requests} requests, {total_good} good events, {total_bad} bad rows)")


def startup_lines(config: Config, port: int, info: StageInfo, dashboard: bool) -> list[str]:
    """What ``snowmelt up`` says once it listens: where it answers and to whom, what it enriches with, where its
    schemas come from (the SQL endpoint says its own line)."""
    up, host = config.up, config.collector.host
    local_only = is_loopback_host(host)
    shown = "localhost" if host in ("0.0.0.0", "::", "") or local_only else (f"[{host}]" if ":" in host else host)
    url = f"http://{shown}:{port}/"
    lines = [f"snowmelt up {__version__}: listening on {host}:{port}, writing to {Path(up.data_dir).resolve()}"]
    if local_only:
        lines.append(f"  collector, /micro API and dashboard: clients on this machine only ({host})")
    else:
        lines.append("  collector (tracking routes, /health): any client")
        lines.append("  /micro API and dashboard data: " + ("this machine, and others that send up.api_token"
                                                             if up.api_token else
                                                             "this machine only (set up.api_token to let others in "
                                                             "with it)"))
    if not dashboard:
        lines.append("  dashboard: off (up.store is false)")
    elif local_only:
        lines.append(f"  dashboard: {url}")
    else:  # the Host check of snowmelt.access (DNS rebinding)
        lines.append(f"  dashboard: {url} (from elsewhere by IP address, or by a name listed in api.public_hosts)")
    chosen = (up.enrichments or "").strip()
    source = "the standard set; --enrichments DIR for yours" if chosen.lower() == "standard" else chosen
    if info.enrichments:
        lines.append(f"  enrichments ({len(info.enrichments)}, {source}): {', '.join(info.enrichments)}")
    elif chosen and chosen.lower() != "none":
        lines.append(f"  enrichments: none enabled in {chosen}")
    else:
        lines.append("  enrichments: none (--enrichments standard for the shipped set, or a folder of Snowplow "
                     "enrichment configs, *.json: see examples/enrichments)")
    lines.append(f"  Iglu repositories{'' if up.resolver else ' (no --resolver given)'}: "
                 f"{', '.join(info.repositories)}")
    return lines


def resident_bytes(pids) -> int:
    """The resident memory of the processes ``pids`` together (one that has ended counts 0)."""
    return sum(process_rss_kib(pid) for pid in pids) * 1024


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
    runner = web.AppRunner(app, handle_signals=False, access_log=None, **SERVER_OPTIONS)
    await runner.setup()
    if sock is None:
        sock = bind(up.sql_host, up.sql_port, "up.sql_port")
    await web.SockSite(runner, sock).start()
    log.info("SQL (ClickHouse HTTP interface) on http://%s:%d, %s%s%s", up.sql_host, up.sql_port,
             "read-only" if up.sql_readonly else "read-write", ", token required" if up.sql_token else "",
             ", this machine only" if is_loopback_host(up.sql_host) else "")
    return runner


async def serve(config: Config, enricher: Enricher | StageProcess, ready: asyncio.Event | None = None,
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


async def _serve(config: Config, enricher: Enricher | StageProcess, sock: socket.socket, sql_sock: socket.socket | None,
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
    for line in startup_lines(config, sock.getsockname()[1], pipeline.stage_info, pipeline.clickhouse is not None):
        log.info("%s", line)
    sql_runner = await start_sql_endpoint(config, pipeline, sql_sock)
    try:
        await wait_until_stopped(stop, ready)
    finally:
        log.info("stopping: finishing in-flight requests and enriching what is queued")
        if sql_runner is not None:
            await sql_runner.cleanup()
        await runner.cleanup()  # stops accepting, waits for handlers, then drains (on_cleanup)
        log.info("stopped: %d requests, %d good events, %d bad rows written to %s",
                 pipeline.requests_in, pipeline.good_out, pipeline.bad_out, Path(up.data_dir).resolve())
    return pipeline


def start_enricher(config: Config) -> Enricher | StageProcess:
    """The stage with ``up.enrichments``: a folder, ``standard`` (the shipped set) or ``none``/empty.

    A configured file that cannot be used raises here, before anything is created.
    """
    up = config.up
    choice = (up.enrichments or "").strip()
    if choice.lower() == "none":
        choice = ""
    standard = None
    if choice.lower() == "standard":
        from processor.enrichments.standard import standard_folder

        standard = tempfile.mkdtemp(prefix="snowmelt-enrichments-")
        choice = str(standard_folder(standard))
    try:
        if up.enrich_process:
            enricher = StageProcess(up.resolver, choice, up.remote_adapters, config.logging, record_limit(config),
                                    schema_cache=schema_cache_dir(config),
                                    spool_dir=str(Path(up.data_dir).absolute() / SPOOL_FOLDER))
            enricher.start()  # returns once the child loaded its configs
            return enricher
        return Enricher.from_files(up.resolver, choice, up.remote_adapters, schema_cache_dir(config))
    finally:
        if standard is not None:
            shutil.rmtree(standard, ignore_errors=True)  # loaded: the configs are not read again


def run(config: Config) -> int:
    enricher = start_enricher(config)
    try:
        import uvloop  # type: ignore
        uvloop.install()
    except ImportError:
        pass
    # The threads beside the event loop (the stage's without up.enrich_process, the store's, a
    # large body being split) are CPU-bound, and the loop answering trackers waits for the
    # interpreter after each of its system calls: hand it over every 0.5 ms instead of 5 ms.
    sys.setswitchinterval(0.0005)
    try:
        asyncio.run(serve(config, enricher))
    finally:
        enricher.close()
    return 0
