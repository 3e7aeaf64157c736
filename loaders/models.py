"""The web data models: ``page_views``, ``sessions`` and ``users``, kept up to date from ``events``.

ClickHouse SQL (``loaders/models/*.sql``), the same text for a server and for
chdb, run through a :class:`loaders.clickhouse.Backend` (``command`` and
``query``), so ``snowmelt up`` shares its one chdb session between the loader,
the SQL endpoint and the models.  The semantics are those of Snowplow's web
model (the ``snowplow-web`` / ``snowplow-unified`` dbt packages):

``page_views`` (one row per ``page_view_id``, the ``id`` of the
``com.snowplowanalytics.snowplow/web_page`` entity)
    The page view event's fields (URL, title, referrer ``refr_*``, marketing
    ``mkt_*``, geo, device ``useragent``/``br_*``/``dvce_*``/``os_*``, the
    user and session ids); ``br_family``, ``os_family`` and ``dvce_type``
    come from the user-agent entities in ``derived_contexts`` (YAUAA's, else
    ``ua_parser_context``'s, else the legacy atomic fields: :data:`BR_FAMILY`,
    :data:`OS_FAMILY`, :data:`DVCE_TYPE`), as Snowplow's web model reads them;
    ``start_tstamp`` is its ``derived_tstamp``, ``end_tstamp`` the last
    ping's.  Engaged time, as Snowplow computes it: ``heartbeat *
    (distinct heartbeats with a ping - 1) + min_visit_length``, 0 for a page
    view without pings, where the heartbeat is the one the tracker was set
    to as the pings show it (their shortest spacing, in whole seconds;
    ``models.heartbeat`` for a page view with fewer than two pings), so any
    tracker setting gives the right time, and heartbeats are counted from
    the first ping (``dvce_created_tstamp``).  Scroll depth, as Snowplow's
    ``horizontal/vertical_percentage_scrolled``: ``round(100 *
    least(max(pp_yoffset_max) + br_viewheight, doc_height) / doc_height)``
    over the page view and its pings that have a document size (NULL when
    none has).  A page view is modelled once its ``page_view`` event is
    loaded (pings alone make no row, as in Snowplow); if the tracker sent the
    page view event twice, the earliest is used.
``sessions`` (one row per ``domain_sessionid``)
    First and last event time (``derived_tstamp``), events, page views, engaged
    time (the sum over its page views), ``is_engaged`` (engaged time at least
    ``models.engaged_seconds`` or at least two page views), the first and last
    page, the landing page view's referrer and marketing fields and
    ``default_channel_group`` (Snowplow's grouping, after GA4's: Direct,
    Organic Search, Paid Search, Organic Social, Paid Social, Email, Referral,
    Display, Affiliates, ..., Unassigned; referer-parser's ``refr_medium``
    stands in for GA4's source-category table), ``domain_sessionidx``,
    ``domain_userid`` and the session's last non-empty ``user_id``.  The
    channel (``loaders/models/channel.sql``) reads the campaign-attribution
    enrichment's ``mkt_*``, not ``utm_*`` in the URL, as Snowplow's does.  A
    session spanning midnight is one row: rows are keyed by the id only.
``users`` (one row per ``user_key``)
    Snowplow's identity stitching: a browser user is its ``domain_userid``
    (``user_key``), ``user_id`` = the latest non-empty user id of any of its
    sessions and ``stitched_user_id`` = ``coalesce(user_id,
    domain_userid)``; first and last seen, sessions, page views, engaged
    time and the acquisition (the first session's landing fields and
    channel) from its sessions.  Events without a ``domain_userid``
    (server-side trackers) belong to their ``user_id``, else to their
    ``network_userid`` when the tracker kept that cookie
    (:data:`NETWORK_USERID_KEPT`), read from the events; a tracker that
    gets a new ``network_userid`` per request makes no users.  People are
    distinct ``stitched_user_id``; the dashboard counts them by the same
    rule.

Incremental refresh
    The three tables are ``ReplacingMergeTree(_version)`` keyed by their id:
    read them with ``FINAL`` (or ``argMax(..., _version)``).  Each
    :meth:`Models.refresh`:

    1. collects the keys (page view, session, user) of the events with
       ``load_tstamp`` (set by the loader at insert) after the load watermark
       (minus :attr:`Models.visibility_lag` seconds, so an insert that became
       visible late on a server is not missed) into ``_models_new``, leaving
       out events older than the newest modelled ``collector_tstamp`` minus
       ``models.late_seconds`` (too late; :meth:`Models.rebuild` models
       everything again);
    2. recomputes those page views from *all* their events, then those
       sessions from all their events and their page views, then those users
       from all their sessions; the events are read from ``collector_tstamp
       >= bound``, the earliest of the new events and of the touched rows'
       ``first_collector_tstamp``, which is exact and lets ClickHouse skip
       older partitions;
    3. inserts only the rows whose content changed (a hash of the row,
       ``_hash``), with the refresh's number as ``_version``, so a refresh
       that finds nothing new writes nothing, and a late event replaces the
       rows it changes;
    4. stores the watermarks in ``_models_state``.

    A refresh's work is proportional to what the new events touch.  One
    refresher per database: the ``_models_*`` scratch tables are shared.

Layout changes: the tables record a layout number; :meth:`Models.create`
drops and rebuilds the model tables (they are derived data) when it differs.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from snowmelt.config import ModelsConfig

if TYPE_CHECKING:  # pyarrow comes with it: not imported where only the model names are wanted
    from loaders.clickhouse import Backend

__all__ = ["BR_FAMILY", "DVCE_TYPE", "MODEL_TABLES", "Models", "ModelsRefresher", "NETWORK_USERID_KEPT", "OS_FAMILY",
           "PAGE_VIEW_ID", "derived_entity_field", "render_sql"]

log = logging.getLogger("snowmelt.models")

SQL_DIR = Path(__file__).parent / "models"
#: The model tables, in refresh order.
MODEL_TABLES = ("page_views", "sessions", "users")
#: Bumped when a model table's columns change: older tables are dropped and rebuilt.
LAYOUT = 2
_STATE_NAME = "models"
_WEB_PAGE_PREFIX = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-"
WEB_PAGE_COLUMN = "contexts_com_snowplowanalytics_snowplow_web_page_1"
# the page view id from the wide-row column (an Array(String) of the entities' data), or from the
# contexts JSON while no event with the entity has added that column
_PAGE_VIEW_ID_WIDE = f"nullIf(JSONExtractString(arrayElement(`{WEB_PAGE_COLUMN}`, 1), 'id'), '')"
_PAGE_VIEW_ID_JSON = (
    "nullIf(JSONExtractString(arrayFirst(c -> startsWith(JSONExtractString(c, 'schema'), "
    f"'{_WEB_PAGE_PREFIX}'), JSONExtractArrayRaw(ifNull(contexts, ''), 'data')), 'data', 'id'), '')")
#: SQL over an ``events`` row: its page view id (the ``web_page`` entity's ``id``), NULL without
#: one; read from the contexts JSON, so it works whether or not the wide column exists yet.  The
#: models read the wide column once it exists (the same value, cheaper).
PAGE_VIEW_ID = _PAGE_VIEW_ID_JSON
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")

UA_PARSER_PREFIX = "iglu:com.snowplowanalytics.snowplow/ua_parser_context/"
YAUAA_PREFIX = "iglu:nl.basjes/yauaa_context/"


def derived_entity_field(prefix: str, key: str) -> str:
    """SQL: a string field of the first ``derived_contexts`` entity whose schema starts with ``prefix``.

    NULL when the event has no such entity or the field is missing or empty.
    """
    return (f"nullIf(JSONExtractString(arrayFirst(c -> startsWith(JSONExtractString(c, 'schema'), '{prefix}'), "
            f"JSONExtractArrayRaw(ifNull(derived_contexts, ''), 'data')), 'data', '{key}'), '')")


_UA_FAMILY = derived_entity_field(UA_PARSER_PREFIX, "useragentFamily")
_UA_OS = derived_entity_field(UA_PARSER_PREFIX, "osFamily")
_UA_DEVICE = derived_entity_field(UA_PARSER_PREFIX, "deviceFamily")

#: SQL over an ``events`` row: the browser family, from YAUAA's ``agentName``, else ua_parser's
#: ``useragentFamily``, else the atomic ``br_family`` (the legacy user-agent-utils enrichment).
#: Snowplow's web model reads these entities when their enrichments are on; an event that none of
#: them parsed has no browser (NULL), as there.
BR_FAMILY = f"coalesce({derived_entity_field(YAUAA_PREFIX, 'agentName')}, {_UA_FAMILY}, nullIf(br_family, ''))"
#: SQL: the operating system family, from YAUAA's ``operatingSystemName``, else ua_parser's ``osFamily``,
#: else the atomic ``os_family``.
OS_FAMILY = (f"coalesce({derived_entity_field(YAUAA_PREFIX, 'operatingSystemName')}, {_UA_OS}, "
             f"nullIf(os_family, ''))")
#: SQL: the device class in YAUAA's words (``Desktop``, ``Phone``, ``Tablet``, ``Robot``, ...): YAUAA's
#: ``deviceClass``, else the atomic ``dvce_type``, else read off ua_parser's families (ua-parser names
#: a device model, not a class: ``Spider`` is a robot, an iPad or an Android without ``Mobile`` in
#: its user agent a tablet, other iOS and Android devices phones, the desktop systems desktops).
DVCE_TYPE = (f"coalesce({derived_entity_field(YAUAA_PREFIX, 'deviceClass')}, nullIf(dvce_type, ''), "
             f"if({_UA_OS} IS NULL AND {_UA_DEVICE} IS NULL, NULL, multiIf("
             f"{_UA_DEVICE} = 'Spider', 'Robot', "
             f"match(ifNull({_UA_DEVICE}, ''), '(?i)ipad|tablet|kindle') OR "
             f"({_UA_OS} = 'Android' AND NOT match(ifNull(useragent, ''), 'Mobile')), 'Tablet', "
             f"{_UA_OS} IN ('iOS', 'Android') OR match(ifNull({_UA_DEVICE}, ''), '(?i)iphone|ipod|phone'), 'Phone', "
             f"match(ifNull({_UA_OS}, ''), '^(Windows|Mac OS X|Linux|Ubuntu|Chrome OS|Fedora|Debian|FreeBSD|"
             f"OpenBSD|NetBSD|Solaris|Mint|Red Hat|SUSE|openSUSE|Gentoo|Arch Linux)'), 'Desktop', 'Unknown')))")

#: SQL aggregate over the events of one ``network_userid``: true when the tracker kept the
#: collector's cookie, i.e. the id came back in two requests or more (two distinct collector
#: times).  A server-side tracker that keeps no cookie gets a new id with every request: each of
#: those ids is seen in one request only and identifies nobody.
NETWORK_USERID_KEPT = "uniqExact(collector_tstamp) >= 2"


def render_sql(name: str, **values: object) -> str:
    """The text of ``loaders/models/{name}.sql`` with each ``{{ key }}`` replaced by ``values[key]``.

    Values are SQL text (identifiers already quoted, literals already
    formatted); an unknown placeholder is a ``KeyError``.
    """
    text = (SQL_DIR / f"{name}.sql").read_text()
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def _ts(ms: int) -> str:
    # a DateTime64(3, 'UTC') literal from epoch milliseconds
    return f"fromUnixTimestamp64Milli(toInt64({int(ms)}), 'UTC')"


class Models:
    """The page_views, sessions and users models in ``database`` (see the module docstring).

    ``backend`` is the store's :class:`~loaders.clickhouse.Backend` (a
    ``ChdbBackend`` shared with the loader in ``snowmelt up``, or a
    ``ServerBackend``); ``database`` the one holding ``events`` (unquoted,
    ``clickhouse.database``); ``config`` the ``models`` section.

    Thread-safe: :meth:`refresh`, :meth:`create` and :meth:`rebuild` run one at
    a time (each statement also takes the backend's own lock on chdb).
    """

    #: Seconds of load time re-read before the watermark on every refresh (inserts on a
    #: server become visible when they finish, not at their load_tstamp).
    visibility_lag: float = 10.0

    def __init__(self, backend: Backend, database: str, config: ModelsConfig) -> None:
        if config.heartbeat <= 0:
            raise ValueError("models.heartbeat must be positive")
        self.backend = backend
        self.database = database
        self.config = config
        self._db = "`" + database.replace("`", "``") + "`"
        self._lock = threading.Lock()
        self._page_view_id = _PAGE_VIEW_ID_JSON

    # -- DDL -------------------------------------------------------------------------------------
    def create(self) -> None:
        """Create the model, state and scratch tables if missing (idempotent).

        Requires the ``events`` table (``ClickHouseStore.open`` first).  Model
        tables of another layout (or made before any refresh) are dropped and
        rebuilt from the events on the next refresh.
        """
        with self._lock:
            run = self.backend.command
            run(f"CREATE DATABASE IF NOT EXISTS {self._db}")
            run(render_sql("state_table", db=self._db))
            state = self._state()
            # another layout, or none recorded (no refresh has run: whatever tables there are, of
            # any layout, hold nothing the first refresh does not recompute)
            if state is None or state[3] != LAYOUT:
                if state is not None:
                    log.info("models: layout %s -> %s, rebuilding the model tables", state[3], LAYOUT)
                for table in MODEL_TABLES:
                    run(f"DROP TABLE IF EXISTS {self._db}.{table}")
                    run(f"DROP TABLE IF EXISTS {self._db}._models_stage_{table}")
                run(f"TRUNCATE TABLE {self._db}._models_state")
            for table in MODEL_TABLES:
                run(render_sql(f"{table}_table", db=self._db))
                run(f"CREATE TABLE IF NOT EXISTS {self._db}._models_stage_{table} AS {self._db}.{table} "
                    f"ENGINE = MergeTree ORDER BY tuple()")
            # scratch, emptied by every refresh: made anew so that it has this version's columns
            run(f"DROP TABLE IF EXISTS {self._db}._models_new")
            run(render_sql("new_events_table", db=self._db))

    def rebuild(self) -> dict:
        """Empty the models and the watermarks, then model every event again (one refresh)."""
        with self._lock:
            for table in MODEL_TABLES:
                self.backend.command(f"TRUNCATE TABLE {self._db}.{table}")
            self.backend.command(f"TRUNCATE TABLE {self._db}._models_state")
        return self.refresh()

    # -- state -----------------------------------------------------------------------------------
    def _state(self) -> tuple[int, int, int, int, int] | None:
        """(load watermark ms, event watermark ms, refresh id, layout, seq) or None before the first refresh."""
        rows = self.backend.query(
            f"SELECT toUnixTimestamp64Milli(load_watermark), toUnixTimestamp64Milli(event_watermark), "
            f"refresh_id, layout, seq FROM {self._db}._models_state FINAL WHERE name = '{_STATE_NAME}'")
        return tuple(int(v) for v in rows[0]) if rows else None  # type: ignore[return-value]

    def watermark(self) -> dict:
        """The state: ``load_tstamp_ms``, ``collector_tstamp_ms`` (epoch ms) and ``refresh_id``; zeros before any."""
        state = self._state()
        load_ms, event_ms, refresh_id = state[:3] if state else (0, 0, 0)
        return {"load_tstamp_ms": load_ms, "collector_tstamp_ms": event_ms, "refresh_id": refresh_id}

    def _scalar(self, sql: str):
        rows = self.backend.query(sql)
        return rows[0][0] if rows else None

    def _detect_page_view_id(self) -> None:
        # the wide column is cheaper to read than the contexts JSON; it exists once an event with
        # the web_page entity was loaded, and is computed on read for parts written before that
        if self._page_view_id is _PAGE_VIEW_ID_WIDE:
            return
        escaped = self.database.replace("\\", "\\\\").replace("'", "\\'")
        rows = self.backend.query(f"SELECT 1 FROM system.columns WHERE database = '{escaped}' "
                                  f"AND table = 'events' AND name = '{WEB_PAGE_COLUMN}'")
        if rows:
            self._page_view_id = _PAGE_VIEW_ID_WIDE

    # -- refresh ---------------------------------------------------------------------------------
    def refresh(self) -> dict:
        """Bring the models up to date with the events loaded since the last refresh.

        Returns what changed: ``events`` (new events modelled), ``page_views``,
        ``sessions`` and ``users`` (rows inserted because new or changed),
        ``refresh_id`` (the ``_version`` of those rows; unchanged when nothing
        was written) and ``seconds``.  Running it again with no new events
        writes nothing and returns zeros.  Raises what the backend raises
        (``StoreUnavailable`` when ClickHouse is down); the state is only
        advanced after the models were written, so a failed refresh is redone.
        """
        started = time.monotonic()
        with self._lock:
            result = self._refresh()
        result["seconds"] = round(time.monotonic() - started, 3)
        return result

    def _refresh(self) -> dict:
        db, run = self._db, self.backend.command
        cfg = self.config
        state = self._state()
        load_wm, event_wm, refresh_id = state[:3] if state else (0, 0, 0)
        seq = state[4] if state else 0
        self._detect_page_view_id()
        result = {"events": 0, "page_views": 0, "sessions": 0, "users": 0, "refresh_id": refresh_id}

        # 1. the keys of the newly loaded events
        run(f"TRUNCATE TABLE {db}._models_new")
        load_from = max(0, load_wm - int(self.visibility_lag * 1000)) if state else 0
        event_from = max(0, event_wm - cfg.late_seconds * 1000) if state else 0
        run(render_sql("new_events", db=db, page_view_id=self._page_view_id,
                       load_from=_ts(load_from), event_from=_ts(event_from)))
        [(total, new, max_load, max_event, min_event)] = self.backend.query(
            f"SELECT count(), countIf(load_tstamp > {_ts(load_wm)}), toUnixTimestamp64Milli(max(load_tstamp)), "
            f"toUnixTimestamp64Milli(max(collector_tstamp)), toUnixTimestamp64Milli(min(collector_tstamp)) "
            f"FROM {db}._models_new")
        if int(total) == 0:
            return result
        result["events"] = int(new)

        # the earliest event any touched row may have: its first_collector_tstamp, or a new event's
        bound = int(min_event)
        for table, key in (("page_views", "page_view_id"), ("sessions", "domain_sessionid")):
            earliest = self._scalar(
                f"SELECT toUnixTimestamp64Milli(minOrNull(first_collector_tstamp)) FROM {db}.{table} FINAL "
                f"WHERE {key} IN (SELECT {key} FROM {db}._models_new WHERE {key} IS NOT NULL)")
            if earliest is not None:
                bound = min(bound, int(earliest))

        # 2-3. recompute the touched rows, insert those that changed
        version = refresh_id + 1
        values = {"db": db, "page_view_id": self._page_view_id, "bound": _ts(bound), "heartbeat": int(cfg.heartbeat),
                  "min_visit_length": int(cfg.min_visit_length), "engaged_seconds": int(cfg.engaged_seconds),
                  "br_family": BR_FAMILY, "os_family": OS_FAMILY, "dvce_type": DVCE_TYPE,
                  "network_userid_kept": NETWORK_USERID_KEPT}
        keys = {"page_views": "page_view_id", "sessions": "domain_sessionid", "users": "user_key"}
        channels = {"sessions": render_sql("channel", lm="lm", ls="ls", rm="rm"),
                    "users": render_sql("channel", lm="lower(trim(ifNull(landing.4, '')))",
                                        ls="lower(trim(ifNull(landing.5, '')))", rm="ifNull(landing.2, '')")}
        for table in MODEL_TABLES:
            sql = render_sql(table, **values, channel=channels.get(table, ""))
            result[table] = self._replace(table, keys[table], sql, version)

        # 4. advance the watermarks (the refresh id only when rows were written)
        written = any(result[table] for table in MODEL_TABLES)
        if not written and result["events"] == 0:
            return result  # only re-read events (the visibility lag), nothing to record
        result["refresh_id"] = version if written else refresh_id
        run(f"INSERT INTO {db}._models_state (name, load_watermark, event_watermark, refresh_id, layout, seq) "
            f"SELECT '{_STATE_NAME}', {_ts(max(load_wm, int(max_load)))}, {_ts(max(event_wm, int(max_event)))}, "
            f"{result['refresh_id']}, {LAYOUT}, {seq + 1}")
        return result

    def _replace(self, table: str, key: str, select: str, version: int) -> int:
        """Stage ``select``'s rows of ``table``, insert those new or changed as ``version``; their count."""
        db, run = self._db, self.backend.command
        stage = f"{db}._models_stage_{table}"
        run(f"TRUNCATE TABLE {stage}")
        run(f"INSERT INTO {stage} SELECT *, cityHash64(tuple(*)) AS _hash, 0 AS _version FROM ({select})")
        changed = (f"FROM {stage} WHERE ({key}, _hash) NOT IN (SELECT {key}, _hash FROM {db}.{table} FINAL "
                   f"WHERE {key} IN (SELECT {key} FROM {stage}))")
        count = int(self._scalar(f"SELECT count() {changed}") or 0)
        if count:
            run(f"INSERT INTO {db}.{table} SELECT * REPLACE ({int(version)} AS _version) {changed}")
        return count


class ModelsRefresher:
    """Runs :meth:`Models.refresh` every ``interval`` seconds on a daemon thread until stopped.

    ``interval`` defaults to ``models.refresh_interval``.  A failing refresh
    is logged (and passed to ``on_error`` if given) and retried at the next
    tick; the thread never dies of it.  ``on_refresh`` receives each
    refresh's result dict.  :meth:`stop` ends the loop and, by default, runs
    one last refresh so that everything loaded before the stop is modelled
    (call it after the loader has drained).  :meth:`refresh_now` wakes the
    loop for an immediate refresh.
    """

    def __init__(self, models: Models, interval: float | None = None,
                 on_refresh: Callable[[dict], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.models = models
        self.interval = models.config.refresh_interval if interval is None else interval
        self.on_refresh = on_refresh
        self.on_error = on_error
        self.last_result: dict | None = None
        self.last_error: BaseException | None = None
        self.refreshes = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="snowmelt-models", daemon=True)

    def start(self) -> ModelsRefresher:
        """Start the thread (the first refresh runs at once); returns self."""
        self._thread.start()
        return self

    def refresh_now(self) -> None:
        """Ask the thread for a refresh without waiting for the interval."""
        self._wake.set()

    def _run_once(self) -> None:
        try:
            result = self.models.refresh()
        except Exception as exc:  # noqa: BLE001  (logged and retried: the loop outlives a store outage)
            self.last_error = exc
            log.warning("models refresh failed: %s", exc)
            if self.on_error is not None:
                self.on_error(exc)
            return
        self.last_result, self.last_error = result, None
        self.refreshes += 1
        if self.on_refresh is not None:
            self.on_refresh(result)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._run_once()
            self._wake.wait(self.interval)
            self._wake.clear()

    def stop(self, final_refresh: bool = True, timeout: float | None = 60.0) -> None:
        """Stop the loop, wait for the thread, then refresh once more if ``final_refresh``."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if final_refresh:
            self._run_once()
