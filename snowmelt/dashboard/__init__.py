"""The live dashboard: a page at ``/`` and the JSON it polls, on any aiohttp app.

:func:`add_dashboard_routes` adds to an :class:`aiohttp.web.Application`:

``GET /`` and ``GET /dashboard/``
    the page (``index.html``): plain JavaScript and inline SVG, no build step,
    nothing fetched from another origin, so it works offline;
``GET /dashboard/dashboard.js``, ``GET /dashboard/dashboard.css``
    its script and style;
``GET /dashboard/data``
    every panel's rows, from the SQL in :mod:`snowmelt.dashboard.queries`::

        {"generated_at": "2026-11-28T03:24:58.123Z", "database": "snowplow",
         "poll_seconds": 5,
         "panels": {"totals": {"rows": [{"events": 2, ...}]},
                    "events_per_minute": {"rows": [{"minute": "2026-11-28 03:24:00", "good": 2, "bad": 0}, ...]},
                    ...,
                    "bad_row_reasons": {"rows": [], "error": "..."}}}

    A panel whose query fails carries ``error`` (the exception's text) and no
    rows; the others are still answered (the page shows the error in that
    panel only).  A panel that reads a model table which does not exist (the
    models are not loaded: a ClickHouse server that only ``snowmelt load
    clickhouse`` writes to) is answered from ``events`` instead
    (:data:`snowmelt.dashboard.queries.FALLBACKS`) and carries ``"source":
    "events"`` and a ``note`` saying so, which the page shows.  Answers are cached for ``cache_seconds`` and concurrent
    requests share one round of queries, so any number of open tabs costs one
    round of queries per ``cache_seconds`` at most.

The page polls ``/dashboard/data`` every ``poll_seconds`` (the answer says
how often), one request at a time, and keeps the last good numbers on screen
while the store is unreachable.  When the server refuses the data (``snowmelt
up`` answers clients on other machines only with ``up.api_token``), the page
reads the refusal's ``{"error": CODE, "message": TEXT}``: on 401
``token_required`` it asks for the token, keeps it in ``sessionStorage`` (this
tab only) and sends it as ``Authorization: Bearer <token>`` with every data
request, never in a URL; on 403 ``wrong_token`` it says so, forgets it and
asks again; on ``local_only`` or ``host_not_allowed`` it shows the server's
message, which says what the operator must configure (for ``local_only``:
``up.api_token``, or an SSH tunnel to the loopback port).  A 401 or 403
without one of these codes (a proxy in front) is shown as a refusal with its
status, and any other error status as that status, retried.

The dashboard does not know where the rows come from: it is given an async
``query(sql) -> list[dict]`` (column name -> JSON value, in the query's
order).  :func:`backend_query` makes one from a
:class:`loaders.clickhouse.Backend` (chdb in ``snowmelt up``, or a server),
running each query on a worker thread (the chdb backend serializes on its own
lock).  ``python -m snowmelt.dashboard --url http://localhost:8123`` serves
the same page against a ClickHouse server.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from snowmelt.dashboard.queries import PANELS, fallback_queries, panel_queries, tables_query

__all__ = ["add_dashboard_routes", "backend_query", "DashboardData", "STATIC_DIR", "PANELS"]

log = logging.getLogger("snowmelt.dashboard")

#: The page's files: ``index.html``, ``dashboard.js``, ``dashboard.css``.
STATIC_DIR = Path(__file__).resolve().parent
_STATIC = {"dashboard.js": "application/javascript", "dashboard.css": "text/css"}

Query = Callable[[str], Awaitable[list[dict[str, Any]]]]


def backend_query(backend) -> Query:
    """An async ``query(sql) -> list[dict]`` over a :class:`loaders.clickhouse.Backend` (chdb or server).

    Each row comes back as ClickHouse's own JSON of the row (``SELECT
    formatRow('JSONEachRow', *) FROM (sql)``), so the column names and the
    JSON values are ClickHouse's, the same on both backends; the call runs on
    the default executor's thread so the event loop keeps serving.
    """

    def run(sql: str) -> list[dict[str, Any]]:
        rows = backend.query(f"SELECT formatRow('JSONEachRow', *) FROM (\n{sql}\n)")
        return [json.loads(row[0]) for row in rows]

    async def query(sql: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(run, sql)

    return query


class DashboardData:
    """Runs every panel's query and keeps the answer for ``cache_seconds``.

    ``await data.get()`` returns the ``/dashboard/data`` document.  One round
    of queries runs at a time; a request arriving while one runs waits for it
    and gets its answer.
    """

    def __init__(self, query: Query, database: str = "snowplow", poll_seconds: float = 5.0,
                 cache_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.query = query
        self.database = database
        self.poll_seconds = poll_seconds
        self.cache_seconds = cache_seconds
        self.queries = panel_queries(database)
        self.fallbacks = fallback_queries(database)
        self._tables_sql = tables_query(database)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._cached: tuple[float, dict] | None = None
        self._errors: dict[str, str] = {}
        self._on_fallback: set[str] = set()

    async def _missing_tables(self) -> set[str] | None:
        """The tables the fallbacks depend on that the database lacks; None when that cannot be told."""
        wanted = {table for fallback in self.fallbacks.values() for table in fallback.tables}
        if not wanted:
            return set()
        try:
            rows = await self.query(self._tables_sql)
        except Exception:  # the store is down: the panels' own queries say so
            return None
        return wanted - {row.get("name") for row in rows}

    async def _panel(self, name: str, sql: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            rows = list(await self.query(sql))
        except Exception as exc:  # one failing panel must not blank the others
            error = str(exc) or type(exc).__name__
            if self._errors.get(name) != error:  # say it once, not at every poll
                log.warning("dashboard panel %s failed: %s", name, error)
            self._errors[name] = error
            return {"rows": [], "error": error, **(extra or {})}
        self._errors.pop(name, None)
        return {"rows": rows, **(extra or {})}

    async def _round(self) -> dict[str, dict[str, Any]]:
        """Every panel's answer; a panel whose model tables are missing answers from its fallback."""
        missing = await self._missing_tables()
        runs = {}
        for name, sql in self.queries.items():
            fallback = self.fallbacks.get(name)
            if fallback is not None and missing and missing.intersection(fallback.tables):
                if name not in self._on_fallback:  # say it once, not at every poll
                    log.info("dashboard panel %s: %s", name, fallback.note)
                    self._on_fallback.add(name)
                runs[name] = self._panel(name, fallback.sql, {"source": "events", "note": fallback.note})
            else:
                self._on_fallback.discard(name)
                runs[name] = self._panel(name, sql)
        answers = await asyncio.gather(*runs.values())
        return dict(zip(runs, answers))

    async def get(self) -> dict[str, Any]:
        """The document: ``generated_at``, ``database``, ``poll_seconds`` and ``panels``."""
        async with self._lock:
            if self._cached is not None and self._clock() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            panels = await self._round()
            doc = {
                "generated_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "database": self.database,
                "poll_seconds": self.poll_seconds,
                "panels": panels,
            }
            self._cached = (self._clock(), doc)
            return doc


