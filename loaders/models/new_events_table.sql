-- Scratch table of a refresh: the keys of the events loaded since the last watermark.
CREATE TABLE IF NOT EXISTS {{db}}._models_new (
  page_view_id Nullable(String),
  domain_sessionid Nullable(String),
  domain_userid Nullable(String),
  user_key Nullable(String),
  collector_tstamp DateTime64(3, 'UTC'),
  load_tstamp DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY tuple()
