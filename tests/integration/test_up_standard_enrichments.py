"""``snowmelt up`` enriches with the standard set when no enrichments folder is configured."""
from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

from processor.enrichments.standard import STANDARD_DIR, geolite2_city
from tests.services.up import UpProcess
from tests.services.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")


def test_the_shipped_set_is_the_examples_own_files():
    for config in STANDARD_DIR.glob("*.json"):
        example = ROOT / "examples" / "enrichments" / config.name
        assert example.is_file(), f"{config.name} is not in examples/enrichments"
        assert json.loads(example.read_text()) == json.loads(config.read_text()), config.name


def test_up_without_an_enrichments_folder_uses_the_standard_set(tmp_path):
    up = UpProcess(tmp_path / "data", settings={"up.enrichments": "standard"})
    up.start()
    try:
        query = urllib.parse.urlencode({
            "e": "pv", "p": "web", "tv": "js-3.0.0", "eid": "6a1c7d10-6f0b-4b48-9a0c-7c3d1f2a9b01",
            "url": "https://shop.acme.com/landing?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
            "refr": "https://www.google.com/search?q=red+shoes", "ip": "81.2.69.142"})
        request = urllib.request.Request(f"{up.url}/i?{query}", headers={"User-Agent": CHROME})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
        (good,) = wait_until(lambda: up.get("/micro/good") or None, 30, "the event to be enriched")
        event = good["event"]
        assert up.terminate() == 0, up.output()
    finally:
        up.kill()
        up.remove_log()
    assert (event["mkt_medium"], event["mkt_source"], event["mkt_campaign"]) == ("email", "newsletter", "spring")
    assert (event["refr_medium"], event["refr_source"], event["refr_term"]) == ("search", "Google", "red shoes")
    assert event["event_fingerprint"] and len(event["event_fingerprint"]) == 32
    (ua,) = event["contexts_com_snowplowanalytics_snowplow_ua_parser_context_1"]  # the analytics SDK's shape
    assert ua["useragentFamily"] == "Chrome" and ua["osFamily"] == "Windows", ua
    assert event["user_ipaddress"] == "81.2.69.142"  # anon_ip ships disabled, as in Snowplow
    if geolite2_city() is not None:
        assert event["geo_country"] == "GB", event["geo_country"]
