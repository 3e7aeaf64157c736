"""The Iglu webhook end to end: a real ``snowmelt up``, every case of
tests/unit/webhooks/data/iglu/cases.json sent over HTTP (GET with the query
string, POST with the case's content type), then the events read back from
``/micro/good`` (the analytics SDK's JSON of each enriched event) and the bad
rows from ``/micro/bad``.
"""
from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from ext import parse_query_string
from tests.services.up import UpProcess

PATH = "/com.snowplowanalytics.iglu/v1"
CASES = json.loads((Path(__file__).parents[1] / "unit" / "webhooks" / "data" / "iglu" / "cases.json")
                   .read_text(encoding="utf-8"))
SOCIAL = "iglu:com.snowplowanalytics.snowplow/social_interaction/jsonschema/1-0-0"
# Valid for the adapter, invalid for the schema (network must be a string): a schema_violations bad row.
WRONG_TYPE = {"name": "wrong_type", "method": "POST", "content_type": "application/json",
              "query": "schema=" + SOCIAL, "body": '{"network":5,"action":"share"}'}
SOCIAL_PROPERTIES = {"action", "network", "target"}  # social_interaction 1-0-0 allows no others


def valid(event: dict) -> bool:
    """Whether the adapter's event passes social_interaction 1-0-0: as in 3.9.0 the Iglu adapter keeps
    every parameter but ``schema`` in the data (``eid``, ``url``, ``aid`` of a form too), which the schema refuses,
    and a non-object element of an array becomes an event of its own."""
    return isinstance(event["data"], dict) and set(event["data"]) <= SOCIAL_PROPERTIES


GOOD_EVENTS = [e for case in CASES["good"] for e in case["events"] if valid(e)]
INVALID_EVENTS = [e for case in CASES["good"] for e in case["events"] if not valid(e)]
N_GOOD = len(GOOD_EVENTS)
N_BAD = len(CASES["bad"]) + len(INVALID_EVENTS) + 1


def send(base: str, case: dict) -> None:
    url = base + PATH + (f"?{case['query']}" if case.get("query") else "")
    body = case.get("body")
    request = urllib.request.Request(url, data=body.encode() if body is not None else None, method=case["method"],
                                     headers={"Content-Type": case["content_type"]} if body is not None else {})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200, (url, resp.status)


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    process = UpProcess(tmp_path_factory.mktemp("up-webhooks-iglu")).start()
    try:
        for case in [*CASES["good"], *CASES["bad"], WRONG_TYPE]:
            send(process.url, case)
        deadline = time.monotonic() + 60
        while (summary := process.get("/micro/all"))["total"] < N_GOOD + N_BAD:
            assert time.monotonic() < deadline, f"timed out: {summary}\n{process.output()}"
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()


def _key(schema, data, platform, app_id) -> str:
    return json.dumps([schema, data, platform, app_id], sort_keys=True)


def test_counts(up):
    assert up.get("/micro/all") == {"total": N_GOOD + N_BAD, "good": N_GOOD, "bad": N_BAD}


def test_every_good_case_becomes_its_self_describing_events(up):
    good = up.get("/micro/good")
    got = Counter()
    for item in good:
        event = item["event"]
        assert item["eventType"] == "unstruct" and item["schema"] == SOCIAL
        assert event["event"] == "unstruct" and event["v_tracker"] == "com.snowplowanalytics.iglu-v1"
        assert (event["event_vendor"], event["event_name"], event["event_format"], event["event_version"]) == (
            "com.snowplowanalytics.snowplow", "social_interaction", "jsonschema", "1-0-0")
        assert item["rawEvent"]["api"] == {"vendor": "com.snowplowanalytics.iglu", "version": "v1"}
        got[_key(item["schema"], event["unstruct_event_com_snowplowanalytics_snowplow_social_interaction_1"],
                 event["platform"], event.get("app_id"))] += 1
    want = Counter(_key(e["schema"], e["data"], e["p"], e.get("aid")) for e in GOOD_EVENTS)
    assert got == want and INVALID_EVENTS


