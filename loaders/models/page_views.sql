-- The page views touched by the refresh's new events (page_view_id in {{db}}._models_new),
-- recomputed from all their page_view and page_ping events (collector_tstamp >= {{bound}},
-- a bound at or before the first event of every touched page view).  Columns in the order of
-- page_views_table.sql, without _hash and _version.
SELECT
  pv.page_view_id, pv.event_id, pv.app_id, pv.platform, pv.domain_userid, pv.network_userid, pv.user_id,
  pv.domain_sessionid, pv.domain_sessionidx,
  pv.start_tstamp,
  greatest(pv.start_tstamp, agg.last_tstamp) AS end_tstamp,
  agg.page_pings,
  agg.first_ping_tstamp,
  agg.last_ping_tstamp,
  -- Snowplow: heartbeat * (distinct ping buckets - 1) + min_visit_length, 0 for a page view without
  -- pings; the heartbeat is the one the pings show (see agg.heartbeat_s)
  if(agg.page_pings = 0, 0, agg.heartbeat_s * (agg.ping_buckets - 1) + {{min_visit_length}}) AS engaged_time_in_s,
  dateDiff('second', pv.start_tstamp, greatest(pv.start_tstamp, agg.last_tstamp)) AS absolute_time_in_s,
  agg.max_doc_width AS doc_width, agg.max_doc_height AS doc_height, agg.max_br_viewwidth AS br_viewwidth,
  agg.max_br_viewheight AS br_viewheight,
  agg.hmax AS horizontal_pixels_scrolled,
  agg.vmax AS vertical_pixels_scrolled,
  -- Snowplow's relative_hmax / relative_vmax: round(100 * least(offset max + viewport, doc) / doc)
  if(agg.hmax IS NULL OR agg.max_br_viewwidth IS NULL, NULL,
     floor(100 * least(agg.hmax + agg.max_br_viewwidth, agg.max_doc_width) / agg.max_doc_width + 0.5)) AS horizontal_percentage_scrolled,
  if(agg.vmax IS NULL OR agg.max_br_viewheight IS NULL, NULL,
     floor(100 * least(agg.vmax + agg.max_br_viewheight, agg.max_doc_height) / agg.max_doc_height + 0.5)) AS vertical_percentage_scrolled,
  pv.page_url, pv.page_title, pv.page_urlscheme, pv.page_urlhost, pv.page_urlpath, pv.page_urlquery,
  pv.page_urlfragment, pv.page_referrer,
  pv.refr_urlscheme, pv.refr_urlhost, pv.refr_urlpath, pv.refr_urlquery, pv.refr_medium, pv.refr_source, pv.refr_term,
  pv.mkt_medium, pv.mkt_source, pv.mkt_term, pv.mkt_content, pv.mkt_campaign, pv.mkt_clickid, pv.mkt_network,
  pv.geo_country, pv.geo_region, pv.geo_region_name, pv.geo_city, pv.geo_zipcode, pv.geo_latitude, pv.geo_longitude,
  pv.geo_timezone, pv.user_ipaddress,
  pv.useragent, pv.br_name, pv.br_family, pv.br_version, pv.br_type, pv.br_renderengine, pv.br_lang,
  pv.dvce_type, pv.dvce_ismobile, pv.dvce_screenwidth, pv.dvce_screenheight,
  pv.os_name, pv.os_family, pv.os_manufacturer, pv.os_timezone,
  agg.first_collector_tstamp
