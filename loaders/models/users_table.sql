-- One row per domain_userid (Snowplow's web model `users`), stitched to the latest user_id it was
-- seen with.  Rows are replaced by newer versions (_version): read with FINAL.
CREATE TABLE IF NOT EXISTS {{db}}.users (
  domain_userid String,
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
ORDER BY domain_userid
