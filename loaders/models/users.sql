-- The users the refresh touched, recomputed.  Columns in the order of users_table.sql, without
-- _hash and _version.  Identity as Snowplow stitches it: a browser user is its domain_userid,
-- stitched to the latest user_id it was seen with; an event without a domain_userid belongs to its
-- user_id, else to its network_userid when the tracker kept that cookie ({{network_userid_kept}});
-- an event with none of these identifies nobody.  snowmelt.dashboard's users follow the same rule.
SELECT
  domain_userid AS user_key,
  CAST(domain_userid AS Nullable(String)) AS domain_userid,
  user_id,
  coalesce(user_id, domain_userid) AS stitched_user_id,
  network_userid,
  start_tstamp, end_tstamp, sessions, page_views, engaged_time_in_s,
  landing.1 AS first_page_url, landing.2 AS refr_medium, landing.3 AS refr_source,
  landing.4 AS mkt_medium, landing.5 AS mkt_source, landing.6 AS mkt_campaign, landing.7 AS default_channel_group,
  exit.1 AS last_page_url
FROM (
  -- browser users (with a domain_userid): from all their sessions (the sessions table, already
  -- refreshed); first/last seen are start_tstamp/end_tstamp, the first session's landing fields
  -- are the acquisition
  SELECT
    assumeNotNull(duid) AS domain_userid,
    argMaxIf(uid, (end, sid), ifNull(uid, '') != '') AS user_id,
    argMaxIf(nuid, (end, sid), nuid IS NOT NULL) AS network_userid,
    min(start) AS start_tstamp,
    max(end) AS end_tstamp,
    count() AS sessions,
    sum(pvs) AS page_views,
    sum(engaged) AS engaged_time_in_s,
    argMin(tuple(first_page_url, refr_medium, refr_source, mkt_medium, mkt_source, mkt_campaign, default_channel_group),
           (start, sid)) AS landing,
    argMax(tuple(last_page_url), (end, sid)) AS exit
  FROM (
    -- inputs renamed so that the aggregates' aliases do not shadow them
    SELECT domain_userid AS duid, domain_sessionid AS sid, user_id AS uid, network_userid AS nuid,
           start_tstamp AS start, end_tstamp AS end, page_views AS pvs, engaged_time_in_s AS engaged,
           first_page_url, refr_medium, refr_source, mkt_medium, mkt_source, mkt_campaign, default_channel_group,
           last_page_url
    FROM {{db}}.sessions FINAL
    WHERE domain_userid IN (
      SELECT domain_userid FROM {{db}}._models_new WHERE domain_userid IS NOT NULL
      UNION ALL
      SELECT domain_userid FROM {{db}}._models_stage_sessions WHERE domain_userid IS NOT NULL)
  )
  GROUP BY duid
)
UNION ALL
SELECT
  key AS user_key,
  CAST(NULL AS Nullable(String)) AS domain_userid,
  user_id,
  coalesce(user_id, key) AS stitched_user_id,
  network_userid,
  start_tstamp, end_tstamp, sessions, page_views, 0 AS engaged_time_in_s,
  landing.1 AS first_page_url, landing.2 AS refr_medium, landing.3 AS refr_source,
  landing.4 AS mkt_medium, landing.5 AS mkt_source, landing.6 AS mkt_campaign,
  {{channel}} AS default_channel_group,
  exit.1 AS last_page_url
FROM (
  -- users without a domain_userid (server-side trackers): from all their events (read without the
  -- refresh's bound: whether a network_userid was kept depends on its earlier requests);
  -- page_views are their page_view events (without the web_page entity they make no page_views
  -- row), engaged time is 0 (they send no pings)
  SELECT
    key,
    argMaxIf(uid, ts, uid IS NOT NULL) AS user_id,
    argMaxIf(nuid, ts, nuid IS NOT NULL) AS network_userid,
    min(ts) AS start_tstamp,
    max(ts) AS end_tstamp,
    uniqExactIf(sid, sid IS NOT NULL) AS sessions,
    uniqExactIf(event_id, is_pv) AS page_views,
    argMinIf(tuple(page_url, refr_medium, refr_source, mkt_medium, mkt_source, mkt_campaign), (ts, event_id), is_pv)
      AS landing,
    argMaxIf(tuple(page_url), (ts, event_id), is_pv) AS exit
  FROM (
    SELECT coalesce(uid, nuid) AS key, uid, nuid, sid, event_id, ts, is_pv, collector_tstamp,
           page_url, refr_medium, refr_source, mkt_medium, mkt_source, mkt_campaign
    FROM (
      -- inputs renamed so that the aggregates' aliases do not shadow them
      SELECT nullIf(user_id, '') AS uid, nullIf(network_userid, '') AS nuid, nullIf(domain_sessionid, '') AS sid,
             event_id, coalesce(derived_tstamp, collector_tstamp) AS ts, event_name = 'page_view' AS is_pv,
             collector_tstamp, page_url, refr_medium, refr_source, mkt_medium, mkt_source, mkt_campaign
      FROM {{db}}.events
      WHERE ifNull(domain_userid, '') = ''
        AND coalesce(nullIf(user_id, ''), nullIf(network_userid, '')) IN (
          SELECT user_key FROM {{db}}._models_new WHERE domain_userid IS NULL AND user_key IS NOT NULL)
    )
  )
  GROUP BY key
  HAVING user_id IS NOT NULL OR {{network_userid_kept}}
)
