"""The SQL of each dashboard panel: ClickHouse SQL over ``events``, ``bad_rows`` and the models.

One text per panel, the same for a ClickHouse server and for chdb (the
engine in ``snowmelt up``), read by the page's JSON endpoint
(:func:`snowmelt.dashboard.add_dashboard_routes`) and written into the
Grafana dashboard (``deploy/grafana/snowmelt-dashboard.json``, made by
:func:`snowmelt.dashboard.grafana.grafana_dashboard`).  Each text names its
tables as ``{database}.events``, ``{database}.bad_rows``,
``{database}.page_views`` and ``{database}.users``; :func:`panel_queries`
puts the database in (Grafana puts its ``${database}`` variable there).

Windows are fixed and relative to the server's clock (``now()``), like a
live wall screen: the last 30 minutes for traffic, the last 5 and 30 minutes
for activity, the last 24 hours for bad-row reasons.  Events are placed in
time by ``collector_tstamp`` (when the collector received them: the
partition key, and the one clock every event has; a tracker's clock may be
wrong), bad rows by ``failure_tstamp``.  The panels read ``events`` without
``FINAL`` (an event delivered twice in two batches counts twice until
ClickHouse merges the parts; cheap and close enough for a live view).

The panels and the models (``loaders/models``, Snowplow's web model) define
things once:

- a user is a person as the ``users`` model stitches them: the latest
  ``user_id`` of the event's ``domain_userid``, else its ``user_id``, else
  its ``domain_userid``, else a ``network_userid`` the tracker kept (see
  :func:`_with_users`); a session is ``domain_sessionid`` (events without
  one count in no session);
- referrers: ``refr_medium``/``refr_source`` from the referer-parser
  enrichment, else the referrer's host (medium ``unknown``); internal
  referrers (medium ``internal``, or the page's own host when no medium was
  computed) are left out;
- campaigns: ``mkt_*`` from the campaign-attribution enrichment, the fields
  the models' ``default_channel_group`` reads (as Snowplow's web model does;
  neither parses ``utm_*`` off the URL);
- devices: the ``page_views`` model's ``dvce_type`` / ``os_family`` /
  ``br_family`` (from the ua_parser or YAUAA entity), read from the model so
  that both show the same values.  Where the models are not loaded (a
  ClickHouse server that only ``snowmelt load clickhouse`` writes to), the
  panel counts the page views from ``events`` with the model's own
  expressions (:data:`DEVICES_FROM_EVENTS`, see :data:`FALLBACKS`), and says
  so;
- bad-row reasons: the bad row's type (its schema's name) and a short reason
  read off its ``failure`` (the first message's field and expectation, the
  schema key that failed, the enrichment, the parsing error type, ...).

Every count is cast to ``UInt32`` (a number in JSON, never a quoted 64-bit
integer); labels that are missing read ``(unknown)``.  Every panel answers
on empty tables (zero counts, or no rows for the lists).
"""
from __future__ import annotations

import re

from dataclasses import dataclass

from loaders.models import BR_FAMILY, DVCE_TYPE, NETWORK_USERID_KEPT, OS_FAMILY, PAGE_VIEW_ID

__all__ = ["PANELS", "panel_queries", "EVENTS_PER_MINUTE", "ACTIVE", "TOTALS", "TOP_PAGES", "REFERRERS",
           "CAMPAIGNS", "COUNTRIES", "DEVICES", "DEVICES_FROM_EVENTS", "BAD_ROW_REASONS", "UNKNOWN", "Fallback",
           "FALLBACKS", "fallback_queries", "tables_query"]

#: The label of a missing value.
UNKNOWN = "(unknown)"

_LAST_30M = "collector_tstamp >= now() - toIntervalMinute(30)"