def test_passthrough_parameters_reach_the_enriched_event(up):
    [case] = [c for c in CASES["good"] if c["name"] == "get_passthrough_and_default_platform"]
    [want] = case["events"]
    # its data keeps eid, ttm and url, which social_interaction refuses: the schema_violations row shows the
    # event's parameters
    [raw] = [b["rawEvent"] for b in up.get("/micro/bad")
             if b["rawEvent"] and b["rawEvent"]["parameters"].get("eid") == want["eid"]]
    parameters = raw["parameters"]
    assert parameters["nuid"] == want["nuid"] and parameters["ttm"] == "1365109999123"
    assert parameters["url"] == want["url"] and parameters["aid"] == "site" and parameters["p"] == "app"


def test_every_bad_case_is_an_adapter_failures_row_saying_what_was_wrong(up):
    bad = up.get("/micro/bad")
    for case in CASES["bad"]:
        query = [{"name": k, "value": v} for k, v in parse_query_string(case.get("query") or "")]
        rows = [b for b in bad if b["collectorPayload"]["body"] == case.get("body")
                and b["collectorPayload"]["querystring"] == query]
        assert len(rows) == 1, (case["name"], [b["collectorPayload"] for b in bad])
        [row] = rows
        assert row["collectorPayload"]["api"] == {"vendor": "com.snowplowanalytics.iglu", "version": "v1"}
        assert row["errors"] and all(e.startswith("adapter_failures: ") for e in row["errors"]), row["errors"]
        messages = [json.loads(e.split(": ", 1)[1]) for e in row["errors"]]
        if "failure" in case:
            assert messages == case["failure"], case["name"]
        else:
            assert [m["field"] for m in messages] == case["failure_fields"]
            assert case["failure_fragment"] in json.dumps(messages)


def test_bad_rows_in_files_are_adapter_failures(up):
    rows = [json.loads(line) for line in up.bad_lines()]
    kinds = Counter(r["schema"].split("/")[1] for r in rows)
    assert kinds == {"adapter_failures": len(CASES["bad"]), "schema_violations": 1 + len(INVALID_EVENTS)}
    for row in rows:
        if "adapter_failures" in row["schema"]:
            assert row["data"]["failure"]["vendor"] == "com.snowplowanalytics.iglu"


def test_wrongly_typed_data_fails_schema_validation(up):
    [row] = [b for b in up.get("/micro/bad") if b["collectorPayload"]["body"] == WRONG_TYPE["body"]] or [None]
    assert row is not None
    assert row["errors"][0].startswith("schema_violations") and "network" in " ".join(row["errors"])


def test_a_remote_adapter_configured_for_a_path_turns_its_answer_into_events(tmp_path):
    """``up.remote_adapters``: /com.acme/v1 is POSTed to a remote service whose events come out enriched."""
    from tests.unit.enrichments.http_stub import HttpStub

    event = {"e": "ue", "p": "srv", "tv": "com.acme-v1", "aid": "remote-test",
             "ue_pr": json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                                  "data": {"schema": "iglu:com.snowplowanalytics.snowplow/social_interaction/"
                                                     "jsonschema/1-0-0",
                                           "data": {"action": "like", "network": "acme"}}})}
    with HttpStub() as stub:
        stub.route("POST", "/adapt", lambda req: (200, {"events": [event]}))
        config = json.dumps([{"vendor": "com.acme", "version": "v1", "url": stub.url + "/adapt",
                              "timeout_seconds": 5}])
        up = UpProcess(tmp_path / "data", settings={"up.remote_adapters": config}).start()
        try:
            with urllib.request.urlopen(urllib.request.Request(
                    up.url + "/com.acme/v1?source=test", data=b'{"liked": true}',
                    headers={"Content-Type": "application/json"}), timeout=5) as resp:
                assert resp.status == 200
            deadline = time.monotonic() + 30
            while up.get("/micro/all")["good"] < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            [good] = up.get("/micro/good")
            assert good["event"]["app_id"] == "remote-test"
            assert good["event"]["unstruct_event_com_snowplowanalytics_snowplow_social_interaction_1"] == {
                "action": "like", "network": "acme"}
            [request] = stub.requests
            sent = request.json
            assert sent["contentType"] == "application/json"
            assert sent["queryString"] == {"source": "test"}
            assert sent["body"] == '{"liked": true}'
            assert up.terminate() == 0
        finally:
            up.kill()
            up.remove_log()
