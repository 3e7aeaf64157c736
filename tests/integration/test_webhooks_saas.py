"""Olark, StatusGator, Unbounce, Urban Airship Connect, Vero, HubSpot, Marketo and
CallRail webhooks through a real ``snowmelt up`` (collector + enrich in one process).

Every fixture of ``tests/unit/webhooks/data/<vendor>/`` goes over HTTP to its
vendor path with the vendor's content type (CallRail as a GET), and the events
that come out of ``/micro/good`` (the analytics-SDK JSON) are checked: the
self-describing event's schema and data, the platform, ``tv`` and, for Urban
Airship, the event id and true timestamp taken from the Connect event.  The
malformed requests must each give one ``adapter_failures`` bad row on
``/micro/bad`` naming the field or event type.
"""
from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
import requests

from tests.services.up import UpProcess
from tests.unit.webhooks.test_olark import DATA

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def _read(vendor, name):
    return (DATA / vendor / name).read_text()


# without RICH_READ, which Snowplow's enrich 3.9.0 does not map
UA_EVENTS = [e for e in json.loads(_read("urbanairship", "events.json")) if e["type"] != "RICH_READ"]
HUBSPOT = json.loads(_read("hubspot", "events.json"))
HUBSPOT_NAMES = {"creation": "creation", "deletion": "deletion", "propertyChange": "change"}
VERO = {"sent": "sent", "delivered": "delivered", "opened": "opened", "clicked": "clicked", "bounced": "bounced",
        "unsubscribed": "unsubscribed", "user_created": "created", "user_updated": "updated"}

# (method, path, content type, body, query string, [(schema, check(data) -> None)])
GOOD = [
    ("POST", "/com.olark/v1", FORM, urlencode({"data": _read("olark", "transcript.json")}), "aid=chat", [
        ("iglu:com.olark/transcript/jsonschema/1-0-0",
         lambda d: d["items"][0]["timestamp"] == "2016-09-13T13:53:39.263Z" and "647563" in d["operators"])]),
    ("POST", "/com.olark/v1", FORM, urlencode({"data": _read("olark", "offline_message.json")}), "aid=chat", [
        ("iglu:com.olark/offline_message/jsonschema/1-0-0",
         lambda d: d["items"][0]["body"] == "Call me back please" and "operators" not in d)]),
    ("POST", "/com.statusgator/v1", FORM, _read("statusgator", "status_change.form").strip(), "aid=ops", [
        ("iglu:com.statusgator/status_change/jsonschema/1-0-0",
         lambda d: d["serviceName"] == "Amazon Web Services" and d["currentStatus"] == "warn")]),
    ("POST", "/com.unbounce/v1", FORM, _read("unbounce", "form_post.form").strip(), "aid=lp", [
        ("iglu:com.unbounce/form_post/jsonschema/1-0-0",
         lambda d: d["pageId"] == "f7afd389-65a3-45fa-8bad-b7a42236044c"
         and d["data.json"]["ipAddress"] == "127.0.0.1")]),
    # no content type: as Snowplow's enrich 3.9.0, the adapter refuses any
    *[("POST", "/com.urbanairship.connect/v1", None, json.dumps(e), "aid=mobile", [
        (f"iglu:com.urbanairship.connect/{e['type']}/jsonschema/1-0-0", lambda d, e=e: d == e)]) for e in UA_EVENTS],
    *[("POST", "/com.getvero/v1", JSON, _read("vero", f"{name}.json"), "aid=mail", [
        # as Snowplow's enrich 3.9.0, the type is dropped from the data
        (f"iglu:com.getvero/{schema}/jsonschema/1-0-0", lambda d, name=name: "type" not in d
         and d.get(f"{name}_at", "2015-06-22T23:37:18.000Z") == "2015-06-22T23:37:18.000Z")])
      for name, schema in VERO.items()],
    ("POST", "/com.hubspot/v1", JSON, json.dumps(HUBSPOT), "aid=crm", [
        ("iglu:com.hubspot/{}_{}/jsonschema/1-0-0".format(e["subscriptionType"].split(".")[0],
                                                          HUBSPOT_NAMES[e["subscriptionType"].split(".")[1]]),
         lambda d, e=e: d["objectId"] == e["objectId"] and d["occurredAt"].startswith("2016-05-02T19:11:47.9")
         and "subscriptionType" not in d) for e in HUBSPOT]),
    ("POST", "/com.marketo/v1", JSON, _read("marketo", "event.json"), "aid=mkto", [
        ("iglu:com.marketo/event/jsonschema/2-0-0",
         lambda d: d["lead"]["acquisition_date"] == "2010-11-11T11:11:11.000Z"
         and d["datetime"] == "2018-03-07T14:28:16.000Z")]),
    ("GET", "/com.callrail/v1", None, None, _read("callrail", "call_complete.qs").strip(), [
        ("iglu:com.callrail/call_complete/jsonschema/1-0-2",
         lambda d: d["answered"] is True and d["duration"] == 247 and d["datetime"] == "2014-10-09T16:23:45.000Z")]),
]