def _with_users(columns: str, where: str = "", computed: dict[str, str] | None = None) -> str:
    """The last 30 minutes' events (``columns`` and ``where``) with ``user``, the person they belong to.

    ``computed`` adds columns computed from the event's row, by name (``{"ua_browser": BR_FAMILY}``).

    The rule of the ``users`` model (``loaders/models/users.sql``), over the same 30 minutes: the
    latest ``user_id`` seen with the event's ``domain_userid`` (Snowplow's stitching), else its own
    ``user_id``, else its ``domain_userid``, else its ``network_userid`` when the tracker kept that
    cookie (:data:`loaders.models.NETWORK_USERID_KEPT`: the id came back in two requests or more; a
    server-side tracker that gets a new id with every request identifies nobody), else NULL.
    """
    extra = f" AND {where}" if where else ""
    computed = computed or {}
    inner = "".join(f", {sql} AS {name}" for name, sql in computed.items())
    outer = "".join(f", {name}" for name in computed)
    return f"""SELECT {columns}{outer},
           coalesce(nullIf(stitch.uid, ''), nullIf(ev.user_id, ''), nullIf(ev.domain_userid, ''),
                    if(kept.nuid != '', nullIf(ev.network_userid, ''), NULL)) AS user
    FROM (
        SELECT {columns}{inner}, user_id, domain_userid, network_userid
        FROM {{database}}.events
        WHERE {_LAST_30M}{extra}
    ) AS ev
    LEFT JOIN (
        SELECT assumeNotNull(domain_userid) AS duid, argMax(assumeNotNull(user_id), collector_tstamp) AS uid
        FROM {{database}}.events
        WHERE {_LAST_30M} AND ifNull(user_id, '') != '' AND ifNull(domain_userid, '') != ''
        GROUP BY duid
    ) AS stitch ON stitch.duid = ev.domain_userid
    LEFT JOIN (
        SELECT assumeNotNull(network_userid) AS nuid
        FROM {{database}}.events
        WHERE {_LAST_30M} AND ifNull(network_userid, '') != ''
        GROUP BY nuid
        HAVING {NETWORK_USERID_KEPT}
    ) AS kept ON kept.nuid = ev.network_userid"""


# ---------------------------------------------------------------------------------------------- panels

#: Good and bad events per minute, the last 30 minutes (30 rows, the current minute last, zeros filled):
#: ``minute`` (DateTime, UTC), ``good``, ``bad``.
EVENTS_PER_MINUTE = """\
SELECT minute, toUInt32(sum(good)) AS good, toUInt32(sum(bad)) AS bad
FROM (
    SELECT toStartOfMinute(now('UTC')) - toIntervalMinute(number) AS minute, 0 AS good, 0 AS bad
    FROM numbers(30)
    UNION ALL
    SELECT toStartOfMinute(toDateTime(collector_tstamp, 'UTC')) AS minute, count() AS good, 0 AS bad
    FROM {database}.events
    WHERE collector_tstamp >= toStartOfMinute(now('UTC')) - toIntervalMinute(29)
      AND collector_tstamp < toStartOfMinute(now('UTC')) + toIntervalMinute(1)
    GROUP BY minute
    UNION ALL
    SELECT toStartOfMinute(toDateTime(failure_tstamp, 'UTC')) AS minute, 0 AS good, count() AS bad
    FROM {database}.bad_rows
    WHERE failure_tstamp >= toStartOfMinute(now('UTC')) - toIntervalMinute(29)
      AND failure_tstamp < toStartOfMinute(now('UTC')) + toIntervalMinute(1)
    GROUP BY minute
)
GROUP BY minute
ORDER BY minute"""

#: Active users and sessions (and events) in the last 5 and 30 minutes: one row.  Users are people
#: as the ``users`` model counts them (see :func:`_with_users`).
ACTIVE = f"""\
SELECT
    toUInt32(uniqExactIf(user, recent)) AS users_5m,
    toUInt32(uniqExact(user)) AS users_30m,
    toUInt32(uniqExactIf(session, recent)) AS sessions_5m,
    toUInt32(uniqExact(session)) AS sessions_30m,
    toUInt32(countIf(recent)) AS events_5m,
    toUInt32(count()) AS events_30m
FROM (
    SELECT user, nullIf(domain_sessionid, '') AS session, collector_tstamp >= now() - toIntervalMinute(5) AS recent
    FROM ({_with_users("domain_sessionid, collector_tstamp")})
)"""

