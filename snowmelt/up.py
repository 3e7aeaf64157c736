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

Micro API (the request and answer shapes of Snowplow Micro's REST API):

* ``GET|POST /micro/all`` -- ``{"total", "good", "bad"}`` counted since start
  or the last reset;
* ``GET /micro/good`` -- every good event kept; ``POST`` with a JSON object of
  filters ``event_type``, ``schema``, ``contexts`` (all listed schemas present),
  ``limit`` (the most recent N).  Each item: ``event`` (the analytics-SDK JSON
  of the enriched event), ``eventType``, ``schema`` (the self-describing event's
  URI for ``unstruct``, else the standard event's), ``contexts`` (context schema
  URIs) and ``rawEvent`` (the event's tracker-protocol parameters and request
  context, as the enrichment saw them);
* ``GET /micro/bad`` -- every bad row kept; ``POST`` filters ``vendor``,
  ``version`` (of the request's ``collectorPayload.api``) and ``limit``.  Each
  item: ``collectorPayload``, ``rawEvent`` (or null) and ``errors`` (strings);
* ``GET|POST /micro/reset`` -- forget what is kept in memory (not the files).

Shutdown (SIGTERM, Ctrl-C): stop accepting connections, let in-flight requests
finish, drain the queue through enrichment into the files, exit 0.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import hmac
import ipaddress
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from aiohttp import web

import ext
from collector.app import handler_args, make_collector
from collector.sink import QueueSink
from processor import badrows
from processor.adapters import vendor_version
from snowmelt.sql_endpoint import is_loopback_host
from processor.analytics import parse_tsv
from processor.enriched import FIELD_INDEX
from processor.stage import Enricher
from snowmelt import __version__
from snowmelt.config import Config
from snowmelt.dashboard import backend_query as dashboard_query
from snowmelt.lifecycle import wait_until_stopped

log = logging.getLogger("snowmelt.up")



# --------------------------------------------------------------------------- Micro's shapes


def _payload_source_context(payload) -> tuple[dict, dict]:
    source = {"name": payload.collector or "", "encoding": payload.encoding or "UTF-8",
              "hostname": payload.hostname}
    return source, badrows.request_context(payload)


def raw_event(payload, vendor: str | None, version: str | None, params: dict) -> dict:
    """Micro's ``RawEvent``: one event's parameters and the request it came in."""
    source, context = _payload_source_context(payload)
    return {"api": {"vendor": vendor, "version": version}, "parameters": dict(params),
            "contentType": payload.content_type, "source": source, "context": context}


def collector_payload(payload, querystring: Iterable[tuple[str, str]] | None = None) -> dict:
    """Micro's ``CollectorPayload``: the request as the collector recorded it."""
    vv = vendor_version(payload.path) or (None, None)
    if querystring is None:
        try:
            querystring = ext.parse_query_string(payload.querystring) if payload.querystring else []
        except ext.QueryStringError:
            querystring = []
    source, context = _payload_source_context(payload)
    return {"api": {"vendor": vv[0], "version": vv[1]},
            "querystring": [{"name": k, "value": v} for k, v in querystring],
            "contentType": payload.content_type, "body": payload.body, "source": source, "context": context}


def _raw_event_from_bad_row(raw: dict) -> dict:
    """A schema_violations / enrichment bad row's ``raw`` object -> Micro's RawEvent."""
    return {
        "api": {"vendor": raw.get("vendor"), "version": raw.get("version")},
        "parameters": {p.get("name"): p.get("value") for p in raw.get("parameters") or []},
        "contentType": raw.get("contentType"),
        "source": {"name": raw.get("loaderName"), "encoding": raw.get("encoding"), "hostname": raw.get("hostname")},
        "context": {"timestamp": raw.get("timestamp"), "ipAddress": raw.get("ipAddress"),
                    "useragent": raw.get("useragent"), "refererUri": raw.get("refererUri"),
                    "headers": raw.get("headers") or [], "userId": raw.get("userId")},
    }


def bad_row_errors(row: dict) -> list[str]:
    """A bad row's failure as a list of readable strings (Micro's ``errors``)."""
    schema = str(row.get("schema", ""))
    kind = schema.split("/")[1] if schema.count("/") >= 3 else schema
    failure = (row.get("data") or {}).get("failure") or {}
    if kind == "size_violation":
        return [(f"size_violation: {failure.get('actualSizeBytes')} bytes, more than the maximum of "
                 f"{failure.get('maximumAllowedSizeBytes')}: {failure.get('expectation')}")]
    if kind == "generic_error":
        return [f"generic_error: {e}" for e in failure.get("errors") or []]
    messages = failure.get("messages")
    if messages is None and "message" in failure:
        messages = [failure["message"]]
    out = []
    for m in messages or []:
        out.append(f"{kind}: {json.dumps(m, ensure_ascii=False, separators=(',', ':'))}")
    return out or [kind]


def _schema_uris(envelope: str) -> list[str]:
    if not envelope:
        return []
    try:
        data = json.loads(envelope).get("data")
    except (ValueError, AttributeError):
        return []
    return [c["schema"] for c in data or [] if isinstance(c, dict) and isinstance(c.get("schema"), str)]


def good_event(line: str, raw: dict | None) -> dict:
    """One enriched TSV line (and its raw event) -> Micro's ``GoodEvent``."""
    values = line.split("\t")
    event_type = values[FIELD_INDEX["event"]] or None
    schema = None
    if event_type == "unstruct":
        try:
            schema = json.loads(values[FIELD_INDEX["unstruct_event"]])["data"]["schema"]
        except (ValueError, KeyError, TypeError):
            schema = None
    elif values[FIELD_INDEX["event_vendor"]]:
        schema = "iglu:{}/{}/{}/{}".format(*(values[FIELD_INDEX[f]] for f in (
            "event_vendor", "event_name", "event_format", "event_version")))
    return {"event": parse_tsv(line), "eventType": event_type, "schema": schema,
            "contexts": _schema_uris(values[FIELD_INDEX["contexts"]]), "rawEvent": raw}


# --------------------------------------------------------------------------- memory for the API


@dataclass
class Batch:
    """What one batch of queue items became."""

    good_lines: list[str] = field(default_factory=list)
    bad_rows: list[bytes] = field(default_factory=list)
    good: list[dict] = field(default_factory=list)
    bad: list[dict] = field(default_factory=list)
    records: int = 0


class MicroStore:
    """The most recent good events and bad rows, and counts since the last reset."""

    def __init__(self, max_events: int = 10_000):
        self.good: collections.deque = collections.deque(maxlen=max_events)
        self.bad: collections.deque = collections.deque(maxlen=max_events)
        self.good_count = 0
        self.bad_count = 0

    def add(self, batch: Batch) -> None:
        self.good.extend(batch.good)
        self.bad.extend(batch.bad)
        self.good_count += len(batch.good)
        self.bad_count += len(batch.bad)

    def summary(self) -> dict:
        return {"total": self.good_count + self.bad_count, "good": self.good_count, "bad": self.bad_count}

    def reset(self) -> dict:
        self.good.clear()
        self.bad.clear()
        self.good_count = self.bad_count = 0
        return self.summary()

    def query_good(self, event_type=None, schema=None, contexts=None, limit=None) -> list[dict]:
        wanted = set(contexts or ())
        out = [e for e in self.good
               if (event_type is None or e["eventType"] == event_type)
               and (schema is None or e["schema"] == schema)
               and (not wanted or wanted.issubset(e["contexts"]))]
        return _last(out, limit)

    def query_bad(self, vendor=None, version=None, limit=None) -> list[dict]:
        def api(e):
            return (e.get("collectorPayload") or {}).get("api") or (e.get("rawEvent") or {}).get("api") or {}
        out = [e for e in self.bad
               if (vendor is None or api(e).get("vendor") == vendor)
               and (version is None or api(e).get("version") == version)]
        return _last(out, limit)


def _last(items: list, limit) -> list:
    if limit is None:
        return items
    return items[-limit:] if limit > 0 else []


# --------------------------------------------------------------------------- the stage, per batch


class BatchEnricher:
    """Runs queue items through the stage and shapes the results for files and API (a worker thread)."""

    def __init__(self, enricher: Enricher):
        self.enricher = enricher

    def run(self, items: list[tuple[str, bytes]]) -> Batch:
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
                    batch.good.append(good_event(line, raw_event(out.payload, out.vendor, out.version, params)))
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
            raw = _raw_event_from_bad_row(data_payload["raw"])
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
        data = "".join(line + "\n" for line in lines).encode("utf-8")
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
                              min(config.collector.max_payload_size, config.kafka.max_message_bytes))
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
                self.store.add(batch)
                self.records_in += batch.records
                self.good_out += len(batch.good_lines)
                self.bad_out += len(batch.bad_rows)
            self.items_done += len(items)
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
        if self._progress is not None:
            self._progress.cancel()
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
                              middlewares=[api_guard(config.up.api_token)])
        for path, handler in (("/micro/all", self.handle_all), ("/micro/good", self.handle_good),
                              ("/micro/bad", self.handle_bad), ("/micro/reset", self.handle_reset)):
            app.router.add_route("GET", path, handler)
            app.router.add_route("POST", path, handler)
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

    @staticmethod
    def _json(data, status: int = 200) -> web.Response:
        return web.Response(status=status, text=json.dumps(data, ensure_ascii=False),
                            content_type="application/json",
                            headers={"Access-Control-Allow-Origin": "*"})

    @staticmethod
    async def _filters(request: web.Request, allowed: dict[str, type]) -> dict:
        if request.method != "POST" or not request.can_read_body:
            return {}
        try:
            body = await request.json(loads=json.loads)
        except ValueError:
            raise web.HTTPBadRequest(text="the body must be a JSON object of filters")
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="the body must be a JSON object of filters")
        out = {}
        for name, value in body.items():
            if name not in allowed:
                raise web.HTTPBadRequest(text=f"unknown filter {name!r} (known: {', '.join(allowed)})")
            if value is None:
                continue
            kind = allowed[name]
            ok = (isinstance(value, int) and not isinstance(value, bool)) if kind is int else \
                (isinstance(value, list) and all(isinstance(v, str) for v in value)) if kind is list else \
                isinstance(value, kind)
            if not ok:
                raise web.HTTPBadRequest(text=f"filter {name!r} must be a {kind.__name__}")
            out[name] = value
        return out

    async def handle_all(self, _request: web.Request) -> web.Response:
        return self._json(self.store.summary())

    async def handle_good(self, request: web.Request) -> web.Response:
        filters = await self._filters(request, {"event_type": str, "schema": str, "contexts": list, "limit": int})
        return self._json(self.store.query_good(**filters))

    async def handle_bad(self, request: web.Request) -> web.Response:
        filters = await self._filters(request, {"vendor": str, "version": str, "limit": int})
        return self._json(self.store.query_bad(**filters))

    async def handle_reset(self, _request: web.Request) -> web.Response:
        return self._json(self.store.reset())


