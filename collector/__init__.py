"""The HTTP collector: Snowplow tracker and webhook requests in, raw payloads to Kafka."""
