"""Vero adapter (``/com.getvero/v1``): every webhook type, ISO times, failures."""
import json

import pytest

from tests.unit.webhooks.test_olark import DATA, JSON, adapt_events, adapt_failure

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
    assert data["type"] == name and data["user"] == original["user"]
    if f"{name}_at" in original:
        assert data[f"{name}_at"] == "2015-06-22T23:37:18.000Z"
    if "event" in original:
        assert data["event"]["triggered_at"] == "2015-02-19T18:59:00.000Z"
        assert data["event"]["data"] == original["event"]["data"]
    rest = {k: v for k, v in data.items() if k not in (f"{name}_at", "event")}
    assert rest == {k: v for k, v in original.items() if k not in (f"{name}_at", "event")}


@pytest.mark.parametrize("body, fragment", [
    (None, "empty body: no Vero events"),
    ("nope", "invalid json"),
    ('"sent"', "expected a JSON object"),
    (json.dumps({"user": {"id": "1"}}), '"field": "type"'),
    (json.dumps({"type": "spammed"}), '"actual": "spammed"'),
    (json.dumps({"type": "sent", "sent_at": "monday"}), '"field": "sent_at"'),
    (json.dumps({"type": "opened", "event": {"triggered_at": "x"}}), '"field": "event.triggered_at"'),
])
def test_malformed_vero_requests_are_adapter_failures(body, fragment):
    assert fragment in adapt_failure(PATH, body, JSON)
