"""Urban Airship Connect adapter (``/com.urbanairship.connect/v1``): every event type, eid/ttm, failures."""
import json
from datetime import datetime

import pytest

from tests.unit.webhooks.test_olark import DATA, JSON, adapt_events, adapt_failure

PATH = "/com.urbanairship.connect/v1"
EVENTS = json.loads((DATA / "urbanairship" / "events.json").read_text())


@pytest.mark.parametrize("event", EVENTS, ids=[e["type"] for e in EVENTS])
def test_each_connect_event_keeps_its_id_and_time(event):
    [(params, schema, data)] = adapt_events(PATH, json.dumps(event), JSON, "aid=mobile&eid=ignored")
    assert schema == f"iglu:com.urbanairship.connect/{event['type']}/jsonschema/1-0-0"
    assert data == event
    assert params["eid"] == event["id"]
    occurred = datetime.fromisoformat(event["occurred"].replace("Z", "+00:00"))
    assert params["ttm"] == str(round(occurred.timestamp() * 1000))
    assert (params["tv"], params["p"], params["aid"]) == ("com.urbanairship.connect-v1", "srv", "mobile")


def test_ttm_is_epoch_milliseconds():
    [(params, _, _)] = adapt_events(PATH, json.dumps({**EVENTS[0], "occurred": "2015-11-26T13:19:08.012Z"}), JSON)
    assert params["ttm"] == "1448543948012"


def _event(**changes) -> str:
    return json.dumps({**EVENTS[0], **changes})


@pytest.mark.parametrize("body, fragment", [
    (None, "empty body: no Urban Airship events"),
    ("{not json", "invalid json"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({k: v for k, v in EVENTS[0].items() if k != "type"}), '"field": "type"'),
    (_event(type="PUSH_SENT"), '"actual": "PUSH_SENT"'),
    (_event(occurred="yesterday"), '"field": "occurred"'),
])
def test_malformed_connect_events_are_adapter_failures(body, fragment):
    assert fragment in adapt_failure(PATH, body, JSON)
