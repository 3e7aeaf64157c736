"""The Snowplow Micro API of ``snowmelt up``: what it keeps and its routes (the shapes of its items are
:mod:`snowmelt.micro_shapes`'s, which the stage process makes without importing HTTP).

Routes (request and answer shapes of Snowplow Micro's REST API):

* ``GET|POST /micro/all`` -- ``{"total", "good", "bad"}`` counted since start
  or the last reset;
* ``GET /micro/good`` -- every good event kept; ``POST`` with a JSON object of
  filters ``event_type``, ``schema``, ``contexts`` (all listed schemas present),
  ``limit`` (the most recent N).  Each item: ``event`` (the analytics-SDK JSON
  of the enriched event), ``eventType``, ``schema`` (the self-describing event's
  URI for ``unstruct``, else the standard event's), ``contexts`` (context schema
  URIs) and ``rawEvent`` (the event's tracker-protocol parameters and request
  context, as the enrichment saw them, less what the privacy enrichments hide:
  see :class:`PrivacyView`);
* ``GET /micro/bad`` -- every bad row kept; ``POST`` filters ``vendor``,
  ``version`` (of the request's ``collectorPayload.api``) and ``limit``.  Each
  item: ``collectorPayload``, ``rawEvent`` (or null) and ``errors`` (strings);
* ``POST /micro/reset`` -- forget what is kept in memory (not the files).

Unlike Snowplow Micro, these answer browsers carefully: no CORS header (a
page on another origin cannot read them; ``snowmelt up``'s middleware answers
a preflight without permission), reset only by ``POST`` with ``Content-Type: application/json`` or
a token header (neither can be sent cross-site without a preflight), answers
streamed one item at a time (memory stays bounded whatever is kept), and
filter bodies over :data:`MAX_FILTER_BYTES` or not a flat JSON object answered
400.  Who may call them at all is :func:`snowmelt.access.token_refusal`'s
decision, applied by ``snowmelt up``'s middleware.
"""
from __future__ import annotations

import collections
import logging
from typing import Iterable, Iterator, Sequence

import orjson
from aiohttp import web

from snowmelt.http_body import read_bounded
from snowmelt.micro_shapes import (GoodEntry, PrivacyView, bad_row_errors, collector_payload, json_bytes,
                                   raw_event, raw_event_from_bad_row)

log = logging.getLogger("snowmelt.up")

__all__ = ["MicroStore", "MicroApi", "PrivacyView", "raw_event", "collector_payload",
           "bad_row_errors", "raw_event_from_bad_row", "MAX_FILTER_BYTES"]

#: Largest filter body a POST to /micro/good or /micro/bad may carry.
MAX_FILTER_BYTES = 64 * 1024


# --------------------------------------------------------------------------- memory


class BadEntry:
    """A bad row kept for ``/micro/bad``: its bytes and its request, shaped for the API when first read.

    Shaping (parsing the row) is left to a read of the API: a request of
    23,000 events that each become a bad row costs no parsing on the way in,
    and ``snowmelt up``'s stage process hands over bytes, not 23,000 documents
    (their unpickling held the serving process's interpreter 0.1 s).
    """

    __slots__ = ("row", "collector_payload", "_shaped")

    def __init__(self, row: bytes, collector_payload: dict | None) -> None:
        self.row, self.collector_payload, self._shaped = row, collector_payload, None

    def shaped(self) -> dict:
        if self._shaped is None:
            try:
                row = orjson.loads(self.row)
            except ValueError:
                row = {}
            if not isinstance(row, dict):
                row = {}
            payload = (row.get("data") or {}).get("payload")
            raw = None
            if isinstance(payload, dict) and isinstance(payload.get("raw"), dict):
                raw = raw_event_from_bad_row(payload["raw"])
            self._shaped = {"collectorPayload": self.collector_payload, "rawEvent": raw,
                            "errors": bad_row_errors(row)}
        return self._shaped


