"""The Snowplow tracker-protocol adapters (tp1, tp2, the ``/r/tp2`` redirect) as Snowplow's enrich 3.9.0 runs them.

The inputs and expected values are facts from Snowplow enrich 3.9.0 (Apache-2.0):
``modules/common/src/test/scala/com.snowplowanalytics.snowplow.enrich.common/adapters/registry/snowplow/
SnowplowAdapterSpec.scala`` (cases e1-e20, named below), with the bad-row type chosen as
``AdapterRegistry.scala`` chooses it (tracker_protocol_violations for ``com.snowplowanalytics.snowplow/tp2``
and ``r/tp2``, adapter_failures otherwise).  The collector's answer to ``/r/tp2`` without ``u`` (record
the request, then 400) is the behaviour of Snowplow's stream collector (``CollectorService.scala``,
``buildRedirectHttpResponse``).

The data reports of JSON Schema validation are compared whole (message, path, keyword, targets), in
order.  No service is needed: each case is
one raw record through :class:`processor.stage.Enricher` (or :func:`processor.adapters.adapt`); the
collector case runs the collector app in-process on a memory sink.
"""
from __future__ import annotations

import base64
import json

import pytest

from collector.app import make_app
from collector.sink import MemorySink
from ext import CollectorPayload, decode_collector_payload
from processor.adapters import ADAPTER_FAILURES, TPV, adapt
from processor.stage import Enricher
from snowmelt.config import load_config
from tests.unit.test_stage import raw

TP1, TP2, REDIRECT = "/i", "/com.snowplowanalytics.snowplow/tp2", "/r/tp2"
JSON = "application/json"
JSON_CHARSET = "application/json; charset=utf-8"
TPV_SCHEMA = "iglu:com.snowplowanalytics.snowplow.badrows/tracker_protocol_violations/jsonschema/1-0-1"
EXPECTED_TYPES = ("expected one of application/json, application/json; charset=utf-8, "
                  "application/json; charset=UTF-8")
GITHUB = "https://github.com/snowplow/snowplow"
GITHUB_Q = "u=https%3A%2F%2Fgithub.com%2Fsnowplow%2Fsnowplow"
URI_REDIRECT = {"schema": "iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0", "data": {"uri": GITHUB}}
MOBILE_AND_GEO = ('{"data":[{"data":{"osType":"OSX","appleIdfv":"some_appleIdfv","openIdfa":"some_Idfa",'
                  '"carrier":"some_carrier","deviceModel":"large","osVersion":"3.0.0","appleIdfa":"some_appleIdfa",'
                  '"androidIdfa":"some_androidIdfa","deviceManufacturer":"Amstrad"},'
                  '"schema":"iglu:com.snowplowanalytics.snowplow/mobile_context/jsonschema/1-0-0"},'
                  '{"data":{"longitude":10,"bearing":50,"speed":16,"altitude":20,"altitudeAccuracy":0.3,'
                  '"latitudeLongitudeAccuracy":0.5,"latitude":7},'
                  '"schema":"iglu:com.snowplowanalytics.snowplow/geolocation_context/jsonschema/1-0-0"}],'
                  '"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"}')
REDIRECT_JSON = ('{"schema":"iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0",'
                 '"data":{"uri":"https://github.com/snowplow/snowplow"}}')


def payload(path, querystring=None, body=None, content_type=None) -> CollectorPayload:
    return CollectorPayload(schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
                            ip_address="37.157.33.123", timestamp=1_377_735_528_000, encoding="UTF-8",
                            collector="clj-tomcat", path=path, querystring=querystring, body=body,
                            content_type=content_type)


def self_describing(data: str, name: str = "payload_data") -> str:
    """SpecHelpers.toSelfDescJson: ``data`` under ``iglu:com.snowplowanalytics.snowplow/<name>/jsonschema/1-0-0``."""
    return f'{{"schema":"iglu:com.snowplowanalytics.snowplow/{name}/jsonschema/1-0-0","data":{data}}}'


