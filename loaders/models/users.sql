-- The users whose sessions the refresh touched, recomputed from all their sessions (the sessions
-- table, already refreshed).  first/last seen are start_tstamp/end_tstamp; the first session's
-- landing fields are the user's acquisition.  Columns in the order of users_table.sql, without
-- _hash and _version.
SELECT
  domain_userid,
  user_id,
  coalesce(user_id, domain_userid) AS stitched_user_id,
  network_userid,
  start_tstamp, end_tstamp, sessions, page_views, engaged_time_in_s,
  landing.1 AS first_page_url, landing.2 AS refr_medium, landing.3 AS refr_source,
  landing.4 AS mkt_medium, landing.5 AS mkt_source, landing.6 AS mkt_campaign, landing.7 AS default_channel_group,
  exit.1 AS last_page_url
FROM (
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
