"""Loaders: enriched events and bad rows from Kafka into ClickHouse and S3."""