def encode_base64url(text: str) -> str:
    """ConversionUtils.encodeBase64Url: URL-safe, no padding."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def failure(result):
    assert result.events == [] and result.failure is not None
    return result.failure.kind, result.failure.messages


def reports(message: dict) -> list[tuple]:
    """(message, path, keyword, targets) of each data report of an IgluError ValidationError message."""
    assert message["error"]["error"] == "ValidationError"
    assert all(list(r) == ["message", "path", "keyword", "targets"] for r in message["error"]["dataReports"])
    return [(r["message"], r["path"], r["keyword"], r["targets"]) for r in message["error"]["dataReports"]]


@pytest.fixture(scope="module")
def enricher():
    return Enricher()


# ---------------------------------------------------------------- tp1


def test_e1_tp1_one_event_from_the_querystring():
    assert adapt(payload(TP1, "aid=test")).events == [{"aid": "test"}]


def test_e2_tp1_without_a_querystring_is_an_adapter_failure():
    assert failure(adapt(payload(TP1))) == (ADAPTER_FAILURES, [
        {"field": "querystring", "value": None, "expectation": "empty querystring: not a valid URI redirect"}])


# ---------------------------------------------------------------- tp2


def test_e3_tp2_querystring_only():
    assert adapt(payload(TP2, "aid=tp2&e=se")).events == [{"aid": "tp2", "e": "se"}]


@pytest.mark.parametrize("content_type", [JSON_CHARSET, "application/json; charset=UTF-8"])
def test_e4_e6_tp2_body_with_one_event(content_type):
    body = self_describing('[{"tv":"ios-0.1.0","p":"mob","e":"se"}]')
    assert adapt(payload(TP2, None, body, content_type)).events == [{"tv": "ios-0.1.0", "p": "mob", "e": "se"}]


def test_e5_tp2_body_events_merged_with_the_querystring_which_wins():
    body = self_describing('[{"tv":"1","p":"1","e":"1"},{"tv":"2","p":"2","e":"2"},{"tv":"3","p":"3","e":"3"}]')
    result = adapt(payload(TP2, "tv=0&nuid=123", body, "application/json; charset=UTF-8"))
    assert result.events == [{"tv": "0", "p": str(i), "e": str(i), "nuid": "123"} for i in (1, 2, 3)]


@pytest.mark.parametrize("querystring, content_type, body, messages", [
    # invalid content type
    (None, "text/plain", "body", [{"field": "contentType", "value": "text/plain", "expectation": EXPECTED_TYPES}]),
    # neither querystring nor body
    (None, None, None, [{"field": "body", "value": None,
                         "expectation": "empty body: not a valid tracker protocol event"},
                        {"field": "querystring", "value": None,
                         "expectation": "empty querystring: not a valid tracker protocol event"}]),
    # body but no content type
    (None, None, "body", [{"field": "contentType", "value": None, "expectation": EXPECTED_TYPES}]),
    # content type but no body, even with a querystring
    ("a=b", JSON_CHARSET, None,
     [{"field": "body", "value": None, "expectation": "empty body: not a valid track protocol event"}]),
    # body not JSON
    ("a=b", JSON, "body",
     [{"field": "body", "value": "body", "error": "invalid json: expected json value got 'body' (line 1, column 1)"}]),
])
def test_e7_tp2_querystring_body_and_content_type_mismatching(querystring, content_type, body, messages):
    assert failure(adapt(payload(TP2, querystring, body, content_type))) == (TPV, messages)


def test_e8_tp2_body_not_self_describing():
    assert failure(adapt(payload(TP2, "aid=test", '{"not":"self-desc"}', JSON))) == (
        TPV, [{"json": {"not": "self-desc"}, "error": "INVALID_DATA_PAYLOAD"}])


def test_e9_tp2_body_of_another_schema_is_validated_against_it_first():
    body = self_describing('{"longitude":20.1234}', "geolocation_context")
    kind, [message] = failure(adapt(payload(TP2, None, body, JSON)))
    assert kind == TPV
    assert message["schemaKey"] == "iglu:com.snowplowanalytics.snowplow/geolocation_context/jsonschema/1-0-0"
    assert reports(message) == [("$.latitude: is missing but it is required", "$", "required", ["latitude"])]


def test_e9_tp2_body_of_another_valid_schema_is_a_criterion_mismatch():
    body = self_describing('{"latitude":1,"longitude":20.1234}', "geolocation_context")
    assert failure(adapt(payload(TP2, None, body, JSON))) == (TPV, [{
        "schemaKey": "iglu:com.snowplowanalytics.snowplow/geolocation_context/jsonschema/1-0-0",
        "schemaCriterion": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-*"}])


@pytest.mark.parametrize("data, expected", [
    # JSON object instead of array
    ("{}", [("$: object found, array expected", "$", "type", ["object", "array"])]),
    # missing required properties
    ('[{"tv":"ios-0.1.0"}]', [("$[0].p: is missing but it is required", "$[0]", "required", ["p"]),
                              ("$[0].e: is missing but it is required", "$[0]", "required", ["e"])]),
    # 1 valid, 1 invalid: the whole payload fails
    ('[{"tv":"ios-0.1.0","p":"mob","e":"se"},{"new":"foo"}]',
     [("$[1].tv: is missing but it is required", "$[1]", "required", ["tv"]),
      ("$[1].p: is missing but it is required", "$[1]", "required", ["p"]),
      ("$[1].e: is missing but it is required", "$[1]", "required", ["e"]),
      ("$[1].new: is not defined in the schema and the schema does not allow additional properties", "$[1]",
       "additionalProperties", ["new"])]),
])
def test_e10_tp2_body_failing_payload_data_fails_the_whole_payload(data, expected):
    kind, [message] = failure(adapt(payload(TP2, None, self_describing(data), JSON)))
    assert kind == TPV
    assert message["schemaKey"] == "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-0"
    assert reports(message) == expected


def test_e10_one_invalid_event_is_one_tracker_protocol_violations_row_for_the_batch(enricher):
    body = self_describing('[{"tv":"ios-0.1.0","p":"mob","e":"se"},{"new":"foo"}]')
    out = enricher.enrich(raw(TP2, None, body, JSON))
    assert out.good == []
    [row] = [json.loads(b) for b in out.bad]
    assert row["schema"] == TPV_SCHEMA
    assert (row["data"]["failure"]["vendor"], row["data"]["failure"]["version"]) == (
        "com.snowplowanalytics.snowplow", "tp2")
    [message] = row["data"]["failure"]["messages"]
    assert message["schemaKey"].endswith("/payload_data/jsonschema/1-0-0")
    assert row["data"]["payload"]["body"] == body  # the request, whole


@pytest.mark.parametrize("version, stm_allowed", [("1-0-0", False), ("1-0-4", True)])
def test_each_payload_data_version_allows_its_own_parameters(version, stm_allowed):
    # payload_data 1-0-0 has no stm (added in 1-0-2) and allows no other property: a tracker declaring 1-0-0
    # and sending stm loses the batch, as with Snowplow's validation against the declared version
    body = json.dumps({"schema": f"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/{version}",
                       "data": [{"tv": "t", "p": "web", "e": "pv", "stm": "1"}]})
    result = adapt(payload(TP2, None, body, JSON))
    assert (result.failure is None) == stm_allowed


# ---------------------------------------------------------------- the redirect


def test_e11_redirect_without_event_type_is_a_uri_redirect_event():
    [event] = adapt(payload(REDIRECT, GITHUB_Q + "&cx=dGVzdHRlc3R0ZXN0")).events
    assert event == {
        "e": "ue", "tv": "r-tp2", "p": "web", "cx": "dGVzdHRlc3R0ZXN0",
        "ue_pr": '{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":'
                 + REDIRECT_JSON + "}"}


NEW_CO = '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[' + REDIRECT_JSON + "]}"


@pytest.mark.parametrize("querystring", [
    GITHUB_Q + "&e=se&aid=ads",          # e12: no contexts
    GITHUB_Q + "&e=se&aid=ads&co=",      # e13: an empty co is no contexts
])
def test_e12_e13_redirect_with_event_type_starts_the_contexts(querystring):
    assert adapt(payload(REDIRECT, querystring)).events == [{"e": "se", "aid": "ads", "tv": "r-tp2", "co": NEW_CO,
                                                             "p": "web"}]


def test_e14_redirect_context_goes_first_in_an_unencoded_co():
    from urllib.parse import quote

    [event] = adapt(payload(REDIRECT, f"{GITHUB_Q}&e=se&co={quote(MOBILE_AND_GEO, safe='')}")).events
    assert event == {"e": "se", "tv": "r-tp2", "p": "web",
                     "co": MOBILE_AND_GEO.replace('{"data":[', '{"data":[' + REDIRECT_JSON + ",", 1)}


def test_e15_redirect_context_goes_first_in_a_base64_cx():
    [event] = adapt(payload(REDIRECT, f"{GITHUB_Q}&e=se&cx={encode_base64url(MOBILE_AND_GEO)}&p=web")).events
    assert event == {"e": "se", "tv": "r-tp2", "p": "web", "cx": encode_base64url(
        MOBILE_AND_GEO.replace('{"data":[', '{"data":[' + REDIRECT_JSON + ",", 1))}


@pytest.mark.parametrize("querystring, message", [
    # e16: no querystring
    (None, {"field": "querystring", "value": None, "expectation": "empty querystring: not a valid URI redirect"}),
    # e17: no u
    ("aid=test", {"field": "querystring", "value": "aid=test",
                  "expectation": "missing `u` parameter: not a valid URI redirect"}),
    # e18: a co that is not JSON
    (GITHUB_Q + "&e=se&co=%7B%5B-", {"field": "co|cx", "value": "{[-",
                                     "error": "invalid json: expected \" got '[-' (line 1, column 2)"}),
    # e19: a cx that is not base64 decodes (leniently) to nothing
    (GITHUB_Q + "&e=se&cx=%C2%A2%C2%A2%C2%A2",
     {"field": "co|cx", "value": "", "error": "invalid json: exhausted input"}),
    # e20: &u without a value
    ("u&cx=dGVzdHRlc3R0ZXN0", {"field": "querystring", "value": "u=null&cx=dGVzdHRlc3R0ZXN0",
                               "expectation": "missing `u` parameter: not a valid URI redirect"}),
])
def test_e16_e20_redirect_failures(querystring, message):
    assert failure(adapt(payload(REDIRECT, querystring))) == (TPV, [message])


def test_redirect_tracker_version_is_always_r_tp2():
    [event] = adapt(payload(REDIRECT, GITHUB_Q + "&tv=js-3&p=mob")).events
    assert (event["tv"], event["p"]) == ("r-tp2", "mob")


# ---------------------------------------------------------------- collector and enrichment together


@pytest.fixture
async def redirect_collector(aiohttp_client):
    env = {"SNOWMELT_COLLECTOR__REDIRECT__ENABLED": "true",
           "SNOWMELT_COLLECTOR__REDIRECT__ALLOWED_DOMAINS": "[github.com]"}
    sink = MemorySink(max_record_bytes=1_000_000)
    client = await aiohttp_client(make_app(load_config(None, env=env), sink))
    client.sink = sink
    return client


async def test_redirect_without_u_is_recorded_answered_400_and_enriched_to_a_bad_row(redirect_collector, enricher):
    resp = await redirect_collector.get("/r/tp2?aid=test", allow_redirects=False)
    assert resp.status == 400 and "Location" not in resp.headers
    [(_key, record)] = redirect_collector.sink.raw
    assert decode_collector_payload(record).path == "/r/tp2"
    out = enricher.enrich(record)
    assert out.good == []
    [row] = [json.loads(b) for b in out.bad]
    assert row["schema"] == TPV_SCHEMA
    assert (row["data"]["failure"]["vendor"], row["data"]["failure"]["version"]) == ("r", "tp2")
    assert row["data"]["failure"]["messages"] == [{"field": "querystring", "value": "aid=test",
                                                   "expectation": "missing `u` parameter: not a valid URI redirect"}]


async def test_redirect_with_u_is_recorded_redirected_and_enriched(redirect_collector, enricher):
    resp = await redirect_collector.get("/r/tp2?" + GITHUB_Q + "&aid=mail", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == GITHUB
    [(_key, record)] = redirect_collector.sink.raw
    [line] = enricher.enrich(record).good
    fields = line.split("\t")
    assert "uri_redirect" in line and fields[0] == "mail"  # app_id