# --------------------------------------------------------------------------- access to the API

#: Paths that read or change what ``snowmelt up`` holds, rather than record events.
API_PATHS = ("/micro/", "/dashboard/data")
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def is_local_client(request: web.BaseRequest) -> bool:
    """True for a peer on the loopback interface that is not a proxy forwarding someone else."""
    try:
        loopback = ipaddress.ip_address((request.remote or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False
    return loopback and not any(h in request.headers for h in _PROXY_HEADERS)


def api_refusal(request: web.BaseRequest, token: str) -> web.Response | None:
    """None when ``request`` may use the API, else the answer (403 without a token configured, 401/403 with one)."""
    if is_local_client(request):
        return None
    if not token:
        return web.Response(status=403, text="the /micro API answers local clients only; set up.api_token "
                                             "to open it to others\n")
    auth = request.headers.get("Authorization", "")
    given = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("X-Snowmelt-Token", "")
    if not given:
        return web.Response(status=401, text="token required\n", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode(), token.encode()):
        return web.Response(status=403, text="wrong token\n")
    return None


def api_guard(token: str):
    """Middleware: :data:`API_PATHS` only for local clients or with ``up.api_token``; tracking routes open."""
    @web.middleware
    async def guard(request: web.Request, handler):
        if request.path.startswith(API_PATHS):
            refusal = api_refusal(request, token)
            if refusal is not None:
                return refusal
        return await handler(request)
    return guard


# --------------------------------------------------------------------------- running


async def start_sql_endpoint(config: Config, pipeline: Pipeline) -> web.AppRunner | None:
    """ClickHouse's HTTP interface over the store on ``up.sql_host:up.sql_port`` (None when off)."""
    up = config.up
    if not up.sql_port or pipeline.loader is None:
        return None
    from snowmelt.sql_endpoint import make_sql_app

    app = make_sql_app(pipeline.clickhouse.backend, readonly=up.sql_readonly, token=up.sql_token or None)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, up.sql_host, up.sql_port).start()
    log.info("SQL (ClickHouse HTTP interface) on http://%s:%d, %s%s", up.sql_host, up.sql_port,
             "read-only" if up.sql_readonly else "read-write", ", token required" if up.sql_token else "")
    return runner


async def serve(config: Config, enricher: Enricher, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> Pipeline:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT), then drain; returns the pipeline.

    Refuses (ValueError) a SQL endpoint bound beyond loopback without ``up.sql_token``.
    """
    up = config.up
    if up.sql_port and up.store and not up.sql_token and not is_loopback_host(up.sql_host):
        raise ValueError(f"up.sql_host is {up.sql_host}: a SQL endpoint reachable from other hosts needs "
                         f"up.sql_token (or keep up.sql_host on 127.0.0.1)")
    pipeline = Pipeline(config, enricher)
    app = pipeline.make_app()
    # No access log: a line per tracker request drowns the progress line.
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=config.collector.shutdown_grace,
                           access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.collector.host, up.port, backlog=1024)
    await site.start()
    log.info("snowmelt up: listening on %s:%d (collector + /micro API), writing to %s",
             config.collector.host, up.port, Path(up.data_dir).resolve())
    sql_runner = await start_sql_endpoint(config, pipeline)
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
    try:
        asyncio.run(serve(config, enricher))
    finally:
        enricher.close()
    return 0
