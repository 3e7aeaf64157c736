"""Marketo adapter (``/com.marketo/v1``): the one event schema, ISO dates, failures."""
import json

import pytest

from processor.adapters import adapt
from tests.unit.webhooks.test_olark import DATA, JSON, adapt_events, adapt_failure, payload

PATH = "/com.marketo/v1"
EVENT = json.loads((DATA / "marketo" / "event.json").read_text())


def test_marketo_event_dates_become_iso():
    [(params, schema, data)] = adapt_events(PATH, json.dumps(EVENT), JSON, "aid=mkto&p=app")
    assert schema == "iglu:com.marketo/event/jsonschema/2-0-0"
    assert (params["tv"], params["p"], params["aid"]) == ("com.marketo-v1", "app", "mkto")
    assert data["datetime"] == "2018-03-07T14:28:16.000Z"
    lead = data["lead"]
    assert (lead["acquisition_date"], lead["created_at"], lead["updated_at"], lead["last_interesting_moment_date"]) == (
        "2010-11-11T11:11:11.000Z", "2018-06-16T11:23:58.000Z", "2018-06-16T11:23:58.000Z", "2018-09-26T20:26:40.000Z")
    assert (lead["first_name"], lead["black_listed"], lead["lead_score"]) == ("the hulk", False, 42)
    assert data["campaign"] == {"id": 160, "name": "avengers assemble"}
    assert data["company"] == EVENT["company"] and data["munchkinId"] == "123-ABC-456"


@pytest.mark.parametrize("body, fragment", [
    # 3.9.0's messages
    (None, "empty body: no events to process"),
    ("{", "invalid json"),
    ("[]", "not a json object"),
])
def test_malformed_marketo_requests_are_adapter_failures(body, fragment):
    assert fragment in adapt_failure(PATH, body, JSON)


def test_marketo_dates_joda_cannot_read_are_kept():
    # as 3.9.0: a date key whose text is not yyyy-MM-dd HH:mm:ss keeps it (the schema then judges it)
    result = adapt(payload(PATH, json.dumps({**EVENT, "lead": {"created_at": "16/06/2018"}, "datetime": "noon"}), JSON))
    data = json.loads(result.events[0]["ue_pr"])["data"]["data"]
    assert (data["lead"]["created_at"], data["datetime"]) == ("16/06/2018", "noon")
