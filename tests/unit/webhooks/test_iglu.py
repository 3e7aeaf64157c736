"""The Iglu webhook adapter (processor/webhooks/iglu.py) on the cases of data/iglu/cases.json."""
import json
from pathlib import Path

import pytest

import ext
from ext import CollectorPayload
from processor.adapters import ADAPTER_FAILURES, UNSTRUCT_SCHEMA, adapt
from processor.stage import Enricher

PATH = "/com.snowplowanalytics.iglu/v1"
CASES = json.loads((Path(__file__).parent / "data" / "iglu" / "cases.json").read_text(encoding="utf-8"))
SOCIAL = "iglu:com.snowplowanalytics.snowplow/social_interaction/jsonschema/1-0-0"


def payload(case: dict) -> CollectorPayload:
    body = case.get("body")
    return CollectorPayload(
        schema=ext.SCHEMA, ip_address="203.0.113.9", timestamp=1_764_288_000_123, encoding="UTF-8",
        collector="snowmelt-test", path=PATH, querystring=case.get("query"), body=body,
        content_type=case.get("content_type") if body is not None else None,
        headers=["Host: collector.acme.com"], network_user_id="11111111-1111-4111-8111-111111111111")


def expected_params(event: dict) -> dict:
    """The tracker parameters one expected event of a case stands for."""
    params = {k: v for k, v in event.items() if k not in ("schema", "data")}
    params.update({"e": "ue", "tv": "com.snowplowanalytics.iglu-v1"})
    return params


@pytest.mark.parametrize("case", CASES["good"], ids=lambda c: c["name"])
def test_good_cases(case):
    result = adapt(payload(case))
    assert result.failure is None, result.failure
    assert (result.vendor, result.version) == ("com.snowplowanalytics.iglu", "v1")
    assert len(result.events) == len(case["events"])
    for got, want in zip(result.events, case["events"]):
        ue = json.loads(got["ue_pr"])
        assert ue == {"schema": UNSTRUCT_SCHEMA, "data": {"schema": want["schema"], "data": want["data"]}}
        assert {k: v for k, v in got.items() if k != "ue_pr"} == expected_params(want)


@pytest.mark.parametrize("case", CASES["bad"], ids=lambda c: c["name"])
def test_bad_cases(case):
    result = adapt(payload(case))
    assert result.events == []
    assert result.failure is not None and result.failure.kind == ADAPTER_FAILURES
    assert (result.failure.vendor, result.failure.version) == ("com.snowplowanalytics.iglu", "v1")
    if "failure" in case:
        assert result.failure.messages == case["failure"]
    else:
        assert [m["field"] for m in result.failure.messages] == case["failure_fields"]
        assert case["failure_fragment"] in json.dumps(result.failure.messages)


def test_get_values_are_strings_and_empty_values_null():
    result = adapt(payload({"query": f"schema={SOCIAL}&network=x&action=&count=3&flag=true"}))
    [event] = result.events
    assert json.loads(event["ue_pr"])["data"]["data"] == {"network": "x", "action": None, "count": "3", "flag": "true"}


def test_json_body_keeps_its_types_and_passthrough_stays_in_json_data():
    # With a JSON body only the query string gives tracker parameters; the body is the data as is.
    body = json.dumps({"n": 1.5, "ok": False, "nested": {"a": [1, None]}, "aid": "in-data"})
    result = adapt(payload({"query": f"schema={SOCIAL}&aid=qs", "body": body, "content_type": "application/json"}))
    [event] = result.events
    assert json.loads(event["ue_pr"])["data"]["data"] == json.loads(body)
    assert event["aid"] == "qs"


def test_form_body_is_the_data_whole_and_pass_through_comes_from_the_query_string():
    # as 3.9.0: the form's fields all stay in the data; only the query string gives tracker parameters
    result = adapt(payload({"query": f"schema={SOCIAL}&aid=qs&p=web", "body": "aid=form&eid=e1&network=n&action=a",
                            "content_type": "application/x-www-form-urlencoded"}))
    [event] = result.events
    assert (event["aid"], event["p"]) == ("qs", "web") and "eid" not in event
    assert json.loads(event["ue_pr"])["data"]["data"] == {"aid": "form", "eid": "e1", "network": "n", "action": "a"}


def test_content_type_is_compared_whole():
    # Snowplow accepts exactly these values (the collector lower-cases the header).
    case = {"query": f"schema={SOCIAL}", "body": '{"network":"x","action":"y"}'}
    assert adapt(payload({**case, "content_type": "application/json; charset=utf-8"})).failure is None
    failure = adapt(payload({**case, "content_type": "application/json;charset=utf-8"})).failure
    assert failure.messages[0]["field"] == "contentType"
    failure = adapt(payload({**case, "content_type": None})).failure
    assert failure.messages[0] == {"field": "contentType", "value": None, "expectation":
                                   "expected one of application/json, application/json; charset=utf-8, "
                                   "application/x-www-form-urlencoded"}


def test_undecodable_form_body_names_the_body():
    failure = adapt(payload({"query": f"schema={SOCIAL}", "body": "network=%zz",
                             "content_type": "application/x-www-form-urlencoded"})).failure
    assert failure.kind == ADAPTER_FAILURES and failure.messages[0]["field"] == "body"
    assert failure.messages[0]["expectation"] == "Malformed escape pair at index 26: http://localhost/?network=%zz"


def test_through_the_stage_events_validate_against_the_shipped_schema():
    enricher = Enricher()
    try:
        case = CASES["good"][0]
        raw = ext.encode_collector_payload(payload(case))
        out = enricher.enrich(raw)
        assert not out.bad, out.bad
        [line] = out.good
        fields = (line.decode() if isinstance(line, bytes) else line).split("\t")
        assert fields[0] == "mobile-attribution" and fields[1] == "mob"
        assert SOCIAL in "\t".join(fields) and '"network":"twitter"' in "\t".join(fields)
        # a wrongly typed value fails validation: a schema_violations bad row
        bad = payload({"query": f"schema={SOCIAL}", "body": '{"network":5,"action":"y"}',
                       "content_type": "application/json"})
        out = enricher.enrich(ext.encode_collector_payload(bad))
        assert not out.good and len(out.bad) == 1
        assert "schema_violations" in (out.bad[0].decode() if isinstance(out.bad[0], bytes) else out.bad[0])
    finally:
        enricher.close()
