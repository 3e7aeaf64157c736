"""Urban Airship Connect adapter (``/com.urbanairship.connect/v1``): every event type, eid/ttm, failures.

As Snowplow's enrich 3.9.0, the requests carry no content type (any content type is refused)."""
import json
from datetime import datetime

import pytest

from tests.unit.webhooks.test_olark import DATA, JSON, adapt_events, adapt_failure

PATH = "/com.urbanairship.connect/v1"
ALL_EVENTS = json.loads((DATA / "urbanairship" / "events.json").read_text())
# RICH_READ is not one of the sixteen types Snowplow's enrich 3.9.0 maps
EVENTS = [e for e in ALL_EVENTS if e["type"] != "RICH_READ"]


@pytest.mark.parametrize("event", EVENTS, ids=[e["type"] for e in EVENTS])
def test_each_connect_event_keeps_its_id_and_time(event):
    [(params, schema, data)] = adapt_events(PATH, json.dumps(event), None, "aid=mobile&eid=ignored")
    assert schema == f"iglu:com.urbanairship.connect/{event['type']}/jsonschema/1-0-0"
    assert data == event
    assert params["eid"] == event["id"]
    occurred = datetime.fromisoformat(event["occurred"].replace("Z", "+00:00"))
    assert params["ttm"] == str(round(occurred.timestamp() * 1000))
    assert (params["tv"], params["p"], params["aid"]) == ("com.urbanairship.connect-v1", "srv", "mobile")


def test_ttm_is_epoch_milliseconds():
    [(params, _, _)] = adapt_events(PATH, json.dumps({**EVENTS[0], "occurred": "2015-11-26T13:19:08.012Z"}), None)
    assert params["ttm"] == "1448543948012"


def _event(**changes) -> str:
    return json.dumps({**EVENTS[0], **changes})


@pytest.mark.parametrize("body, fragment", [
    (None, "empty body: no events to process"),
    ("{not json", "invalid json"),
    ("[1, 2]", "could not extract 'occurred'"),
    (json.dumps({k: v for k, v in EVENTS[0].items() if k != "type"}), "type parameter not provided"),
    (_event(type="PUSH_SENT"), '"actual": "PUSH_SENT"'),
    (_event(type="RICH_READ"), '"actual": "RICH_READ"'),
    (_event(occurred="yesterday"), '"field": "occurred"'),
])
def test_malformed_connect_events_are_adapter_failures(body, fragment):
    assert fragment in adapt_failure(PATH, body, None)


def test_any_content_type_is_refused():
    assert "expected no content type" in adapt_failure(PATH, _event(), JSON)
