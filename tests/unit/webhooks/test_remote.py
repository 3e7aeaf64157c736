"""Remote adapters (processor/webhooks/remote.py) against a local HTTP stub."""
import json

import pytest

import ext
from ext import CollectorPayload
from processor.adapters import ADAPTER_FAILURES, REGISTRY, adapt
from processor.webhooks.remote import register_remote_adapter, register_remote_adapters
from tests.unit.enrichments.http_stub import HttpStub

VENDOR, VERSION = "com.acme.remote", "v1"
PATH = f"/{VENDOR}/{VERSION}"
EVENT = {"e": "ue", "tv": "com.acme-v1", "p": "srv",
         "ue_pr": '{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",'
                  '"data":{"schema":"iglu:com.acme/thing/jsonschema/1-0-0","data":{"id":1}}}'}


def payload(body='{"type":"thing","id":1}', querystring="aid=shop&a=1&a=2", content_type="application/json"):
    return CollectorPayload(
        schema=ext.SCHEMA, ip_address="203.0.113.9", timestamp=1_764_288_000_123, encoding="UTF-8",
        collector="snowmelt-test", path=PATH, querystring=querystring, body=body, content_type=content_type,
        headers=["Host: c.acme.com", "X-Signature: abc"], network_user_id="11111111-1111-4111-8111-111111111111")


@pytest.fixture
def stub():
    saved = dict(REGISTRY)
    with HttpStub() as s:
        yield s
    REGISTRY.clear()
    REGISTRY.update(saved)


def test_request_shape_and_events(stub):
    stub.route("POST", "/adapt", {"events": [EVENT, {"e": "pv", "url": "https://a.b/", "ttm": "17"}]})
    register_remote_adapter(VENDOR, VERSION, stub.url + "/adapt", 2)
    result = adapt(payload())
    assert result.failure is None
    assert result.events == [EVENT, {"e": "pv", "url": "https://a.b/", "ttm": "17"}]
    [req] = stub.requests
    assert req.headers["content-type"] == "application/json"
    assert req.json == {"contentType": "application/json", "queryString": {"aid": "shop", "a": "2"},
                        "headers": ["Host: c.acme.com", "X-Signature: abc"], "body": '{"type":"thing","id":1}'}


DECODE = "[REMOTE_ADAPTER] could not be decoded as a list of json objects: "


@pytest.mark.parametrize("response, expectation", [
    # 3.9.0's messages: only "events" is read, a list of objects of strings
    ({"error": "unknown event type: bogus"}, DECODE + "Attempt to decode value on failed cursor: DownField(events)"),
    ([1, 2], DECODE + "Attempt to decode value on failed cursor: DownField(events)"),
    ({"events": "x"}, DECODE + "C[A]: DownField(events)"),
    ({"events": [{"e": "pv"}, "x"]}, DECODE + "[K, V]Map[K, V]: MoveRight,DownArray,DownField(events)"),
    ({"events": [{"e": "pv", "ttm": 17}]}, DECODE + "String: DownField(ttm),DownArray,DownField(events)"),
    ({"events": []}, "[REMOTE_ADAPTER] empty list of events"),
])
def test_bad_answers_are_adapter_failures(stub, response, expectation):
    stub.route("POST", "/adapt", response)
    register_remote_adapter(VENDOR, VERSION, stub.url + "/adapt", 2)
    result = adapt(payload())
    assert result.events == []
    assert result.failure.kind == ADAPTER_FAILURES and (result.failure.vendor, result.failure.version) == (VENDOR, VERSION)
    [message] = result.failure.messages
    assert (message["field"], message["value"], message["expectation"]) == ("body", json.dumps(response), expectation)


@pytest.mark.parametrize("response, status", [((500, {"oops": "boom"}), 500), ((404, b"gone"), 404)])
def test_a_status_other_than_2xx_is_no_response(stub, response, status):
    stub.route("POST", "/adapt", response)
    url = stub.url + "/adapt"
    register_remote_adapter(VENDOR, VERSION, url, 2)
    [message] = adapt(payload()).failure.messages
    assert message == {"field": "body", "value": None, "expectation":
                       f"[REMOTE_ADAPTER] could not get response from remote adapter {url}: Request failed with status {status}"}


def test_an_answer_that_is_not_json(stub):
    stub.route("POST", "/adapt", b"<html>not json")
    register_remote_adapter(VENDOR, VERSION, stub.url + "/adapt", 2)
    [message] = adapt(payload()).failure.messages
    assert (message["field"], message["value"]) == ("body", "<html>not json")
    assert message["error"].startswith("[REMOTE_ADAPTER] invalid json: ")


def test_timeout(stub):
    stub.route("POST", "/slow", {"events": [EVENT]}, delay=5)
    url = stub.url + "/slow"
    register_remote_adapter(VENDOR, VERSION, url, 0.2)
    [message] = adapt(payload()).failure.messages
    assert message["expectation"].startswith(f"[REMOTE_ADAPTER] could not get response from remote adapter {url}: ")
    assert "timed out" in message["expectation"]


def test_connection_refused():
    saved = dict(REGISTRY)
    try:
        with HttpStub() as s:
            url = s.url + "/gone"
        register_remote_adapter(VENDOR, VERSION, url, 1)  # the stub is closed: nothing listens
        [message] = adapt(payload()).failure.messages
        assert message["expectation"].startswith(f"[REMOTE_ADAPTER] could not get response from remote adapter {url}: ")
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)


def test_empty_body_is_not_sent(stub):
    stub.route("POST", "/adapt", {"events": [EVENT]})
    register_remote_adapter(VENDOR, VERSION, stub.url + "/adapt", 2)
    [message] = adapt(payload(body=None, content_type=None)).failure.messages
    assert message == {"field": "body", "value": None,
                       "expectation": f"empty body: not a valid remote adapter {stub.url}/adapt payload"}
    assert stub.requests == []


def test_register_from_config_entries(stub):
    keys = register_remote_adapters([
        {"vendor": "com.a", "version": "v1", "url": stub.url + "/a", "timeout_seconds": 3},
        {"vendor": "com.b", "version": "v2", "url": stub.url + "/b", "connectionTimeout": 1000, "readTimeout": 4000},
        {"vendor": "com.c", "version": "v1", "url": stub.url + "/c"},
    ])
    assert keys == [("com.a", "v1"), ("com.b", "v2"), ("com.c", "v1")]
    assert REGISTRY[("com.a", "v1")].timeout_seconds == 3
    assert REGISTRY[("com.b", "v2")].timeout_seconds == 4
    assert REGISTRY[("com.c", "v1")].timeout_seconds == 5
    assert REGISTRY[("com.a", "v1")].remote_url == stub.url + "/a"
    with pytest.raises(ValueError, match="lacks url"):
        register_remote_adapters([{"vendor": "com.d", "version": "v1"}])
    with pytest.raises(ValueError, match="http"):
        register_remote_adapter("com.d", "v1", "ftp://x", 1)
    with pytest.raises(ValueError, match="positive"):
        register_remote_adapter("com.d", "v1", stub.url, 0)
