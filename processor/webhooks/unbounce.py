"""Unbounce form-submission webhooks at ``/com.unbounce/v1``, as Snowplow's enrich 3.9.0 reads them.

What Unbounce sends: one ``POST`` per landing-page form submission,
form-encoded (``application/x-www-form-urlencoded``) with ``page_id``,
``page_name``, ``variant``, ``page_url``, ``data.json`` (the submitted form as
JSON: each field a list of strings, plus ``page_uuid``, ``variant``,
``time_submitted``, ``date_submitted``, ``ip_address``, ``page_url``) and
``data.xml`` (the same as XML).

What Snowplow's enrich 3.9.0 does, and this module does the same: one
self-describing event ``com.unbounce/form_post/jsonschema/1-0-0`` whose data
is ``data.json`` (parsed, any JSON) first, then the other fields as strings
(``data.xml`` dropped) in the order of the Scala ``Map`` Snowplow keeps the
body in; every key at every depth camelCased (``pageId``, ``ipAddress``; the
key ``data.json`` stays).  The body is read as the query of a
``java.net.URI``.  ``tv`` is ``com.unbounce-v1``, ``p`` the query string's or
``srv``; ``nuid``, ``aid``, ``cv``, ``eid``, ``ttm``, ``url`` pass through.

Failures (``adapter_failures``, one message, Snowplow's words): no or an empty
body, no content type, a content type other than exactly
``application/x-www-form-urlencoded``, a body ``java.net.URI`` refuses (the
message names the body as its field), then the first missing of ``page_id``,
``page_name``, ``variant``, ``page_url``, ``data.json`` (``missing 'page_name'
field in body``), an empty ``data.json``, a ``data.json`` that is not JSON
(NotJson with circe's message).
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.protocol import scala_map_order
from processor.webhooks._common import (
    FORM_CONTENT_TYPE,
    Adapted,
    circe_json,
    could_not_parse_body,
    exact_content_type,
    failed,
    iglu_uri,
    input_error,
    java_form_fields,
    no_body,
    one_event,
    snowplow_camelize,
)

VENDOR = "com.unbounce"
TRACKER_VERSION = "com.unbounce-v1"
FORM_POST = iglu_uri(VENDOR, "form_post")
REQUIRED = ("page_id", "page_name", "variant", "page_url", "data.json")


@register(VENDOR, "v1")
def adapt_unbounce(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Unbounce webhook request -> one form_post event, or the failure."""
    body = payload.body
    problem = no_body(body) or exact_content_type(payload.content_type, FORM_CONTENT_TYPE)
    if problem:
        return failed(problem)
    fields, error = java_form_fields(body)
    if error is not None:
        return failed(could_not_parse_body(body, body, error))
    for name in REQUIRED:
        if name not in fields:
            return failed(input_error(name, None, f"missing '{name}' field in body"))
    submitted = fields["data.json"]
    if not submitted:
        return failed(input_error("data.json", None, "empty 'data.json' field in body"))
    parsed, problem = circe_json(submitted, "data.json")
    if problem:
        return failed(problem)
    # the body's Map without data.json and data.xml, in that Map's order
    rest = [k for k in scala_map_order(list(fields)) if k not in ("data.json", "data.xml")]
    data = {"data.json": parsed, **{k: fields[k] for k in rest}}
    return one_event(FORM_POST, snowplow_camelize(data), TRACKER_VERSION, querystring)
