"""The official Python tracker -> ``snowmelt up`` (a real process) -> Micro API and files.

``snowmelt up`` runs on a free port with ``--resolver`` pointing at a resolver
config whose one embedded registry (in a temp dir) holds this test's schemas;
the shipped schemas are always asked first.  A real ``snowplow_tracker.Tracker``
sends page views, structured events and self-describing events with two
contexts through a GET and a POST emitter.  Every event must come back through
``/micro/good`` with the values sent, and the enriched TSV file must hold the
same events as Snowplow's own analytics SDK parses them.  On SIGTERM the
process drains and exits 0 with every accepted event in the enriched or the
bad file.  No broker is involved.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

snowplow_tracker = pytest.importorskip("snowplow_tracker", reason="pip install snowplow-tracker (the test extra)")
from snowplow_analytics_sdk.event_transformer import transform
from snowplow_tracker import (
    Emitter,
    PageView,
    SelfDescribing,
    SelfDescribingJson,
    StructuredEvent,
    Tracker,
)
from snowplow_tracker.constants import VERSION as TRACKER_VERSION

from tests.conformance.helpers import python_tracker_subject
from tests.services.up import UpProcess

APP_ID = "snowmelt-up-conformance"
CLICK = "iglu:com.acme/button_click/jsonschema/1-0-0"
UNKNOWN = "iglu:com.acme/not_in_any_registry/jsonschema/1-0-0"
CONTEXTS = [
    {"schema": "iglu:com.acme/user_context/jsonschema/1-0-0",
     "data": {"tier": "gold", "tags": ["a", "ü", "&=?"], "score": 0.5}},
    {"schema": "iglu:com.acme/page_context/jsonschema/1-0-2",
     "data": {"section": "shoes & boots/ünïcode ✓", "index": 3, "flag": None}},
]
SUBJECT = {"uid": "user-ü@example.com", "ip": "203.0.113.7", "lang": "de-CH", "tz": "Europe/Zurich",
           "ua": "Mozilla/5.0 (X11; Linux x86_64; conformance) Gecko/20100101 Firefox/128.0"}
SCHEMAS = {
    CLICK: {"type": "object", "additionalProperties": False, "required": ["id"], "properties": {
        "id": {"type": "string"}, "label": {"type": "string"}, "count": {"type": "integer"},
        "nested": {"type": "object"}}},
    CONTEXTS[0]["schema"]: {"type": "object", "properties": {
        "tier": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "number"}}},
    CONTEXTS[1]["schema"]: {"type": "object", "properties": {
        "section": {"type": "string"}, "index": {"type": "integer"}, "flag": {"type": ["boolean", "null"]}}},
}


def write_registry(root: Path, schemas: dict | None = None) -> Path:
    for uri, body in (SCHEMAS if schemas is None else schemas).items():
        vendor, name, fmt, version = uri.removeprefix("iglu:").split("/")
        path = root / "registry" / "schemas" / vendor / name / fmt / version
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": {"vendor": vendor, "name": name, "format": fmt, "version": version}, **body}))
    config = root / "resolver.json"
    config.write_text(json.dumps({
        "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-1",
        "data": {"cacheSize": 500, "repositories": [
            {"name": "test registry", "priority": 0, "vendorPrefixes": ["com.acme"],
             "connection": {"embedded": {"path": "registry/schemas"}}}]}}))
    return config


def start_up(tmp_path: Path, schemas: dict | None = None) -> UpProcess:
    """``snowmelt up`` with a resolver whose registry holds ``schemas`` (default: this module's)."""
    return UpProcess(tmp_path / "data", resolver=write_registry(tmp_path, schemas)).start(30)


@pytest.fixture
def up(tmp_path):
    proc = start_up(tmp_path)
    yield proc
    proc.terminate()
    proc.remove_log()




def plan(count: int, prefix: str):
    """(tracker event, expected analytics-SDK values) cycling page view, structured, self-describing."""
    out = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            url = f"https://shop.example.com/{prefix}/{i}?q=caf%C3%A9#top"
            title = f"Page {i} — “quotes” & ampersands"
            refr = "https://www.google.com/search?q=snow+melt"
            out.append((PageView(page_url=url, page_title=title, referrer=refr),
                        {"event": "page_view", "page_url": url, "page_title": title, "page_referrer": refr,
                         "page_urlhost": "shop.example.com", "page_urlpath": f"/{prefix}/{i}"}))
        elif kind == 1:
            out.append((StructuredEvent(category="shop", action="add-to-basket", label=f"sku-{i} x&y=z",
                                        property_="size=XL/ü", value=i + 0.5),
                        {"event": "struct", "se_category": "shop", "se_action": "add-to-basket",
                         "se_label": f"sku-{i} x&y=z", "se_property": "size=XL/ü", "se_value": i + 0.5}))
        else:
            data = {"id": f"b{i}", "label": "Buy ✓ now", "count": i, "nested": {"ok": True}}
            out.append((SelfDescribing(SelfDescribingJson(CLICK, data),
                                       context=[SelfDescribingJson(c["schema"], c["data"]) for c in CONTEXTS]),
                        {"event": "unstruct", "event_name": "button_click",
                         "unstruct_event_com_acme_button_click_1": data,
                         "contexts_com_acme_user_context_1": [CONTEXTS[0]["data"]],
                         "contexts_com_acme_page_context_1": [CONTEXTS[1]["data"]]}))
    return out


def common(namespace: str) -> dict:
    return {"app_id": APP_ID, "platform": "pc", "name_tracker": namespace, "v_tracker": TRACKER_VERSION,
            "user_id": SUBJECT["uid"], "user_ipaddress": SUBJECT["ip"], "useragent": SUBJECT["ua"],
            "br_lang": SUBJECT["lang"], "os_timezone": SUBJECT["tz"], "dvce_screenwidth": 1920,
            "dvce_screenheight": 1080}


def track(up: UpProcess, method: str, namespace: str, events, *, batch_size: int, base64: bool) -> dict:
    """Send through a real tracker and flush; returns eid -> expected values."""
    sent, failed = [], []
    emitter = Emitter("127.0.0.1", protocol="http", port=up.port, method=method, batch_size=batch_size,
                      on_success=lambda evs: sent.extend(e["eid"] for e in evs),
                      on_failure=lambda _n, evs: failed.extend(evs), request_timeout=10)
    tracker = Tracker(namespace, emitters=emitter, subject=python_tracker_subject(SUBJECT), app_id=APP_ID, encode_base64=base64)
    expected = {}
    for event, values in events:
        expected[tracker.track(event)] = {**common(namespace), **values}
    tracker.flush()
    assert failed == [], f"{len(failed)} events failed to send"
    assert sorted(sent) == sorted(expected)
    return expected


def poll_json(up: UpProcess, path: str, until, timeout: float = 30, body=None):
    deadline = time.monotonic() + timeout
    while True:
        resp = requests.post(up.url + path, json=body, timeout=5) if body is not None else \
            requests.get(up.url + path, timeout=5)
        assert resp.status_code == 200
        data = resp.json()
        if until(data):
            return data
        assert time.monotonic() < deadline, f"timed out on {path}: {str(data)[:500]}\n{up.output()}"
        time.sleep(0.05)


def assert_values(event: dict, values: dict, where: str) -> None:
    for key, value in values.items():
        assert event.get(key) == value, f"{where}: {key} = {event.get(key)!r}, expected {value!r}"


def test_trackers_through_up_micro_api_and_files(up):
    expected = {}
    expected.update(track(up, "get", "up-get", plan(6, "get"), batch_size=1, base64=True))
    expected.update(track(up, "post", "up-post", plan(7, "post"), batch_size=4, base64=False))
    # one event whose schema no registry has: a bad row
    bad_eids = set(track(up, "post", "up-bad", [(SelfDescribing(SelfDescribingJson(UNKNOWN, {"a": 1})), {})],
                         batch_size=1, base64=True))

    summary = poll_json(up, "/micro/all", lambda d: d["total"] >= len(expected) + 1)
    assert summary == {"total": len(expected) + 1, "good": len(expected), "bad": 1}

    # the Micro API: analytics JSON, event type, schema, contexts, raw parameters
    good = requests.get(up.url + "/micro/good", timeout=5).json()
    by_eid = {g["event"]["event_id"]: g for g in good}
    assert set(by_eid) == set(expected)
    for eid, values in expected.items():
        item = by_eid[eid]
        assert_values(item["event"], values, f"/micro/good {eid}")
        assert item["eventType"] == values["event"]
        assert item["rawEvent"]["parameters"]["eid"] == eid
        assert item["rawEvent"]["parameters"]["tna"] == values["name_tracker"]
        if values["event"] == "unstruct":
            assert item["schema"] == CLICK
            assert item["contexts"] == [c["schema"] for c in CONTEXTS]
        else:
            assert item["contexts"] == []
    unstruct = requests.post(up.url + "/micro/good", json={"event_type": "unstruct",
                                                           "contexts": [CONTEXTS[1]["schema"]]}, timeout=5).json()
    assert sorted(g["event"]["event_id"] for g in unstruct) == \
        sorted(e for e, v in expected.items() if v["event"] == "unstruct")
    assert len(requests.post(up.url + "/micro/good", json={"schema": CLICK, "limit": 2}, timeout=5).json()) == 2
    [bad] = requests.get(up.url + "/micro/bad", timeout=5).json()
    assert bad["rawEvent"]["parameters"]["eid"] in bad_eids
    assert bad["collectorPayload"]["api"] == {"vendor": "com.snowplowanalytics.snowplow", "version": "tp2"}
    assert any(UNKNOWN.removeprefix("iglu:") in e for e in bad["errors"])

    # the enriched file, read by Snowplow's analytics SDK
    lines = up.enriched_lines()
    from_file = {}
    for line in lines:
        event = transform(line)
        if "se_value" in event:  # the Python SDK leaves it a string; the other SDKs make it a number
            event["se_value"] = float(event["se_value"])
        from_file[event["event_id"]] = event
    assert set(from_file) == set(expected)
    for eid, values in expected.items():
        assert_values(from_file[eid], values, f"enriched file {eid}")

    # a burst accepted right before SIGTERM: drained into the files, exit 0
    burst = track(up, "post", "up-burst", plan(30, "burst"), batch_size=10, base64=True)
    code = up.terminate()
    assert code == 0, up.output()
    enriched_ids = {transform(line)["event_id"] for line in up.enriched_lines()}
    bad_text = "\n".join(up.bad_lines())
    accepted = set(expected) | set(burst) | bad_eids
    missing = [e for e in accepted if e not in enriched_ids and e not in bad_text]
    assert missing == [], f"{len(missing)} accepted events are in neither file"
    assert set(burst) <= enriched_ids
    assert len(up.bad_lines()) == 1