# (method, path, content type, body, query string, fragment of the adapter_failures messages)
BAD = [
    ("POST", "/com.olark/v1", FORM, "nodata=1", "", "missing 'data' field"),
    ("POST", "/com.statusgator/v1", JSON, "service_name=x", "", "contentType"),
    ("POST", "/com.unbounce/v1", FORM, "page_id=1&data.json=%7Boops", "", "missing 'page_name' field in body"),
    ("POST", "/com.urbanairship.connect/v1", None, json.dumps({**UA_EVENTS[0], "type": "PUSH_SENT"}), "", "PUSH_SENT"),
    ("POST", "/com.urbanairship.connect/v1", JSON, json.dumps(UA_EVENTS[0]), "", "expected no content type"),
    ("POST", "/com.getvero/v1", JSON, json.dumps({"type": "spammed"}), "", "spammed"),
    # 3.9.0's messages; its Marketo and CallRail adapters keep a value they cannot type (the schema judges it), so
    # their adapter failures are a body that is not an object and an empty query string
    ("POST", "/com.hubspot/v1", JSON, json.dumps([{"objectId": 1}]), "", "type parameter not provided at index 0"),
    ("POST", "/com.marketo/v1", JSON, json.dumps([{"name": "x"}]), "", "not a json object"),
    ("GET", "/com.callrail/v1", None, None, "", "empty querystring"),
]
N_GOOD = sum(len(expected) for *_, expected in GOOD)


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    process = UpProcess(tmp_path_factory.mktemp("up-webhooks-saas")).start()
    try:
        for method, path, content_type, body, qs, _ in [*GOOD, *BAD]:
            url = up_url = process.url + path + (f"?{qs}" if qs else "")
            headers = {"Content-Type": content_type} if content_type else {}
            resp = requests.request(method, url, data=body.encode() if body else None, headers=headers, timeout=10)
            assert resp.status_code == 200, (up_url, resp.status_code, resp.text)
        deadline = time.monotonic() + 60
        while True:
            summary = process.get("/micro/all")
            if summary["total"] >= N_GOOD + len(BAD):
                break
            assert time.monotonic() < deadline, f"timed out: {summary}\n{process.output()}"
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()


def _unstruct(event: dict) -> dict:
    [key] = [k for k in event if k.startswith("unstruct_event_") and event[k] is not None]
    return event[key]


def test_every_fixture_becomes_its_self_describing_event(up):
    assert up.get("/micro/all") == {"total": N_GOOD + len(BAD), "good": N_GOOD, "bad": len(BAD)}
    good = up.get("/micro/good")
    by_schema: dict[str, list[dict]] = {}
    for item in good:
        by_schema.setdefault(item["schema"], []).append(item)
    for method, path, _, _, qs, expected in GOOD:
        vendor = path.split("/")[1]
        for schema, check in expected:
            items = by_schema.get(schema, [])
            matching = [i for i in items if check(_unstruct(i["event"]))]
            assert matching, f"{schema}: none of {[_unstruct(i['event']) for i in items]}"
            event = matching[0]["event"]
            assert event["event"] == "unstruct" and event["platform"] == "srv"
            assert event["v_tracker"] == f"{vendor}-v1"
            assert event["app_id"] == dict(p.split("=", 1) for p in qs.split("&"))["aid"]


def test_urban_airship_events_keep_their_id_and_occurred_time(up):
    items = [i for i in up.get("/micro/good") if i["schema"].startswith("iglu:com.urbanairship.connect/")]
    assert len(items) == len(UA_EVENTS)
    for item in items:
        data = _unstruct(item["event"])
        assert item["event"]["event_id"] == data["id"]
        assert item["event"]["true_tstamp"].startswith(data["occurred"][:19])
        assert item["event"]["collector_tstamp"].startswith(data["processed"][:19])


def test_malformed_requests_are_adapter_failure_bad_rows(up):
    bad = up.get("/micro/bad")
    assert len(bad) == len(BAD)
    texts = [json.dumps(b) for b in bad]
    for method, path, _, _, _, fragment in BAD:
        vendor = path.split("/")[1]
        rows = [b for b in bad if b["collectorPayload"]["api"]["vendor"] == vendor
                and fragment in json.dumps(b["errors"])]
        assert rows, f"{path}: no bad row naming {fragment!r} in {texts}"
        assert "adapter_failures" in json.dumps(rows[0])
