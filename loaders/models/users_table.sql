-- One row per user (Snowplow's web model `users`), keyed by user_key: the domain_userid of a browser
-- user, stitched to the latest user_id it was seen with; for events without a domain_userid
-- (server-side trackers) the user_id, else a network_userid the tracker kept.  Count people as
-- distinct stitched_user_id.  Rows are replaced by newer versions (_version): read with FINAL.
CREATE TABLE IF NOT EXISTS {{db}}.users (
  user_key String,
  domain_userid Nullable(String),
  user_id Nullable(String),
  stitched_user_id String,
  network_userid Nullable(String),
  start_tstamp DateTime64(3, 'UTC'),
  end_tstamp DateTime64(3, 'UTC'),
  sessions UInt64,
  page_views UInt64,
  engaged_time_in_s UInt64,
  first_page_url Nullable(String),
  refr_medium Nullable(String),
  refr_source Nullable(String),
  mkt_medium Nullable(String),
  mkt_source Nullable(String),
  mkt_campaign Nullable(String),
  default_channel_group String,
  last_page_url Nullable(String),
  _hash UInt64,
  _version UInt64
)
ENGINE = ReplacingMergeTree(_version)
ORDER BY user_key
