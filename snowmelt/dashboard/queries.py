"""The SQL of each dashboard panel: ClickHouse SQL over ``events`` and ``bad_rows``.

One text per panel, the same for a ClickHouse server and for chdb (the
engine in ``snowmelt up``), read by the page's JSON endpoint
(:func:`snowmelt.dashboard.add_dashboard_routes`) and written into the
Grafana dashboard (``deploy/grafana/snowmelt-dashboard.json``, made by
:func:`snowmelt.dashboard.grafana.grafana_dashboard`).  Each text names its
tables as ``{database}.events`` and ``{database}.bad_rows``;
:func:`panel_queries` puts the database in (Grafana puts its ``${database}``
variable there).

Windows are fixed and relative to the server's clock (``now()``), like a
live wall screen: the last 30 minutes for traffic, the last 5 and 30 minutes
for activity, the last 24 hours for bad-row reasons.  Events are placed in
time by ``collector_tstamp`` (when the collector received them: the
partition key, and the one clock every event has; a tracker's clock may be
wrong), bad rows by ``failure_tstamp``.  The panels read the tables without
``FINAL`` (an event delivered twice in two batches counts twice until
ClickHouse merges the parts; cheap and close enough for a live view).

Fields that an enrichment fills are used when present and derived otherwise,
so the panels say something useful on a pipeline with no enrichments
configured:

- a user is ``domain_userid`` (the tracker's first-party cookie), else
  ``network_userid`` (the collector's cookie); a session is
  ``domain_sessionid`` (events without one count in no session);
- referrers: ``refr_medium``/``refr_source`` from the referer-parser
  enrichment, else the referrer's host (medium ``unknown``); internal
  referrers (medium ``internal``, or the page's own host when no medium was
  computed) are left out;
- campaigns: ``mkt_*`` from the campaign-attribution enrichment, else the
  page URL's ``utm_campaign`` / ``utm_source`` / ``utm_medium``;
- devices: ``dvce_type`` / ``os_family`` / ``br_family``, else the
  ``ua_parser_context`` or YAUAA entity in ``derived_contexts``, else a few
  regular expressions over ``useragent``;
- bad-row reasons: the bad row's type (its schema's name) and a short reason
  read off its ``failure`` (the first message's field and expectation, the
  schema key that failed, the enrichment, the parsing error type, ...).

Every count is cast to ``UInt32`` (a number in JSON, never a quoted 64-bit
integer); labels that are missing read ``(unknown)``.  Every panel answers
on empty tables (zero counts, or no rows for the lists).
"""
from __future__ import annotations

import re

__all__ = ["PANELS", "panel_queries", "EVENTS_PER_MINUTE", "ACTIVE", "TOTALS", "TOP_PAGES", "REFERRERS",
           "CAMPAIGNS", "COUNTRIES", "DEVICES", "BAD_ROW_REASONS", "UNKNOWN"]

#: The label of a missing value.
UNKNOWN = "(unknown)"

_USER = "coalesce(nullIf(domain_userid, ''), nullIf(network_userid, ''))"
_LAST_30M = "collector_tstamp >= now() - toIntervalMinute(30)"


def _entity(prefix: str, key: str) -> str:
    """A string field of the first entity in ``derived_contexts`` whose schema starts with ``prefix``."""
    return (f"nullIf(JSONExtractString(arrayFirst(c -> startsWith(JSONExtractString(c, 'schema'), '{prefix}'), "
            f"JSONExtractArrayRaw(ifNull(derived_contexts, ''), 'data')), 'data', '{key}'), '')")


_UA_PARSER = "iglu:com.snowplowanalytics.snowplow/ua_parser_context/"
_YAUAA = "iglu:nl.basjes/yauaa_context/"
_UA = "ifNull(useragent, '')"

_DEVICE = (f"coalesce(nullIf(dvce_type, ''), {_entity(_YAUAA, 'deviceClass')}, multiIf("
           f"{_UA} = '', '{UNKNOWN}', "
           f"match({_UA}, '(?i)bot|crawler|spider|slurp|headless'), 'Robot', "
           f"match({_UA}, '(?i)ipad|tablet'), 'Tablet', "
           f"match({_UA}, '(?i)mobi|iphone|android'), 'Phone', "
           f"match({_UA}, '^Mozilla/'), 'Desktop', 'Other'))")
_OS = (f"coalesce(nullIf(os_family, ''), {_entity(_UA_PARSER, 'osFamily')}, "
       f"{_entity(_YAUAA, 'operatingSystemName')}, multiIf("
       f"match({_UA}, 'iPhone|iPad|iPod'), 'iOS', "
       f"match({_UA}, 'Android'), 'Android', "
       f"match({_UA}, 'Windows'), 'Windows', "
       f"match({_UA}, 'CrOS'), 'Chrome OS', "
       f"match({_UA}, 'Mac OS X|Macintosh'), 'Mac OS X', "
       f"match({_UA}, 'Linux|X11'), 'Linux', '{UNKNOWN}'))")
