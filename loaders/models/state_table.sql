-- The models' refresh state, one row per name ('models'): the newest load_tstamp and collector_tstamp
-- of the events already modelled, the last refresh's number (the _version of the rows it wrote)
-- and the layout version of the model tables; seq orders the rows.
CREATE TABLE IF NOT EXISTS {{db}}._models_state (
  name String,
  load_watermark DateTime64(3, 'UTC'),
  event_watermark DateTime64(3, 'UTC'),
  refresh_id UInt64,
  layout UInt32,
  seq UInt64,
  updated DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY name
