"""Adapters: raw payloads to tracker-protocol events or the failure that replaces them."""
import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ext import CollectorPayload
from processor.adapters import ADAPTER_FAILURES, CPFV, TPV, adapt, vendor_version

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


def payload(path="/i", querystring=None, body=None, content_type=None):
    return CollectorPayload(
        schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
        ip_address="203.0.113.9", timestamp=1_764_288_000_123, encoding="UTF-8", collector="snowmelt-0.1.0-kafka",
        path=path, querystring=querystring, body=body, content_type=content_type,
        network_user_id="11111111-1111-4111-8111-111111111111")


@pytest.mark.parametrize("path, expected", [
    ("/i", ("com.snowplowanalytics.snowplow", "tp1")),
    ("/ice.png", ("com.snowplowanalytics.snowplow", "tp1")),
    (TP2, ("com.snowplowanalytics.snowplow", "tp2")),
    ("/r/tp2", ("r", "tp2")),
    ("/com.acme/v1/", ("com.acme", "v1")),
    ("/a/b/c", None), ("/a", None), ("/", None), ("", None), (None, None), ("//b", None),
    # 3.9.0's parseApi, found by the oracle's webhook-envelope corpus: one optional slash on either side and
    # no more; the vendor/version shape before the legacy pixel's paths, which are prefixes
    ("//com.mailchimp/v1", None), ("/com.mailchimp/v1//", None), ("com.mailchimp/v1", ("com.mailchimp", "v1")),
    ("/ice.png/x", ("ice.png", "x")), ("/ice.pngx", ("com.snowplowanalytics.snowplow", "tp1")),
    ("/i?x=1", ("com.snowplowanalytics.snowplow", "tp1")), ("/i/", None), ("/a/b\n", ("a", "b\n")),
])
def test_vendor_version(path, expected):
    assert vendor_version(path) == expected


def test_tp1_get_is_one_event_with_decoded_values():
    result = adapt(payload("/i", "e=pv&url=https%3A%2F%2Facme.com%2F%C3%A9t%C3%A9&page=Hello+world&aid=web"))
    assert result.failure is None
    assert (result.vendor, result.version) == ("com.snowplowanalytics.snowplow", "tp1")
    assert result.events == [{"e": "pv", "url": "https://acme.com/été", "page": "Hello world", "aid": "web"}]


def test_tp2_get_and_repeated_parameters_keep_the_last():
    result = adapt(payload(TP2, "e=se&se_ca=a&se_ca=b"))
    assert result.events == [{"e": "se", "se_ca": "b"}]


def test_tp2_post_batch_with_query_string_merged_in_and_winning():
    body = json.dumps({"schema": PAYLOAD_DATA, "data": [
        {"e": "pv", "tv": "js-3", "p": "web", "url": "https://a.com/", "aid": "from-body"},
        {"e": "pp", "tv": "js-3", "p": "web", "aid": "from-body"}]})
    result = adapt(payload(TP2, "aid=from-query&nuid=abc", body, "application/json; charset=utf-8"))
    assert result.failure is None
    assert result.events == [
        {"e": "pv", "tv": "js-3", "p": "web", "url": "https://a.com/", "aid": "from-query", "nuid": "abc"},
        {"e": "pp", "tv": "js-3", "p": "web", "aid": "from-query", "nuid": "abc"},
    ]


