"""The configuration examples users copy load as they are (and, enabled, each enrichment starts)."""
from __future__ import annotations

import json
from pathlib import Path

from processor.enrichments.standard import geolite2_city
from processor.stage import Enricher

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_example_enrichment_loads_with_the_example_resolver(tmp_path):
    names = set()
    for path in sorted((EXAMPLES / "enrichments").glob("*.json")):
        doc = json.loads(path.read_text())
        doc["data"]["enabled"] = True
        if doc["data"]["name"] == "ip_lookups":
            city = geolite2_city()
            if city is None:
                continue  # needs a MaxMind file: the geo extra provides one
            doc["data"]["parameters"]["geo"]["uri"] = str(city.parent)
        names.add(doc["data"]["name"])
        (tmp_path / path.name).write_text(json.dumps(doc))
    enricher = Enricher.from_files(str(EXAMPLES / "resolver.json"), str(tmp_path))
    try:
        assert {e.name for e in enricher.enrichments} == names
        assert {"ua_parser_config", "referer_parser", "campaign_attribution", "event_fingerprint_config",
                "anon_ip"} <= names
    finally:
        enricher.close()
