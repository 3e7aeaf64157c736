"""Unbounce adapter (``/com.unbounce/v1``): form posts and malformed bodies."""
from urllib.parse import parse_qsl, urlencode

import pytest

from tests.unit.webhooks.test_olark import DATA, FORM, JSON, adapt_events, adapt_failure

PATH = "/com.unbounce/v1"
BODY = (DATA / "unbounce" / "form_post.form").read_text().strip()


def _with(**changes) -> str:
    form = dict(parse_qsl(BODY))
    for key, value in changes.items():
        key = key.replace("_dot_", ".")
        if value is None:
            form.pop(key, None)
        else:
            form[key] = value
    return urlencode(form)


def test_form_post_is_camel_cased_with_data_json_parsed_and_xml_dropped():
    [(params, schema, data)] = adapt_events(PATH, BODY, FORM, "aid=lp")
    assert schema == "iglu:com.unbounce/form_post/jsonschema/1-0-0"
    assert (params["tv"], params["p"], params["aid"]) == ("com.unbounce-v1", "srv", "lp")
    assert set(data) == {"pageId", "pageName", "variant", "pageUrl", "data.json"}
    assert data["pageId"] == "f7afd389-65a3-45fa-8bad-b7a42236044c"
    assert data["data.json"] == {
        "email": ["test@snowplowanalytics.com"], "yourName": ["Ben Fradet"], "ipAddress": "127.0.0.1",
        "pageUuid": "f7afd389-65a3-45fa-8bad-b7a42236044c", "variant": "a", "timeSubmitted": "10:32 AM",
        "dateSubmitted": "2017-11-15", "pageUrl": "http://unbouncepages.com/snowplow-test/",
        "pageName": "Snowplow test"}


@pytest.mark.parametrize("body, content_type, fragment", [
    (None, FORM, "empty body: no events to process"),
    (BODY, JSON, "expected application/x-www-form-urlencoded"),
    (_with(data_dot_json=None), FORM, "missing 'data.json' field in body"),
    (_with(data_dot_json="{oops"), FORM, '"field": "data.json"'),
    (_with(page_id=None), FORM, "missing 'page_id' field in body"),
    # as Snowplow's enrich 3.9.0: page_name, variant and page_url are required too
    (_with(page_name=None), FORM, "missing 'page_name' field in body"),
    (_with(variant=None), FORM, "missing 'variant' field in body"),
    (_with(page_url=None), FORM, "missing 'page_url' field in body"),
])
def test_malformed_unbounce_requests_are_adapter_failures(body, content_type, fragment):
    assert fragment in adapt_failure(PATH, body, content_type)