@pytest.mark.parametrize("kwargs, kind, fragment", [
    (dict(path="/i"), ADAPTER_FAILURES, "empty querystring"),
    (dict(path=TP2), TPV, "empty body: not a valid tracker protocol event"),
    (dict(path=TP2, body='{"schema":"x"}', content_type="text/plain"), TPV, "expected one of application/json"),
    (dict(path=TP2, body="not json", content_type="application/json"), TPV, "invalid json"),
    (dict(path=TP2, body='{"data":[]}', content_type="application/json"), TPV, "INVALID_DATA_PAYLOAD"),
    (dict(path=TP2, body='{"schema":"iglu:com.snowplowanalytics.snowplow/geolocation_context/jsonschema/1-0-0",'
                         '"data":{"latitude":1,"longitude":2}}',
          content_type="application/json"), TPV, "payload_data/jsonschema/1-0-*"),
    (dict(path=TP2, body=json.dumps({"schema": PAYLOAD_DATA, "data": []}), content_type="application/json"),
     TPV, '"keyword": "minItems"'),
    (dict(path=TP2, body=json.dumps({"schema": PAYLOAD_DATA, "data": [{"e": "pv", "tv": "t", "p": "web", "vid": 3}]}),
          content_type="application/json"), TPV, '"path": "$[0].vid"'),
    (dict(path="/com.acme/nope", querystring="a=1"), ADAPTER_FAILURES, "not supported"),
    # CollectorPayload.parseApi's message (3.9.0); it read "a (/)vendor/version(/) path ..." before
    (dict(path="/too/many/segments", querystring="a=1"), CPFV,
     "path does not match (/)vendor/version(/) nor is a legacy /i(ce.png) request"),
    (dict(path=None, querystring="a=1"), CPFV, "request does not contain a path"),
    (dict(path="/i", querystring="url=%zz"), CPFV,
     "could not extract name-value pairs from querystring with encoding UTF-8: Malformed escape pair at index 22"),
    (dict(path="/r/tp2", querystring="e=pv"), TPV, "missing `u` parameter"),
])
def test_failures_are_data(kwargs, kind, fragment):
    result = adapt(payload(**kwargs))
    assert result.events == []
    assert result.failure is not None and result.failure.kind == kind
    assert fragment in json.dumps(result.failure.messages), result.failure.messages


def test_redirect_without_event_becomes_uri_redirect():
    result = adapt(payload("/r/tp2", "u=https%3A%2F%2Facme.com%2Fx%3Fa%3D1&aid=mail"))
    [event] = result.events
    assert event["e"] == "ue" and event["aid"] == "mail" and event["p"] == "web" and event["tv"] == "r-tp2"
    assert "u" not in event
    ue = json.loads(event["ue_pr"])
    assert ue["schema"] == "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
    assert ue["data"] == {"schema": "iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0",
                          "data": {"uri": "https://acme.com/x?a=1"}}


def test_redirect_with_event_adds_a_context():
    redirect = {"schema": "iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0",
                "data": {"uri": "https://acme.com/"}}
    [event] = adapt(payload("/r/tp2", "u=https%3A%2F%2Facme.com%2F&e=pv")).events
    assert event["e"] == "pv"
    assert json.loads(event["co"])["data"] == [redirect]
    existing = {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
                "data": [{"schema": "iglu:com.acme/a/jsonschema/1-0-0", "data": {"k": 1}}]}
    cx = base64.urlsafe_b64encode(json.dumps(existing).encode()).decode().rstrip("=")
    [event] = adapt(payload("/r/tp2", f"u=https%3A%2F%2Facme.com%2F&e=se&cx={cx}")).events
    decoded = json.loads(base64.urlsafe_b64decode(event["cx"] + "=" * (-len(event["cx"]) % 4)))
    assert decoded["data"] == [redirect] + existing["data"]  # first, as Snowplow's RedirectAdapter puts it


@settings(max_examples=300, deadline=None)
@given(path=st.one_of(st.none(), st.text(max_size=30), st.sampled_from(["/i", TP2, "/r/tp2"])),
       querystring=st.one_of(st.none(), st.text(max_size=80)),
       body=st.one_of(st.none(), st.text(max_size=200), st.builds(json.dumps, st.recursive(
           st.none() | st.booleans() | st.integers() | st.text(max_size=10),
           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=10))),
       content_type=st.sampled_from([None, "application/json", "text/plain", "application/json; charset=utf-8"]))
def test_random_payloads_never_raise(path, querystring, body, content_type):
    result = adapt(payload(path, querystring, body, content_type))
    assert (result.failure is None) == bool(result.events)
    for event in result.events:
        # a parameter without '=' has no value (None), as in 3.9.0's Map[String, Option[String]]
        assert all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in event.items())
