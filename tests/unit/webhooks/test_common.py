"""The helpers every webhook adapter shares (processor/webhooks/_common.py)."""
import json

import pytest

import ext
from processor.adapters import ADAPTER_FAILURES, UNSTRUCT_SCHEMA
from processor.webhooks import _common as c


def test_ue_event_wraps_data_and_takes_platform_and_passthrough_from_the_query():
    qs = [("aid", "shop"), ("p", "mob"), ("nuid", "n1"), ("cv", "c"), ("eid", "e"), ("ttm", "1"),
          ("url", "https://a.b/"), ("other", "dropped")]
    params = c.ue_event("iglu:com.acme/x/jsonschema/1-0-0", {"a": 1, "é": "ü"}, "com.acme-v1", qs)
    assert params.pop("ue_pr") == json.dumps({"schema": UNSTRUCT_SCHEMA, "data": {
        "schema": "iglu:com.acme/x/jsonschema/1-0-0", "data": {"a": 1, "é": "ü"}}},
        separators=(",", ":"), ensure_ascii=False)
    assert params == {"e": "ue", "p": "mob", "tv": "com.acme-v1", "aid": "shop", "nuid": "n1", "cv": "c",
                      "eid": "e", "ttm": "1", "url": "https://a.b/"}


def test_ue_event_defaults_and_extra():
    params = c.ue_event("iglu:a/b/jsonschema/1-0-0", {}, "a-v1", {}, platform="app", extra={"dtm": "5"})
    assert {k: v for k, v in params.items() if k != "ue_pr"} == {"e": "ue", "p": "app", "tv": "a-v1", "dtm": "5"}
    assert c.ue_event("iglu:a/b/jsonschema/1-0-0", {}, "a-v1")["p"] == "srv"


def test_brackets_to_nested():
    pairs = c.parse_form("type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5Bid%5D=8a25&"
                         "data[merges][EMAIL]=api%40mailchimp.com&data[merges][INTERESTS]=Group1%2CGroup2&flat]=x")
    assert c.brackets_to_nested(pairs) == {
        "type": "subscribe", "fired_at": "2009-03-26 21:35:57", "flat]": "x",
        "data": {"id": "8a25", "merges": {"EMAIL": "api@mailchimp.com", "INTERESTS": "Group1,Group2"}}}
    # a later object replaces an earlier scalar of the same name
    assert c.brackets_to_nested([("a", "1"), ("a[b]", "2")]) == {"a": {"b": "2"}}


def test_form_decoding_and_its_failure():
    assert c.form_dict("a=1&b=x+y&a=2") == {"a": "2", "b": "x y"}
    pairs, err = c.decode_form("a=%zz")
    assert pairs is None and err["field"] == "body" and "malformed percent escape" in err["expectation"]
    with pytest.raises(ext.QueryStringError):
        c.parse_form("a=%E9")


def test_java_form_bodies_read_as_3_9_0_reads_them():
    # URLEncodedUtils.parse(URI.create("http://localhost/?" + body), UTF-8), as ext.parse_uri_query: '&' and ';',
    # a raw character is the low 8 bits of its UTF-16 code units, the index of URI's message counts code units
    assert c.java_form_params("a=caf\u00e9;b&=x&c=%FC") == ({"a": "caf\ufffd", "b": None, "c": "\ufffd"}, None)
    assert c.java_form_fields("a=1;b&a=\u0142") == ({"a": "B"}, None)
    assert c.java_form_params("\U0001F600=a b") == (
        None, "Illegal character in query at index 22: http://localhost/?\U0001F600=a b")
    assert c.could_not_parse_body("body", "a=\tb", "Illegal character in query at index 20: http://localhost/?a=\tb")[
        "expectation"] == "could not parse body: Illegal character in query at index 20: http://localhost/?a=    b"


def test_json_decoding_and_its_failure():
    assert c.decode_json('{"a":[1]}') == ({"a": [1]}, None)
    doc, err = c.decode_json("{nope", "body")
    assert doc is None and err["field"] == "body" and err["value"] == "{nope" and err["error"].startswith("invalid json")


@pytest.mark.parametrize("header, accepted, exact, ok", [
    ("application/json", ["application/json"], False, True),
    ("Application/JSON; charset=UTF-8", ["application/json"], False, True),
    ("application/json; charset=utf-8", ["application/json"], True, False),
    ("application/json; charset=utf-8", ["application/json", "application/json; charset=utf-8"], True, True),
    ("text/plain", ["application/json"], False, False),
    (None, ["application/x-www-form-urlencoded"], False, False),
])
def test_check_content_type(header, accepted, exact, ok):
    err = c.check_content_type(header, accepted, exact=exact)
    if ok:
        assert err is None
    else:
        assert err == {"field": "contentType", "value": header, "expectation": "expected one of " + ", ".join(accepted)}


def test_require_body_and_failures():
    assert c.require_body("x", "Mailchimp") is None
    assert c.require_body("", "Mailchimp") == {"field": "body", "value": None,
                                               "expectation": "empty body: no Mailchimp events to process"}
    result = c.failed(c.schema_mapping("bogus", {"a": "iglu:x/a/jsonschema/1-0-0"}, "no schema for event type"))
    assert result.events == [] and result.failure.kind == ADAPTER_FAILURES
    assert result.failure.messages == [{"actual": "bogus", "expectedMapping": {"a": "iglu:x/a/jsonschema/1-0-0"},
                                        "expectation": "no schema for event type"}]


@pytest.mark.parametrize("camel, snake", [
    ("eventType", "event_type"), ("HTTPStatus", "http_status"), ("userId2", "user_id2"), ("already_snake", "already_snake"),
])
def test_case_conversion(camel, snake):
    assert c.camel_to_snake(camel) == snake


def test_snake_to_camel_and_recursive_keys():
    assert c.snake_to_camel("event_type_name") == "eventTypeName"
    assert c.snake_to_camel("check-name") == "checkName"
    doc = {"eventType": [{"innerKey": 1}], "plain": {"deepName": None}}
    assert c.keys_to_snake(doc) == {"event_type": [{"inner_key": 1}], "plain": {"deep_name": None}}
    assert c.keys_to_camel(c.keys_to_snake(doc)) == doc


def test_timestamps():
    assert c.epoch_to_iso(1365109999) == "2013-04-04T21:13:19.000Z"
    assert c.epoch_to_iso("1365109999.5") == "2013-04-04T21:13:19.500Z"
    assert c.epoch_to_iso(1365109999123, "ms") == "2013-04-04T21:13:19.123Z"
    assert c.reformat_timestamp("2014-10-22 13:10:40") == "2014-10-22T13:10:40.000Z"
    assert c.reformat_timestamp("2014-10-22T15:10:40+0200", ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]) \
        == "2014-10-22T13:10:40.000Z"
    with pytest.raises(ValueError, match="not an epoch"):
        c.epoch_to_iso("soon")
    with pytest.raises(ValueError, match="does not match"):
        c.reformat_timestamp("22/10/2014")


def test_iglu_uri():
    assert c.iglu_uri("com.mailchimp", "subscribe") == "iglu:com.mailchimp/subscribe/jsonschema/1-0-0"