class MicroStore:
    """The most recent good events and bad rows, and counts since the last reset."""

    def __init__(self, max_events: int = 10_000):
        self.max_events = max_events
        self.good: collections.deque = collections.deque(maxlen=max_events)
        self.bad: collections.deque = collections.deque(maxlen=max_events)
        # bad rows not yet read: (rows as lines, each row's collector payload), the latest max_events kept
        self._pending: collections.deque = collections.deque()
        self._pending_rows = 0
        self.good_count = 0
        self.bad_count = 0

    def add(self, good: list[GoodEntry], bad_data, bad_sources: Sequence[dict | None]) -> None:
        """Keep ``good`` events and bad rows (``bad_data``: bytes of one row a line, or the region of a file that
        holds them, read only when asked for; each row's collector payload or None).

        The bad rows are kept as they came, split into rows and made
        :class:`BadEntry` only when read: a request of 23,000 bad rows costs
        nothing here, on the event loop."""
        self.good.extend(good)
        self.good_count += len(good)
        if not bad_sources:
            return
        self.bad_count += len(bad_sources)
        self._pending.append((bad_data, bad_sources))
        self._pending_rows += len(bad_sources)
        while self._pending_rows - len(self._pending[0][1]) >= self.max_events:  # older rows would not be shown
            self._pending_rows -= len(self._pending.popleft()[1])

    def _read_pending(self) -> None:
        while self._pending:
            data, sources = self._pending.popleft()
            keep = min(self.max_events, len(sources))
            if isinstance(data, bytes):
                rows = data.split(b"\n", len(sources))[:len(sources)][-keep:]
            else:  # where the rows went in a file (snowmelt.up_files.Region): only the last ones are read
                rows = data.last_lines(keep)
            self.bad.extend(map(BadEntry, rows, sources[len(sources) - len(rows):]))
        self._pending_rows = 0

    def summary(self) -> dict:
        return {"total": self.good_count + self.bad_count, "good": self.good_count, "bad": self.bad_count}

    def reset(self) -> dict:
        self.good.clear()
        self.bad.clear()
        self._pending.clear()
        self._pending_rows = 0
        self.good_count = self.bad_count = 0
        return self.summary()

    def query_good(self, event_type=None, schema=None, contexts=None, limit=None) -> Iterator[dict]:
        """The good events kept that pass the filters, oldest first, each shaped as it is taken (see
        :class:`~snowmelt.micro_shapes.GoodEntry`): what the filters chose is fixed when this is called."""
        wanted = set(contexts or ())
        chosen = _last([e for e in list(self.good)
                        if (event_type is None or e.event_type == event_type)
                        and (schema is None or e.schema == schema)
                        and (not wanted or wanted.issubset(e.contexts))], limit)
        return _shaped(chosen)

    def query_bad(self, vendor=None, version=None, limit=None) -> list[dict]:
        def api(e):
            return (e.get("collectorPayload") or {}).get("api") or (e.get("rawEvent") or {}).get("api") or {}
        self._read_pending()
        out = [e for e in (entry.shaped() for entry in list(self.bad))
               if (vendor is None or api(e).get("vendor") == vendor)
               and (version is None or api(e).get("version") == version)]
        return _last(out, limit)


def _shaped(entries: list[GoodEntry]) -> Iterator[dict]:
    for entry in entries:
        try:
            yield entry.shaped()
        except ValueError:  # a line the SDK cannot read (the files have it): the API skips what it cannot show
            log.exception("cannot shape an enriched event for the API")


def _last(items: list, limit) -> list:
    if limit is None:
        return items
    return items[-limit:] if limit > 0 else []


# --------------------------------------------------------------------------- HTTP


class MicroApi:
    """The ``/micro`` routes over a :class:`MicroStore` (see the module docstring)."""

    def __init__(self, store: MicroStore) -> None:
        self.store = store

    def add_routes(self, app: web.Application) -> None:
        """Add the routes; call before any catch-all route."""
        for path, handler in (("/micro/all", self.handle_all), ("/micro/good", self.handle_good),
                              ("/micro/bad", self.handle_bad)):
            app.router.add_route("GET", path, handler)
            app.router.add_route("POST", path, handler)
        app.router.add_route("POST", "/micro/reset", self.handle_reset)
        app.router.add_route("GET", "/micro/reset", self.refuse_get_reset)

    @staticmethod
    async def refuse_get_reset(_request: web.Request) -> web.Response:
        return web.json_response({"error": "method_not_allowed",
                                  "message": "reset with POST and Content-Type: application/json"},
                                 status=405, headers={"Allow": "POST"})

    @staticmethod
    async def _filters(request: web.Request, allowed: dict[str, type]) -> dict:
        if request.method != "POST" or not request.can_read_body:
            return {}
        data = await read_bounded(request, MAX_FILTER_BYTES)
        if data is None:
            raise web.HTTPBadRequest(text=f"the filter body is larger than {MAX_FILTER_BYTES} bytes")
        if not data.strip():
            return {}
        try:
            body = orjson.loads(data)
        except (ValueError, RecursionError):
            raise web.HTTPBadRequest(text="the body must be a JSON object of filters")
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="the body must be a JSON object of filters")
        out = {}
        for name, value in body.items():
            if name not in allowed:
                raise web.HTTPBadRequest(text=f"unknown filter {name[:40]!r} (known: {', '.join(allowed)})")
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

    @staticmethod
    async def _stream(request: web.Request, items: Iterable[dict]) -> web.StreamResponse:
        """``items`` as one JSON array, written one item at a time (the writer waits for the socket to drain)."""
        response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        await response.write(b"[")
        for i, item in enumerate(items):
            await response.write((b"," if i else b"") + json_bytes(item))
        await response.write(b"]")
        await response.write_eof()
        return response

    async def handle_all(self, _request: web.Request) -> web.Response:
        return web.json_response(self.store.summary(), headers={"Cache-Control": "no-store"})

    async def handle_good(self, request: web.Request) -> web.StreamResponse:
        filters = await self._filters(request, {"event_type": str, "schema": str, "contexts": list, "limit": int})
        return await self._stream(request, self.store.query_good(**filters))

    async def handle_bad(self, request: web.Request) -> web.StreamResponse:
        filters = await self._filters(request, {"vendor": str, "version": str, "limit": int})
        return await self._stream(request, self.store.query_bad(**filters))

    async def handle_reset(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json" and not (
                "Authorization" in request.headers or "X-Snowmelt-Token" in request.headers):
            return web.json_response({"error": "json_required",
                                      "message": "reset with Content-Type: application/json (or a token header)"},
                                     status=415)
        return web.json_response(self.store.reset(), headers={"Cache-Control": "no-store"})