#: Everything stored: one row, ``events``, ``bad_rows`` and ``last_event`` (UTC text, '' when empty).
TOTALS = """\
SELECT
    (SELECT toUInt32(count()) FROM {database}.events) AS events,
    (SELECT toUInt32(count()) FROM {database}.bad_rows) AS bad_rows,
    (SELECT if(count() = 0, '', formatDateTime(max(collector_tstamp), '%Y-%m-%d %H:%i:%S', 'UTC'))
     FROM {database}.events) AS last_event"""

#: The 10 pages with the most page views in the last 30 minutes: ``page`` (host + path), ``title``,
#: ``page_views``, ``users``.
TOP_PAGES = f"""\
SELECT concat(ifNull(page_urlhost, ''), ifNull(page_urlpath, '')) AS page,
       ifNull(any(page_title), '') AS title,
       toUInt32(count()) AS page_views,
       toUInt32(uniqExact(user)) AS users
FROM ({_with_users("page_urlhost, page_urlpath, page_title", "event = 'page_view'")})
GROUP BY page
ORDER BY page_views DESC, users DESC, page
LIMIT 10"""

#: The 10 external referrers of the most page views in the last 30 minutes: ``medium``, ``source``,
#: ``page_views``, ``users``.
REFERRERS = f"""\
SELECT medium, source, toUInt32(count()) AS page_views, toUInt32(uniqExact(user)) AS users
FROM (
    SELECT ifNull(refr_medium, if(refr_urlhost = page_urlhost, 'internal', 'unknown')) AS medium,
           coalesce(nullIf(refr_source, ''), refr_urlhost) AS source,
           user
    FROM ({_with_users("refr_medium, refr_source, refr_urlhost, page_urlhost",
                       "event = 'page_view' AND ifNull(refr_urlhost, '') != ''")})
)
WHERE medium != 'internal'
GROUP BY medium, source
ORDER BY page_views DESC, users DESC, medium, source
LIMIT 10"""

#: The 10 campaigns of the most page views in the last 30 minutes: ``campaign``, ``source``, ``medium``,
#: ``page_views``, ``users``.  The campaign-attribution enrichment's ``mkt_*`` fields, as the models'
#: ``mkt_*`` and ``default_channel_group`` and Snowplow's web model read them; ``utm_*`` parameters
#: in a URL count only once that enrichment turned them into ``mkt_*``.
CAMPAIGNS = f"""\
SELECT ifNull(mkt_c, '{UNKNOWN}') AS campaign, ifNull(mkt_s, '{UNKNOWN}') AS source,
       ifNull(mkt_m, '{UNKNOWN}') AS medium,
       toUInt32(count()) AS page_views, toUInt32(uniqExact(user)) AS users
FROM (
    SELECT nullIf(mkt_campaign, '') AS mkt_c, nullIf(mkt_source, '') AS mkt_s, nullIf(mkt_medium, '') AS mkt_m, user
    FROM ({_with_users("mkt_campaign, mkt_source, mkt_medium", "event = 'page_view'")})
)
WHERE mkt_c IS NOT NULL OR mkt_s IS NOT NULL OR mkt_m IS NOT NULL
GROUP BY campaign, source, medium
ORDER BY page_views DESC, users DESC, campaign, source, medium
LIMIT 10"""

#: Users and events by country (``geo_country``, ISO 3166-1 alpha-2) in the last 30 minutes, top 10.
COUNTRIES = f"""\
SELECT ifNull(nullIf(geo_country, ''), '{UNKNOWN}') AS country,
       toUInt32(uniqExact(user)) AS users, toUInt32(count()) AS events
FROM ({_with_users("geo_country")})
GROUP BY country
ORDER BY users DESC, events DESC, country
LIMIT 10"""

