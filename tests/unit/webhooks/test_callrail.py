"""CallRail adapter (``/com.callrail/v1``): a completed call as typed GET parameters, failures."""
import json
from urllib.parse import parse_qsl, urlencode

import pytest

from processor.adapters import adapt
from tests.unit.webhooks.test_olark import DATA, adapt_events, adapt_failure, payload

PATH = "/com.callrail/v1"
QS = (DATA / "callrail" / "call_complete.qs").read_text().strip()


def test_call_complete_values_are_typed():
    [(params, schema, data)] = adapt_events(PATH, querystring=QS)
    assert schema == "iglu:com.callrail/call_complete/jsonschema/1-0-2"
    assert (params["tv"], params["p"], params["aid"], params["cv"]) == (
        "com.callrail-v1", "srv", "bnb", "clj-0.6.0-tom-0.0.4")
    assert (data["answered"], data["first_call"], data["duration"]) == (True, True, 247)
    assert data["datetime"] == "2014-10-09T16:23:45.000Z"
    assert data["callername"] == "SKYPE CALLER" and data["id"] == "201235151"
    assert data["gclid"] is None and data["utmz"] is None
    assert "aid" not in data and "cv" not in data


@pytest.mark.parametrize("change, kept", [
    # as 3.9.0's buildFormatter: a value not of its type is kept as sent (the schema then judges it)
    ({"answered": "yes"}, ("answered", "yes")),
    ({"first_call": "1"}, ("first_call", "1")),
    ({"duration": "4m"}, ("duration", "4m")),
    ({"datetime": "09/10/2014"}, ("datetime", "09/10/2014")),
])
def test_badly_typed_values_are_kept_as_sent(change, kept):
    result = adapt(payload(PATH, querystring=urlencode({**dict(parse_qsl(QS, keep_blank_values=True)), **change})))
    assert json.loads(result.events[0]["ue_pr"])["data"]["data"][kept[0]] == kept[1]


def test_empty_querystring_is_an_adapter_failure():
    assert '"expectation": "empty querystring"' in adapt_failure(PATH)
