-- The sessions touched by the refresh's new events (domain_sessionid in {{db}}._models_new),
-- recomputed from all their events (collector_tstamp >= {{bound}}) and their page views (the
-- page_views table, already refreshed).  Columns in the order of sessions_table.sql, without
-- _hash and _version.
-- the channel's inputs, normalised
WITH
  lower(trim(ifNull(p.landing.10, ''))) AS lm,
  lower(trim(ifNull(p.landing.11, ''))) AS ls,
  ifNull(p.landing.7, '') AS rm
SELECT
  e.domain_sessionid, e.domain_sessionidx, e.domain_userid, e.network_userid, e.user_id, e.app_id,
  e.start_tstamp, e.end_tstamp, e.events,
  p.page_views, p.engaged AS engaged_time_in_s,
  dateDiff('second', e.start_tstamp, e.end_tstamp) AS absolute_time_in_s,
  p.engaged >= {{engaged_seconds}} OR p.page_views >= 2 AS is_engaged,
  p.landing.1 AS first_page_url, p.landing.2 AS first_page_title, p.landing.3 AS first_page_urlhost,
  p.landing.4 AS first_page_urlpath,
  p.exit.1 AS last_page_url, p.exit.2 AS last_page_title, p.exit.3 AS last_page_urlpath,
  p.landing.5 AS page_referrer, p.landing.6 AS refr_urlhost, p.landing.7 AS refr_medium, p.landing.8 AS refr_source,
  p.landing.9 AS refr_term,
  p.landing.10 AS mkt_medium, p.landing.11 AS mkt_source, p.landing.12 AS mkt_term, p.landing.13 AS mkt_content,
  p.landing.14 AS mkt_campaign, p.landing.15 AS mkt_clickid, p.landing.16 AS mkt_network,
  -- the landing page view's channel (channel.sql)
  {{channel}} AS default_channel_group,
  p.landing.17 AS geo_country, p.landing.18 AS geo_region_name, p.landing.19 AS geo_city,
  p.landing.20 AS br_family, p.landing.21 AS os_family, p.landing.22 AS dvce_type, p.landing.23 AS dvce_ismobile,
  e.first_collector_tstamp
FROM (
  SELECT
    toString(sid) AS domain_sessionid,
    max(sidx) AS domain_sessionidx,
    argMinIf(duid, ts, duid IS NOT NULL) AS domain_userid,
    argMinIf(nuid, ts, nuid IS NOT NULL) AS network_userid,
    -- the last user id the session was seen with
    argMaxIf(uid, ts, ifNull(uid, '') != '') AS user_id,
    argMinIf(aid, ts, aid IS NOT NULL) AS app_id,
    min(ts) AS start_tstamp,
    max(ts) AS end_tstamp,
    uniqExact(event_id) AS events,
    min(collector_tstamp) AS first_collector_tstamp
  FROM (
    -- inputs renamed so that the aggregates' aliases do not shadow them
    SELECT domain_sessionid AS sid, domain_sessionidx AS sidx, domain_userid AS duid, network_userid AS nuid,
           user_id AS uid, app_id AS aid, event_id, coalesce(derived_tstamp, collector_tstamp) AS ts, collector_tstamp
    FROM {{db}}.events
    WHERE collector_tstamp >= {{bound}}
      AND domain_sessionid IN (SELECT domain_sessionid FROM {{db}}._models_new WHERE domain_sessionid IS NOT NULL)
  )
  GROUP BY sid
) AS e
LEFT JOIN (
  SELECT
    assumeNotNull(domain_sessionid) AS sid,
    count() AS page_views,
    sum(engaged_time_in_s) AS engaged,
    -- the landing (first) and the last page view, tuples so NULL fields stay NULL
    argMin(tuple(page_url, page_title, page_urlhost, page_urlpath, page_referrer, refr_urlhost, refr_medium,
                 refr_source, refr_term, mkt_medium, mkt_source, mkt_term, mkt_content, mkt_campaign, mkt_clickid,
                 mkt_network, geo_country, geo_region_name, geo_city, br_family, os_family, dvce_type,
                 dvce_ismobile), (start_tstamp, page_view_id)) AS landing,
    argMax(tuple(page_url, page_title, page_urlpath), (start_tstamp, page_view_id)) AS exit
  FROM {{db}}.page_views FINAL
  WHERE domain_sessionid IN (SELECT domain_sessionid FROM {{db}}._models_new WHERE domain_sessionid IS NOT NULL)
  GROUP BY domain_sessionid
) AS p ON p.sid = e.domain_sessionid
