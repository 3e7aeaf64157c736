"""HubSpot adapter (``/com.hubspot/v1``): every subscription type in one array, failures."""
import json

import pytest

from tests.unit.webhooks.test_olark import DATA, FORM, JSON, adapt_events, adapt_failure

PATH = "/com.hubspot/v1"
EVENTS = json.loads((DATA / "hubspot" / "events.json").read_text())
NAMES = {"creation": "creation", "deletion": "deletion", "propertyChange": "change"}


def test_one_event_per_element_with_its_schema_and_iso_occurred_at():
    adapted = adapt_events(PATH, json.dumps(EVENTS), JSON, "aid=crm")
    assert len(adapted) == len(EVENTS) == 9
    for original, (params, schema, data) in zip(EVENTS, adapted):
        obj, change = original["subscriptionType"].split(".")
        assert schema == f"iglu:com.hubspot/{obj}_{NAMES[change]}/jsonschema/1-0-0"
        assert (params["tv"], params["p"], params["aid"]) == ("com.hubspot-v1", "srv", "crm")
        assert "subscriptionType" not in data
        assert data["occurredAt"].startswith("2016-05-02T19:11:47.9")
        assert {k: v for k, v in data.items() if k != "occurredAt"} == {
            k: v for k, v in original.items() if k not in ("occurredAt", "subscriptionType")}
    assert adapted[0][2]["occurredAt"] == "2016-05-02T19:11:47.945Z"


@pytest.mark.parametrize("body, content_type, fragment", [
    (None, JSON, "empty body: no HubSpot events"),
    (json.dumps(EVENTS), FORM, "expected one of application/json"),
    ("[{", JSON, "invalid json"),
    (json.dumps(EVENTS[0]), JSON, "expected a JSON array"),
    ("[]", JSON, "a non-empty array"),
    (json.dumps([EVENTS[0], {"objectId": 1}]), JSON, '"field": "[1].subscriptionType"'),
    (json.dumps([{**EVENTS[0], "subscriptionType": "ticket.creation"}]), JSON, '"actual": "ticket.creation"'),
    (json.dumps([{**EVENTS[0], "occurredAt": "soon"}]), JSON, '"field": "[0].occurredAt"'),
    (json.dumps([EVENTS[0], "x"]), JSON, '"field": "[1]"'),
])
def test_malformed_hubspot_requests_are_adapter_failures(body, content_type, fragment):
    assert fragment in adapt_failure(PATH, body, content_type)
