"""What a running ``snowmelt up`` tells its user: the start-up lines and the progress line.

The start-up lines give the dashboard's URL, who may use which part (the
collector answers anyone; ``/micro`` and the dashboard's data this machine
only unless ``up.api_token`` is set, as :mod:`snowmelt.access` decides), the
enrichments loaded or how to configure some, and the Iglu repositories of the
resolver.  The progress line counts what the stage knows: tracking requests,
good events, bad rows.
"""
from __future__ import annotations

import json
import urllib.request

from tests.services.payloads import TP2
from tests.services.up import UpProcess
from tests.services.wait import wait_until

SP = "com.snowplowanalytics.snowplow"
PAYLOAD = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


def page_view(n: int) -> dict:
    return {"e": "pv", "eid": f"00000000-0000-4000-8000-{n:012d}", "url": f"https://shop.example/{n}",
            "tv": "py-1.1.0", "p": "web", "aid": "shop"}


def lines_of(up: UpProcess) -> list[str]:
    return up.output(200_000).splitlines()


def started(up: UpProcess, what: str) -> list[str]:
    """The output once it holds the start-up line about ``what``."""
    return wait_until(lambda: [l for l in lines_of(up) if what in l] and lines_of(up), 30, f"the {what} line")


def line_with(lines: list[str], text: str) -> str:
    found = [line for line in lines if text in line]
    assert len(found) == 1, (text, "\n".join(lines))
    return found[0]


def test_startup_says_where_and_to_whom_it_answers_and_what_it_enriches_with(tmp_path):
    up = UpProcess(tmp_path / "data").start()
    try:
        lines = started(up, "SQL (")
        assert "this machine only" in line_with(lines, "SQL (")
        assert line_with(lines, "  dashboard: ").endswith(f"dashboard: http://localhost:{up.port}/")
        # collector.host is 127.0.0.1 here
        assert "this machine only" in line_with(lines, "collector, /micro API and dashboard")
        enrichments = line_with(lines, "enrichments:")  # the harness sets up.enrichments: none
        assert "none (--enrichments standard" in enrichments and "examples/enrichments" in enrichments
        repositories = line_with(lines, "Iglu repositories")
        assert "the schemas shipped with snowmelt" in repositories and "Iglu Central (http://iglucentral.com)" \
            in repositories
        # the SQL port answers a probe as ClickHouse does
        with urllib.request.urlopen(up.sql_url + "/", timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b"Ok.\n"
    finally:
        assert up.terminate() == 0
        up.remove_log()


def test_startup_on_every_interface_says_which_parts_answer_whom(tmp_path):
    folder = tmp_path / "enrichments"
    folder.mkdir()
    for name, version, parameters in (("anon_ip", "1-0-1", {"anonOctets": 1, "anonSegments": 1}),
                                      ("ua_parser_config", "1-0-0", {})):
        (folder / f"{name}.json").write_text(json.dumps({"schema": f"iglu:{SP}/{name}/jsonschema/{version}", "data": {
            "name": name, "vendor": SP, "enabled": True, "parameters": parameters}}))
    up = UpProcess(tmp_path / "data", enrichments=folder,
                   settings={"collector.host": "0.0.0.0", "up.api_token": "t0k", "up.store": "false"}).start()
    try:
        lines = started(up, "Iglu repositories")
        assert line_with(lines, "listening on").endswith(f"listening on 0.0.0.0:{up.port}, writing to "
                                                         f"{(tmp_path / 'data').resolve()}")
        assert "any client" in line_with(lines, "collector (tracking routes")
        assert "others that send up.api_token" in line_with(lines, "/micro API and dashboard data")
        assert "t0k" not in "\n".join(lines)
        assert "off (up.store is false)" in line_with(lines, "  dashboard: ")
        assert line_with(lines, "enrichments (2").endswith(": ua_parser_config, anon_ip")  # in the order they run
    finally:
        assert up.terminate() == 0
        up.remove_log()


def test_startup_names_the_standard_set(tmp_path):
    up = UpProcess(tmp_path / "data", settings={"up.enrichments": "standard", "up.store": "false"}).start()
    try:
        enrichments = line_with(started(up, "Iglu repositories"), "enrichments (")
        assert "the standard set" in enrichments
        assert enrichments.endswith("ua_parser_config, referer_parser, campaign_attribution, event_fingerprint_config") \
            or "ip_lookups" in enrichments, enrichments
    finally:
        assert up.terminate() == 0
        up.remove_log()


def test_progress_line_counts_requests_good_events_and_bad_rows(tmp_path):
    up = UpProcess(tmp_path / "data", settings={"up.store": "false"}).start()  # a progress line a second
    try:
        body = json.dumps({"schema": PAYLOAD, "data": [page_view(1), page_view(2), page_view(3)]})
        assert up.send(TP2, body, "application/json") == 200  # one request, three events
        assert up.send("/i", query="?e=pv&tv=py-1.1.0&p=web&eid=00000000-0000-4000-8000-000000000004"
                                   "&url=https%3A%2F%2Fshop.example%2F4") == 200
        assert up.send(TP2, "{not json", "application/json") == 200  # one bad row for the request
        since_start = "(since start: 3 requests, 4 good events, 1 bad rows)"
        progress = wait_until(lambda: [l for l in lines_of(up) if since_start in l], 30, "the progress line")[0]
        assert "requests " in progress and "/s, good events " in progress and "/s, bad rows " in progress, progress
    finally:
        assert up.terminate() == 0
        lines = lines_of(up)
        up.remove_log()
    assert "stopped: 3 requests, 4 good events, 1 bad rows written to" in "\n".join(lines)