#: Users and page views by device type, operating system and browser, over the page views that began
#: in the last 30 minutes: ``facet`` (``device``, ``os`` or ``browser``), ``name``, ``users``,
#: ``page_views``; the top 8 of each facet.  Read from the ``page_views`` model (``dvce_type``,
#: ``os_family``, ``br_family``, from the user-agent entities: ``loaders.models.BR_FAMILY`` and its
#: neighbours) and its users from the ``users`` model (``stitched_user_id``), so the panel shows
#: what the models hold, once the models have been refreshed.  Without the model tables the
#: dashboard runs :data:`DEVICES_FROM_EVENTS` instead.
DEVICES = f"""\
SELECT facet, name, toUInt32(uniqExact(user)) AS users, toUInt32(count()) AS page_views
FROM (
    SELECT user, pair.1 AS facet, pair.2 AS name
    FROM (
        SELECT coalesce(nullIf(u.stitched_user_id, ''), pv.user_id, pv.domain_userid) AS user,
               ifNull(pv.dvce_type, '{UNKNOWN}') AS device, ifNull(pv.os_family, '{UNKNOWN}') AS os,
               ifNull(pv.br_family, '{UNKNOWN}') AS browser
        FROM (
            SELECT nullIf(user_id, '') AS user_id, nullIf(domain_userid, '') AS domain_userid, dvce_type, os_family,
                   br_family
            FROM {{database}}.page_views FINAL
            WHERE first_collector_tstamp >= now() - toIntervalMinute(30)
        ) AS pv
        LEFT JOIN (
            SELECT user_key, stitched_user_id FROM {{database}}.users FINAL
        ) AS u ON u.user_key = pv.domain_userid
    )
    ARRAY JOIN [('device', device), ('os', os), ('browser', browser)] AS pair
)
GROUP BY facet, name
ORDER BY facet, users DESC, page_views DESC, name
LIMIT 8 BY facet"""

#: The devices panel where the models are not loaded: the same columns and rows as :data:`DEVICES`,
#: counted from ``events``.  A page view is what the ``page_views`` model makes one: a ``page_view``
#: event with a ``web_page`` entity (:data:`loaders.models.PAGE_VIEW_ID`), the earliest if the
#: tracker sent it twice; its device type, OS and browser are the model's expressions
#: (:data:`loaders.models.DVCE_TYPE`, :data:`~loaders.models.OS_FAMILY`,
#: :data:`~loaders.models.BR_FAMILY`) over that event.  The window is the page view event's
#: ``collector_tstamp`` (the model's ``first_collector_tstamp`` is the same time unless a ping of the
#: page view arrived before it), and users are people as the other panels count them
#: (:func:`_with_users`: the ``users`` model's rule over the last 30 minutes).
DEVICES_FROM_EVENTS = f"""\
SELECT facet, name, toUInt32(uniqExact(user)) AS users, toUInt32(count()) AS page_views
FROM (
    SELECT user, pair.1 AS facet, pair.2 AS name
    FROM (
        SELECT user, ifNull(ua_device, '{UNKNOWN}') AS device, ifNull(ua_os, '{UNKNOWN}') AS os,
               ifNull(ua_browser, '{UNKNOWN}') AS browser
        FROM ({_with_users("event_id, collector_tstamp, derived_tstamp", "event_name = 'page_view'",
                           {"pv_id": PAGE_VIEW_ID, "ua_device": DVCE_TYPE, "ua_os": OS_FAMILY,
                            "ua_browser": BR_FAMILY})})
        WHERE pv_id IS NOT NULL
        ORDER BY pv_id, coalesce(derived_tstamp, collector_tstamp), event_id
        LIMIT 1 BY pv_id
    )
    ARRAY JOIN [('device', device), ('os', os), ('browser', browser)] AS pair
)
GROUP BY facet, name
ORDER BY facet, users DESC, page_views DESC, name
LIMIT 8 BY facet"""

_REASON = """multiIf(
        JSONExtractString(failure, 'type') != '', JSONExtractString(failure, 'type'),
        JSONExtractString(failure, 'messages', 1, 'error', 'error') != '',
            concat(JSONExtractString(failure, 'messages', 1, 'error', 'error'), ' ',
                   JSONExtractString(failure, 'messages', 1, 'schemaKey')),
        JSONExtractString(failure, 'messages', 1, 'message', 'field') != '',
            concat(JSONExtractString(failure, 'messages', 1, 'message', 'field'), ': ',
                   JSONExtractString(failure, 'messages', 1, 'message', 'expectation')),
        JSONExtractString(failure, 'messages', 1, 'enrichment', 'identifier') != '',
            concat('enrichment ', JSONExtractString(failure, 'messages', 1, 'enrichment', 'identifier')),
        JSONExtractString(failure, 'messages', 1, 'field') != '',
            concat(JSONExtractString(failure, 'messages', 1, 'field'), ': ',
                   JSONExtractString(failure, 'messages', 1, 'expectation')),
        JSONExtractString(failure, 'messages', 1, 'error') != '', JSONExtractString(failure, 'messages', 1, 'error'),
        JSONExtractString(failure, 'messages', 1) != '', JSONExtractString(failure, 'messages', 1),
        JSONExtractString(failure, 'expectation') != '', JSONExtractString(failure, 'expectation'),
        JSONExtractString(failure, 'message', 'error') != '', JSONExtractString(failure, 'message', 'error'),
        JSONExtractString(failure, 'errors', 1) != '', JSONExtractString(failure, 'errors', 1),
        '(unknown)')"""

