-- The keys of the events loaded after {{load_from}} whose collector_tstamp is not older than
-- {{event_from}} (the newest modelled event time minus models.late_seconds).
INSERT INTO {{db}}._models_new
SELECT {{page_view_id}} AS page_view_id, domain_sessionid, domain_userid, collector_tstamp, load_tstamp
FROM {{db}}.events
WHERE load_tstamp > {{load_from}} AND collector_tstamp >= {{event_from}}
