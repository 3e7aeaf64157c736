"""The official Node tracker (``@snowplow/node-tracker``) -> ``snowmelt up`` (a real process) -> Micro API and files.

``tests/conformance/node/send.mjs`` drives the tracker through a GET and a POST
emitter against a running ``snowmelt up`` whose ``--resolver`` points at a
temporary embedded registry holding the schemas send.mjs uses (a
``link_click`` self-describing event, a ``user_context`` and a ``page_context``
entity).  Every event send.mjs reports must come back through ``/micro/good``
exactly once, by event id, with the values sent (event type, page fields,
``se_*``, the self-describing event's data, the entities' data, the tracker's
version, namespace and app id and the subject), and the enriched TSV file must
hold the same events as Snowplow's analytics SDK parses them.  On SIGTERM the
process drains and exits 0.

Skips like ``test_node_tracker.py`` when ``node``/``npm`` or the package are missing.
"""
from __future__ import annotations

import shutil
import time
from urllib.parse import urlsplit

import pytest
import requests
from snowplow_analytics_sdk.event_transformer import transform

from tests.conformance.test_node_tracker import node_tracker, send  # noqa: F401  (node_tracker: a fixture)
from tests.conformance.test_up_trackers import assert_values, poll_json, start_up

pytestmark = pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")),
                                reason="node and npm are needed for the @snowplow/node-tracker conformance tests")

# The schemas send.mjs sends (see PAGE_CONTEXT, USER_CONTEXT and the `ue` of its self-describing events).
LINK_CLICK = "iglu:com.acme/link_click/jsonschema/1-0-1"
USER_CONTEXT = "iglu:com.acme/user_context/jsonschema/1-0-0"
PAGE_CONTEXT = "iglu:com.acme/page_context/jsonschema/1-0-2"
NODE_SCHEMAS = {
    LINK_CLICK: {"type": "object", "additionalProperties": False, "required": ["target", "position"], "properties": {
        "target": {"type": "string", "maxLength": 4096}, "label": {"type": "string"},
        "position": {"type": "integer", "minimum": 0}, "nested": {"type": "object"}}},
    USER_CONTEXT: {"type": "object", "additionalProperties": False, "properties": {
        "tier": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "number"}}},
    PAGE_CONTEXT: {"type": "object", "additionalProperties": False, "properties": {
        "section": {"type": "string"}, "index": {"type": "integer"}, "flag": {"type": ["boolean", "null"]}}},
}
EVENT_TYPES = {"pv": "page_view", "se": "struct", "ue": "unstruct"}
SPACES_AS_SENT = "__spaces_as_sent"  # expected-values key: fields compared with %20 read as a space


def column(schema: str, prefix: str) -> str:
    """The analytics-SDK column of a schema: ``contexts_com_acme_page_context_1``."""
    vendor, name, _fmt, version = schema.removeprefix("iglu:").split("/")
    return f"{prefix}_{vendor.replace('.', '_')}_{name}_{version.split('-')[0]}"


@pytest.fixture
def up(tmp_path):
    proc = start_up(tmp_path, NODE_SCHEMAS)
    yield proc
    proc.terminate()
    proc.remove_log()


def expected_values(report: dict) -> dict[str, dict]:
    """eid -> the analytics-SDK values each event of a send.mjs report must have after enrichment."""
    subject = report["subject"]
    width, height = (int(n) for n in subject["res"].split("x"))
    common = {"app_id": report["appId"], "platform": report["platform"], "name_tracker": report["namespace"],
              "v_tracker": report["tracker"], "user_id": subject["uid"], "user_ipaddress": subject["ip"],
              "useragent": subject["ua"], "br_lang": subject["lang"], "os_timezone": subject["tz"],
              "dvce_screenwidth": width, "dvce_screenheight": height}
    out = {}
    for sent in report["events"]:
        values = {**common, "event_id": sent["eid"], "event": EVENT_TYPES[sent["e"]]}
        params = sent["params"]
        if sent["e"] == "pv":
            parts = urlsplit(params["url"])
            values.update({"page_title": params["page"], "page_referrer": params["refr"],
                           "page_urlscheme": parts.scheme, "page_urlhost": parts.hostname, "page_urlport": 443,
                           "page_urlpath": parts.path, "page_urlfragment": parts.fragment,
                           "refr_urlhost": urlsplit(params["refr"]).hostname})
            # The url has literal spaces: Snowplow's enrich writes page_url/page_urlquery with them as %20,
            # the tracker sent them raw; compared with spaces either way.
            values[SPACES_AS_SENT] = {"page_url": params["url"], "page_urlquery": parts.query}
        elif sent["e"] == "se":
            values.update({"se_category": params["se_ca"], "se_action": params["se_ac"], "se_label": params["se_la"],
                           "se_property": params["se_pr"], "se_value": float(params["se_va"])})
        else:
            ue = sent["ue"]
            assert ue["schema"] == LINK_CLICK
            vendor, name, fmt, version = LINK_CLICK.removeprefix("iglu:").split("/")
            values.update({"event_vendor": vendor, "event_name": name, "event_format": fmt, "event_version": version,
                           column(LINK_CLICK, "unstruct_event"): ue["data"]})
        by_schema: dict[str, list] = {}
        for ctx in sent["contexts"]:
            by_schema.setdefault(column(ctx["schema"], "contexts"), []).append(ctx["data"])
        values.update(by_schema)
        out[sent["eid"]] = values
    return out


