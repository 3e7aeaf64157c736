"""Unit tests of the webhook adapters (processor/webhooks/), one module per vendor."""