FROM (
  -- the page view event itself (the earliest one if the tracker sent it twice)
  SELECT
    {{page_view_id}} AS page_view_id, event_id, app_id, platform, domain_userid, network_userid, user_id,
    domain_sessionid, domain_sessionidx, coalesce(derived_tstamp, collector_tstamp) AS start_tstamp,
    page_url, page_title, page_urlscheme, page_urlhost, page_urlpath, page_urlquery, page_urlfragment, page_referrer,
    refr_urlscheme, refr_urlhost, refr_urlpath, refr_urlquery, refr_medium, refr_source, refr_term,
    mkt_medium, mkt_source, mkt_term, mkt_content, mkt_campaign, mkt_clickid, mkt_network,
    geo_country, geo_region, geo_region_name, geo_city, geo_zipcode, geo_latitude, geo_longitude, geo_timezone,
    user_ipaddress, useragent, br_name,
    -- browser, OS and device class from the user-agent entities (YAUAA's, else ua_parser_context's),
    -- else the legacy user-agent enrichment's fields (loaders.models.BR_FAMILY and its neighbours)
    {{br_family}} AS br_family, br_version, br_type, br_renderengine, br_lang,
    {{dvce_type}} AS dvce_type, dvce_ismobile, dvce_screenwidth, dvce_screenheight, os_name,
    {{os_family}} AS os_family, os_manufacturer, os_timezone
  FROM {{db}}.events
  WHERE collector_tstamp >= {{bound}} AND event_name = 'page_view'
    AND page_view_id IN (SELECT page_view_id FROM {{db}}._models_new WHERE page_view_id IS NOT NULL)
  ORDER BY page_view_id, start_tstamp, event_id
  LIMIT 1 BY page_view_id
) AS pv
INNER JOIN (
  -- pings and sizes (duplicates of an event change none of these aggregates)
  SELECT
    page_view_id,
    uniqExactIf(event_id, is_ping) AS page_pings,
    -- the pings' device times (ms), in order; a ping sent twice counts once
    arraySort(groupUniqArrayIf(ping_ms, is_ping)) AS pings_ms,
    -- the heartbeat the tracker was set to, as its pings show it: the shortest spacing of two
    -- pings (a ping only follows a heartbeat with activity, so gaps are multiples of it), in
    -- whole seconds; models.heartbeat for a page view with fewer than two pings
    arrayFilter(d -> d >= 500, arrayDifference(pings_ms)) AS spacings_ms,
    if(empty(spacings_ms), {{heartbeat}}, greatest(1, toUInt64(round(arrayMin(spacings_ms) / 1000)))) AS heartbeat_s,
    -- distinct heartbeats with a ping, counted from the first ping (Snowplow floors the epoch by
    -- the heartbeat; counting from the first ping keeps two pings a heartbeat apart in two
    -- buckets whatever their phase and jitter)
    length(arrayDistinct(arrayMap(t -> round((t - pings_ms[1]) / (heartbeat_s * 1000)), pings_ms))) AS ping_buckets,
    minOrNullIf(ts, is_ping) AS first_ping_tstamp,
    maxOrNullIf(ts, is_ping) AS last_ping_tstamp,
    max(ts) AS last_tstamp,
    maxOrNullIf(doc_width, sized) AS max_doc_width,
    maxOrNullIf(doc_height, sized) AS max_doc_height,
    maxOrNullIf(br_viewwidth, sized) AS max_br_viewwidth,
    maxOrNullIf(br_viewheight, sized) AS max_br_viewheight,
    if(countIf(sized) = 0, NULL,
       toInt64(least(greatest(maxIf(ifNull(pp_xoffset_max, 0), sized), 0), maxIf(ifNull(doc_width, 0), sized)))) AS hmax,
    if(countIf(sized) = 0, NULL,
       toInt64(least(greatest(maxIf(ifNull(pp_yoffset_max, 0), sized), 0), maxIf(ifNull(doc_height, 0), sized)))) AS vmax,
    min(collector_tstamp) AS first_collector_tstamp
  FROM (
    SELECT
      {{page_view_id}} AS page_view_id, event_id, event_name = 'page_ping' AS is_ping,
      coalesce(derived_tstamp, collector_tstamp) AS ts, collector_tstamp,
      toUnixTimestamp64Milli(coalesce(dvce_created_tstamp, collector_tstamp)) AS ping_ms,
      ifNull(doc_width, 0) > 0 AND ifNull(doc_height, 0) > 0 AS sized,
      doc_width, doc_height, br_viewwidth, br_viewheight, pp_xoffset_max, pp_yoffset_max
    FROM {{db}}.events
    WHERE collector_tstamp >= {{bound}} AND event_name IN ('page_view', 'page_ping')
      AND page_view_id IN (SELECT page_view_id FROM {{db}}._models_new WHERE page_view_id IS NOT NULL)
  )
  GROUP BY page_view_id
) AS agg ON agg.page_view_id = pv.page_view_id
