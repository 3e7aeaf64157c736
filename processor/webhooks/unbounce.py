"""Unbounce form-submission webhooks at ``/com.unbounce/v1``.

What Unbounce sends: one ``POST`` per landing-page form submission,
form-encoded (``application/x-www-form-urlencoded``) with ``page_id``,
``page_name``, ``variant``, ``page_url``, ``data.json`` (the submitted form as
JSON: each field a list of strings, plus ``page_uuid``, ``variant``,
``time_submitted``, ``date_submitted``, ``ip_address``, ``page_url``) and
``data.xml`` (the same as XML).

What Snowplow does (and this module does): one self-describing event
``com.unbounce/form_post/jsonschema/1-0-0``; ``data.xml`` is dropped,
``data.json`` is parsed into an object, and every key, at every depth, goes
to camelCase (``pageId``, ``pageName``, ``pageUrl``, and inside ``data.json``
``ipAddress``, ``timeSubmitted`` ...); the key ``data.json`` itself stays.
``tv`` is ``com.unbounce-v1``, ``p`` the query string's or ``srv``; ``nuid``,
``aid``, ``cv``, ``eid``, ``ttm``, ``url`` pass through.

Failures (``adapter_failures``): an empty body, a content type other than form
encoding, a body that cannot be decoded, no ``data.json`` field, a
``data.json`` that is not a JSON object (NotJson on ``data.json``) and no
``page_id``.
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    Adapted,
    failed,
    form_json_field,
    form_request,
    iglu_uri,
    input_error,
    keys_to_camel,
    one_event,
    snake_to_camel,
)

VENDOR = "com.unbounce"
TRACKER_VERSION = "com.unbounce-v1"
FORM_POST = iglu_uri(VENDOR, "form_post")


@register(VENDOR, "v1")
def adapt_unbounce(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Unbounce webhook request -> one form_post event, or the failure."""
    form, failure = form_request(payload, "Unbounce")
    if failure:
        return failure
    form.pop("data.xml", None)
    submitted, problem = form_json_field(form, "data.json", "an Unbounce form body with a `data.json` field",
                                         want_object=True)
    if problem:
        return failed(problem)
    if not form.get("page_id"):
        return failed(input_error("page_id", form.get("page_id"), "an Unbounce form body with a `page_id` field"))
    data = {snake_to_camel(key): value for key, value in form.items() if key != "data.json"}
    data["data.json"] = keys_to_camel(submitted)
    return one_event(FORM_POST, data, TRACKER_VERSION, querystring)
