-- The keys of the events loaded after {{load_from}} whose collector_tstamp is not older than
-- {{event_from}} (the newest modelled event time minus models.late_seconds).  user_key is the key
-- of the event's row in users (users.sql): its domain_userid, else its user_id, else its
-- network_userid.
INSERT INTO {{db}}._models_new
SELECT {{page_view_id}} AS page_view_id, domain_sessionid, nullIf(domain_userid, '') AS domain_userid,
       coalesce(nullIf(domain_userid, ''), nullIf(user_id, ''), nullIf(network_userid, '')) AS user_key,
       collector_tstamp, load_tstamp
FROM {{db}}.events
WHERE load_tstamp > {{load_from}} AND collector_tstamp >= {{event_from}}