def add_dashboard_routes(app: web.Application, query: Query, *, database: str = "snowplow",
                         poll_seconds: float = 5.0, cache_seconds: float = 1.0) -> DashboardData:
    """Serve the dashboard on ``app``: the page at ``/`` and ``/dashboard/``, its data at ``/dashboard/data``.

    ``query`` is an async function from SQL text to the rows as dicts (see
    :func:`backend_query`); ``database`` is the ClickHouse database holding
    ``events`` and ``bad_rows`` (``clickhouse.database``); the page polls every
    ``poll_seconds``; answers are shared for ``cache_seconds``.

    Call it before adding a catch-all route (aiohttp matches routes in the
    order they were added): ``snowmelt up``'s collector ends with
    ``/{tail:.*}``.  Returns the :class:`DashboardData` behind the endpoint.
    """
    data = DashboardData(query, database=database, poll_seconds=poll_seconds, cache_seconds=cache_seconds)
    page = (STATIC_DIR / "index.html").read_bytes()
    static = {name: (STATIC_DIR / name).read_bytes() for name in _STATIC}

    async def handle_page(_request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def handle_static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in static:
            raise web.HTTPNotFound()
        return web.Response(body=static[name], content_type=_STATIC[name], charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def handle_data(_request: web.Request) -> web.Response:
        return web.json_response(await data.get(), headers={"Cache-Control": "no-store"})

    app.router.add_get("/", handle_page)
    app.router.add_get("/dashboard/", handle_page)
    app.router.add_get("/dashboard/data", handle_data)
    app.router.add_get("/dashboard/{name:dashboard\\.(?:js|css)}", handle_static)
    return data
