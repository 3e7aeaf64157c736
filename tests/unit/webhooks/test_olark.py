"""Olark adapter (``/com.olark/v1``): transcripts, offline messages and malformed bodies.

The helpers at the top are shared by this part's vendor tests (Olark,
StatusGator, Unbounce, Urban Airship, Vero, HubSpot, Marketo, CallRail).
"""
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from ext import CollectorPayload
from processor.adapters import ADAPTER_FAILURES, UNSTRUCT_SCHEMA, adapt
from processor.iglu import EmbeddedRepository, Resolver

DATA = Path(__file__).parent / "data"
SHIPPED = Resolver([EmbeddedRepository("shipped", Path(__file__).resolve().parents[3] / "schemas")])
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def payload(path, body=None, content_type=None, querystring=None):
    return CollectorPayload(
        schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
        ip_address="203.0.113.9", timestamp=1_764_288_000_123, encoding="UTF-8", collector="snowmelt-test",
        path=path, querystring=querystring, body=body, content_type=content_type)


def adapt_events(path, body=None, content_type=None, querystring=None):
    """The adapted events as ``(params, schema, data)``; each data checked against the shipped schema."""
    result = adapt(payload(path, body, content_type, querystring))
    assert result.failure is None, result.failure
    out = []
    for params in result.events:
        assert params["e"] == "ue"
        envelope = json.loads(params["ue_pr"])
        assert envelope["schema"] == UNSTRUCT_SCHEMA
        inner = envelope["data"]
        checked = SHIPPED.validate(inner)
        assert checked.ok, checked
        out.append((params, inner["schema"], inner["data"]))
    return out


def adapt_failure(path, body=None, content_type=None, querystring=None) -> str:
    """The adapter_failures messages (as JSON text) of a request that must fail."""
    result = adapt(payload(path, body, content_type, querystring))
    assert result.events == []
    assert result.failure is not None and result.failure.kind == ADAPTER_FAILURES
    return json.dumps(result.failure.messages)


def olark_body(name: str) -> str:
    return urlencode({"data": (DATA / "olark" / name).read_text()})


PATH = "/com.olark/v1"


def test_transcript_is_one_event_with_iso_item_times():
    [(params, schema, data)] = adapt_events(PATH, olark_body("transcript.json"), FORM, "aid=support&p=web&nuid=n1")
    assert schema == "iglu:com.olark/transcript/jsonschema/1-0-0"
    assert (params["tv"], params["p"], params["aid"], params["nuid"]) == ("com.olark-v1", "web", "support", "n1")
    assert [i["timestamp"] for i in data["items"]] == ["2016-09-13T13:53:39.263Z", "2016-09-13T13:53:41.411Z"]
    assert data["operators"]["647563"]["username"] == "yali"
    assert data["visitor"]["emailAddress"] == "dave@example.com"
    assert data["tags"] == ["test_example"]


def test_offline_message_has_no_operators_and_defaults_to_srv():
    [(params, schema, data)] = adapt_events(PATH, olark_body("offline_message.json"), FORM)
    assert schema == "iglu:com.olark/offline_message/jsonschema/1-0-0"
    assert params["p"] == "srv" and "aid" not in params
    assert data["items"] == [{"kind": "OfflineMessage", "timestamp": "2016-09-13T13:53:39.263Z",
                              "body": "Call me back please"}]


@pytest.mark.parametrize("body, content_type, fragment", [
    (None, FORM, "empty body: no events to process"),
    ("data=%7B%7D", JSON, "expected application/x-www-form-urlencoded"),
    # as Snowplow's enrich 3.9.0: the content type must be exactly the form type
    ("data=%7B%7D", FORM + "; charset=UTF-8", "expected application/x-www-form-urlencoded"),
    ("nodata=1", FORM, "missing 'data' field"),
    ("data=%7Bnot+json", FORM, '"field": "data"'),
    (urlencode({"data": json.dumps({"items": [{"timestamp": "yesterday"}]})}), FORM, "cannot be converted"),
])
def test_malformed_olark_requests_are_adapter_failures(body, content_type, fragment):
    assert fragment in adapt_failure(PATH, body, content_type)


def test_olark_keys_are_camel_cased():
    body = urlencode({"data": json.dumps({"kind": "Conversation", "visitor": {"chat_feedback": {"overall_chat": 5}},
                                          "items": [{"visitor_nickname": "Bob", "timestamp": "1307116661.25"}]})})
    result = adapt(payload(PATH, body, FORM))
    data = json.loads(result.events[0]["ue_pr"])["data"]["data"]
    assert data == {"kind": "Conversation", "visitor": {"chatFeedback": {"overallChat": 5}},
                    "items": [{"visitorNickname": "Bob", "timestamp": "2011-06-03T15:57:41.250Z"}]}