#: Bad rows in the last 24 hours by type (the bad row schema's name) and reason: ``type``, ``reason``,
#: ``last_30m``, ``last_24h``, ``last_seen`` (UTC text); the 20 most frequent.
BAD_ROW_REASONS = f"""\
SELECT type, reason,
       toUInt32(countIf(failure_tstamp >= now() - toIntervalMinute(30))) AS last_30m,
       toUInt32(count()) AS last_24h,
       formatDateTime(max(failure_tstamp), '%Y-%m-%d %H:%i:%S', 'UTC') AS last_seen
FROM (
    SELECT if(extract(schema, '/([^/]+)/jsonschema/') = '', if(schema = '', '{UNKNOWN}', schema),
              extract(schema, '/([^/]+)/jsonschema/')) AS type,
           leftUTF8({_REASON}, 200) AS reason,
           failure_tstamp
    FROM {{database}}.bad_rows
    WHERE failure_tstamp >= now() - toIntervalHour(24)
)
GROUP BY type, reason
ORDER BY last_24h DESC, type, reason
LIMIT 20"""

#: Every panel's SQL by the panel's name (the keys of ``/dashboard/data``'s ``panels``), in page order.
PANELS: dict[str, str] = {
    "totals": TOTALS,
    "active": ACTIVE,
    "events_per_minute": EVENTS_PER_MINUTE,
    "top_pages": TOP_PAGES,
    "referrers": REFERRERS,
    "campaigns": CAMPAIGNS,
    "countries": COUNTRIES,
    "devices": DEVICES,
    "bad_row_reasons": BAD_ROW_REASONS,
}


@dataclass(frozen=True)
class Fallback:
    """What a panel runs when a table its SQL reads is missing: ``sql`` instead, and ``note`` says why."""

    tables: tuple[str, ...]
    sql: str
    note: str


#: Panels that read the models, with the SQL that answers them from ``events`` when a model table
#: is missing (the dashboard checks ``system.tables``; see :class:`snowmelt.dashboard.DashboardData`).
FALLBACKS: dict[str, Fallback] = {
    "devices": Fallback(
        tables=("page_views", "users"), sql=DEVICES_FROM_EVENTS,
        note="the models are not loaded (no page_views or users table): counted from the events with the "
             "page_views model's rules. snowmelt up keeps the models; on a ClickHouse server, run "
             "loaders.models.Models (create, then refresh) to read them."),
}


def _quote(database: str) -> str:
    if not database:
        raise ValueError("the database name is empty")
    return database if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database) else (
        "`" + database.replace("\\", "\\\\").replace("`", "\\`") + "`")


def panel_queries(database: str = "snowplow") -> dict[str, str]:
    """Every panel's SQL with its tables in ``database`` (quoted with backticks unless a plain identifier)."""
    name = _quote(database)
    return {panel: sql.replace("{database}", name) for panel, sql in PANELS.items()}


def fallback_queries(database: str = "snowplow") -> dict[str, Fallback]:
    """:data:`FALLBACKS` with their tables in ``database``."""
    name = _quote(database)
    return {panel: Fallback(f.tables, f.sql.replace("{database}", name), f.note) for panel, f in FALLBACKS.items()}


def tables_query(database: str = "snowplow") -> str:
    """SQL: the ``name`` of every table in ``database``."""
    _quote(database)
    literal = database.replace("\\", "\\\\").replace("'", "\\'")
    return f"SELECT name FROM system.tables WHERE database = '{literal}'"
