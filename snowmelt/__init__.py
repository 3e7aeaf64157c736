"""snowmelt: a Snowplow-compatible behavioural-data pipeline."""

__version__ = "0.1.0"
