"""Enrichment: raw CollectorPayloads in, enriched events and bad rows out."""
