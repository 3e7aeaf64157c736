"""StatusGator adapter (``/com.statusgator/v1``): status changes and malformed bodies."""
import pytest

from tests.unit.webhooks.test_olark import DATA, FORM, JSON, adapt_events, adapt_failure

PATH = "/com.statusgator/v1"
BODY = (DATA / "statusgator" / "status_change.form").read_text().strip()


def test_status_change_keys_become_camel_case():
    [(params, schema, data)] = adapt_events(PATH, BODY, FORM, "aid=ops&cv=x&eid=e1")
    assert schema == "iglu:com.statusgator/status_change/jsonschema/1-0-0"
    assert (params["tv"], params["p"], params["aid"], params["cv"], params["eid"]) == (
        "com.statusgator-v1", "srv", "ops", "x", "e1")
    assert data == {
        "serviceName": "Amazon Web Services",
        "faviconUrl": "https://dwxjd9cd6rwno.cloudfront.net/favicons/amazon-web-services.ico",
        "statusPageUrl": "http://status.aws.amazon.com/", "homePageUrl": "http://aws.amazon.com/",
        "currentStatus": "warn", "lastStatus": "up", "occurredAt": "2016-05-19T09:26:31+00:00"}


@pytest.mark.parametrize("body, content_type, fragment", [
    # 3.9.0's messages; any form is an event, whatever its fields
    (None, FORM, "empty body: no events to process"),
    ("", FORM, "empty body: no events to process"),
    (BODY, JSON, '"expectation": "expected application/x-www-form-urlencoded"'),
    (BODY, FORM + "; charset=UTF-8", '"expectation": "expected application/x-www-form-urlencoded"'),
    (BODY, None, '"field": "contentType"'),
    ("a=%zz", FORM, "could not parse body: Malformed escape pair at index 20: http://localhost/?a=%zz"),
])
def test_malformed_statusgator_requests_are_adapter_failures(body, content_type, fragment):
    assert fragment in adapt_failure(PATH, body, content_type)


def test_any_form_is_a_status_change():
    [(_, _, data)] = adapt_events(PATH, "foo_bar=1&baz", FORM)
    assert data == {"fooBar": "1", "baz": None}
