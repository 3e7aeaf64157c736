"""HubSpot adapter (``/com.hubspot/v1``): every subscription type in one array, failures."""
import json

import pytest

from processor.adapters import adapt
from tests.unit.webhooks.test_olark import DATA, FORM, JSON, adapt_events, adapt_failure, payload

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
    # 3.9.0's messages
    (None, JSON, "empty body: not events to process"),
    (json.dumps(EVENTS), FORM, '"expectation": "expected application/json"'),
    (json.dumps(EVENTS), JSON + "; charset=utf-8", '"expectation": "expected application/json"'),
    ("[{", JSON, "invalid json"),
    (json.dumps(EVENTS[0]), JSON, "not a json array"),
    ("[]", JSON, "empty list of events"),
    (json.dumps([EVENTS[0], {"objectId": 1}]), JSON, "type parameter not provided at index 1"),
    (json.dumps([{**EVENTS[0], "subscriptionType": "ticket.creation"}]), JSON, '"actual": "ticket.creation"'),
    (json.dumps([EVENTS[0], "x"]), JSON, "type parameter not provided at index 1"),
])
def test_malformed_hubspot_requests_are_adapter_failures(body, content_type, fragment):
    assert fragment in adapt_failure(PATH, body, content_type)


def test_occurred_at_as_circe_reads_a_long():
    # 3.9.0: a string holding a whole number is read too; anything else is kept as sent
    [(_, _, data)] = adapt_events(PATH, json.dumps([{**EVENTS[0], "occurredAt": "1462216307945"}]), JSON)
    assert data["occurredAt"] == "2016-05-02T19:11:47.945Z"
    result = adapt(payload(PATH, json.dumps([{**EVENTS[0], "occurredAt": "soon"}]), JSON))
    assert json.loads(result.events[0]["ue_pr"])["data"]["data"]["occurredAt"] == "soon"  # then refused by the schema