def check_values(event: dict, values: dict, where: str) -> None:
    assert_values(event, {k: v for k, v in values.items() if k != SPACES_AS_SENT}, where)
    for key, value in values.get(SPACES_AS_SENT, {}).items():
        got = event.get(key)
        assert isinstance(got, str) and got.replace("%20", " ") == value, f"{where}: {key} = {got!r}, sent {value!r}"


def check_micro_item(item: dict, values: dict, sent: dict) -> None:
    eid = values["event_id"]
    where = f"/micro/good {eid}"
    event = item["event"]
    check_values(event, values, where)
    # columns of entities/events this event did not carry stay absent
    for key in event:
        if key.startswith(("contexts_", "unstruct_event_")) and event[key] is not None:
            assert key in values, f"{where}: unexpected {key} = {event[key]!r}"
    assert item["eventType"] == values["event"]
    if sent["e"] == "ue":
        assert item["schema"] == LINK_CLICK, (where, item["schema"])
    assert item["contexts"] == [c["schema"] for c in sent["contexts"]], (where, item["contexts"])
    params = item["rawEvent"]["parameters"]
    assert params["eid"] == eid
    assert params["e"] == sent["e"]
    assert params["tv"] == values["v_tracker"]
    assert params["tna"] == values["name_tracker"]
    assert params["aid"] == values["app_id"]


def test_node_tracker_through_up_micro_api_and_files(node_tracker, up):  # noqa: F811
    reports = [send(up, "get", 7)[0], send(up, "post", 14, "--buffer-size", "5")[0]]
    assert [r["method"] for r in reports] == ["get", "post"]
    sent = {e["eid"]: e for r in reports for e in r["events"]}
    assert len(sent) == sum(len(r["events"]) for r in reports), "send.mjs reported an event id twice"
    expected = {}
    for report in reports:
        assert report["tracker"] == f"node-{node_tracker}"
        expected.update(expected_values(report))
    # every request send.mjs made carried only events it reports, and together all of them
    assert sorted(eid for r in reports for req in r["requests"] for eid in req["eids"]) == sorted(sent)
    assert len(reports[0]["requests"]) == len(reports[0]["events"]), "GET: one event per request"

    summary = poll_json(up, "/micro/all", lambda d: d["total"] >= len(expected))
    assert summary == {"total": len(expected), "good": len(expected), "bad": 0}, requests.get(
        up.url + "/micro/bad", timeout=5).text[:3000]

    # the Micro API: each event exactly once, with the values sent
    good = requests.get(up.url + "/micro/good", timeout=5).json()
    eids = [g["event"]["event_id"] for g in good]
    assert len(eids) == len(set(eids)), "an event arrived more than once"
    assert set(eids) == set(expected)
    by_eid = {g["event"]["event_id"]: g for g in good}
    for eid, values in expected.items():
        check_micro_item(by_eid[eid], values, sent[eid])
    # Micro's filters on the same events
    with_both = requests.post(up.url + "/micro/good", json={"event_type": "unstruct", "schema": LINK_CLICK,
                                                            "contexts": [USER_CONTEXT, PAGE_CONTEXT]}, timeout=5).json()
    assert sorted(g["event"]["event_id"] for g in with_both) == sorted(e for e, s in sent.items() if s["e"] == "ue")
    page_ctx = requests.post(up.url + "/micro/good", json={"contexts": [PAGE_CONTEXT]}, timeout=5).json()
    assert sorted(g["event"]["event_id"] for g in page_ctx) == \
        sorted(e for e, s in sent.items() if s["e"] in ("pv", "ue"))
    structs = requests.post(up.url + "/micro/good", json={"event_type": "struct"}, timeout=5).json()
    assert sorted(g["event"]["event_id"] for g in structs) == sorted(e for e, s in sent.items() if s["e"] == "se")

    # the enriched file, read by Snowplow's analytics SDK (polled: the writer may lag the Micro API)
    deadline = time.monotonic() + 30
    while True:
        from_file = {}
        lines = up.enriched_lines()
        for line in lines:
            event = transform(line)
            if "se_value" in event:  # the Python SDK leaves it a string
                event["se_value"] = float(event["se_value"])
            from_file.setdefault(event["event_id"], []).append(event)
        if set(from_file) >= set(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert set(from_file) == set(expected)
    assert len(lines) == len(expected), "an event is in the enriched file more than once"
    for eid, values in expected.items():
        [event] = from_file[eid]
        check_values(event, values, f"enriched file {eid}")
    assert up.bad_lines() == []

    # SIGTERM: drained, exit 0, the file still holds exactly these events
    code = up.terminate()
    assert code == 0, up.output()
    after = [transform(line)["event_id"] for line in up.enriched_lines()]
    assert sorted(after) == sorted(expected)
