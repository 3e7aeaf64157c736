"""Vero adapter (``/com.getvero/v1``): every webhook type, ISO times, ``type`` dropped, ``_tags`` renamed, failures."""
import json

import pytest

from processor.adapters import adapt
from tests.unit.webhooks.test_olark import DATA, JSON, adapt_events, adapt_failure, payload

PATH = "/com.getvero/v1"
SCHEMA_NAMES = {"sent": "sent", "delivered": "delivered", "opened": "opened", "clicked": "clicked",
                "bounced": "bounced", "unsubscribed": "unsubscribed", "user_created": "created",
                "user_updated": "updated"}


def fixture(name):
    return json.loads((DATA / "vero" / f"{name}.json").read_text())


@pytest.mark.parametrize("name", sorted(SCHEMA_NAMES))
def test_each_vero_type_maps_to_its_schema_with_iso_times(name):
    original = fixture(name)
    [(params, schema, data)] = adapt_events(PATH, json.dumps(original), JSON, "aid=mail&url=https%3A%2F%2Fa.b%2F")
    assert schema == f"iglu:com.getvero/{SCHEMA_NAMES[name]}/jsonschema/1-0-0"
    assert (params["tv"], params["p"], params["aid"], params["url"]) == ("com.getvero-v1", "srv", "mail", "https://a.b/")
    # as Snowplow's enrich 3.9.0: the type is dropped from the data, _tags becomes tags
    assert "type" not in data and data["user"] == original["user"]
    if f"{name}_at" in original:
        assert data[f"{name}_at"] == "2015-06-22T23:37:18.000Z"
    if "event" in original:
        assert data["event"]["triggered_at"] == "2015-02-19T18:59:00.000Z"
        assert data["event"]["data"] == original["event"]["data"]
    rest = {k: v for k, v in data.items() if k not in (f"{name}_at", "event")}
    expected = {k: v for k, v in original.items() if k not in (f"{name}_at", "event", "type")}
    if "changes" in expected:
        expected["changes"] = {"tags" if k == "_tags" else k: v for k, v in expected["changes"].items()}
    assert rest == expected


@pytest.mark.parametrize("body, fragment", [
    (None, "empty body: no events to process"),
    ("nope", "invalid json"),
    ('"sent"', "could not extract 'type'"),
    (json.dumps({"user": {"id": "1"}}), '"field": "type"'),
    (json.dumps({"type": "spammed"}), '"actual": "spammed"'),
])
def test_malformed_vero_requests_are_adapter_failures(body, fragment):
    assert fragment in adapt_failure(PATH, body, JSON)


def test_a_vero_time_that_is_not_unix_seconds_is_left_as_it_is():
    # Snowplow converts only what reads as whole seconds; the schema then judges the rest
    result = adapt(payload(PATH, json.dumps({"type": "opened", "opened_at": "monday", "event": {"triggered_at": 1.5}}),
                           JSON))
    data = json.loads(result.events[0]["ue_pr"])["data"]["data"]
    assert data == {"opened_at": "monday", "event": {"triggered_at": 1.5}}