_BROWSER = (f"coalesce(nullIf(br_family, ''), {_entity(_UA_PARSER, 'useragentFamily')}, "
            f"{_entity(_YAUAA, 'agentName')}, multiIf("
            f"match({_UA}, 'Edg/'), 'Edge', "
            f"match({_UA}, 'OPR/|Opera'), 'Opera', "
            f"match({_UA}, 'Firefox|FxiOS'), 'Firefox', "
            f"match({_UA}, 'HeadlessChrome'), 'HeadlessChrome', "
            f"match({_UA}, 'Chrome/|CriOS/|Chromium/'), 'Chrome', "
            f"match({_UA}, 'Safari/'), 'Safari', "
            f"{_UA} = '', '{UNKNOWN}', "
            f"extract({_UA}, '^([^/ ;()]+)')))")


def _utm(name: str) -> str:
    return f"nullIf(decodeURLComponent(extractURLParameter(ifNull(page_url, ''), '{name}')), '')"


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

#: Active users and sessions (and events) in the last 5 and 30 minutes: one row.
ACTIVE = f"""\
SELECT
    toUInt32(uniqExactIf(user, recent)) AS users_5m,
    toUInt32(uniqExact(user)) AS users_30m,
    toUInt32(uniqExactIf(session, recent)) AS sessions_5m,
    toUInt32(uniqExact(session)) AS sessions_30m,
    toUInt32(countIf(recent)) AS events_5m,
    toUInt32(count()) AS events_30m
FROM (
    SELECT {_USER} AS user, nullIf(domain_sessionid, '') AS session,
           collector_tstamp >= now() - toIntervalMinute(5) AS recent
    FROM {{database}}.events
    WHERE {_LAST_30M}
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
       toUInt32(uniqExact({_USER})) AS users
FROM {{database}}.events
WHERE {_LAST_30M} AND event = 'page_view'
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
           {_USER} AS user
    FROM {{database}}.events
    WHERE {_LAST_30M} AND event = 'page_view' AND ifNull(refr_urlhost, '') != ''
)
WHERE medium != 'internal'
GROUP BY medium, source
ORDER BY page_views DESC, users DESC, medium, source
LIMIT 10"""

#: The 10 campaigns of the most page views in the last 30 minutes: ``campaign``, ``source``, ``medium``,
#: ``page_views``, ``users``.
CAMPAIGNS = f"""\
SELECT ifNull(mkt_c, '{UNKNOWN}') AS campaign, ifNull(mkt_s, '{UNKNOWN}') AS source,
       ifNull(mkt_m, '{UNKNOWN}') AS medium,
       toUInt32(count()) AS page_views, toUInt32(uniqExact(user)) AS users
FROM (
    SELECT coalesce(nullIf(mkt_campaign, ''), {_utm('utm_campaign')}) AS mkt_c,
           coalesce(nullIf(mkt_source, ''), {_utm('utm_source')}) AS mkt_s,
           coalesce(nullIf(mkt_medium, ''), {_utm('utm_medium')}) AS mkt_m,
           {_USER} AS user
    FROM {{database}}.events
    WHERE {_LAST_30M} AND event = 'page_view'
)
WHERE mkt_c IS NOT NULL OR mkt_s IS NOT NULL OR mkt_m IS NOT NULL
GROUP BY campaign, source, medium
ORDER BY page_views DESC, users DESC, campaign, source, medium
LIMIT 10"""

#: Users and events by country (``geo_country``, ISO 3166-1 alpha-2) in the last 30 minutes, top 10.
COUNTRIES = f"""\
SELECT ifNull(nullIf(geo_country, ''), '{UNKNOWN}') AS country,
       toUInt32(uniqExact({_USER})) AS users, toUInt32(count()) AS events
FROM {{database}}.events
WHERE {_LAST_30M}
GROUP BY country
ORDER BY users DESC, events DESC, country
LIMIT 10"""

#: Users and events by device type, operating system and browser in the last 30 minutes: ``facet``
#: (``device``, ``os`` or ``browser``), ``name``, ``users``, ``events``; the top 8 of each facet.
DEVICES = f"""\
SELECT facet, name, toUInt32(uniqExact(user)) AS users, toUInt32(count()) AS events
FROM (
    SELECT user, pair.1 AS facet, pair.2 AS name
    FROM (
        SELECT {_USER} AS user, {_DEVICE} AS device, {_OS} AS os, {_BROWSER} AS browser
        FROM {{database}}.events
        WHERE {_LAST_30M}
    )
    ARRAY JOIN [('device', device), ('os', os), ('browser', browser)] AS pair
)
GROUP BY facet, name
ORDER BY facet, users DESC, events DESC, name
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


def panel_queries(database: str = "snowplow") -> dict[str, str]:
    """Every panel's SQL with its tables in ``database`` (quoted with backticks unless a plain identifier)."""
    if not database:
        raise ValueError("the database name is empty")
    name = database if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database) else (
        "`" + database.replace("\\", "\\\\").replace("`", "\\`") + "`")
    return {panel: sql.replace("{database}", name) for panel, sql in PANELS.items()}
