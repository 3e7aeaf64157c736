"""SendGrid Event Webhook at ``/com.sendgrid/v3``.

What SendGrid sends: a ``POST`` with ``Content-Type: application/json`` whose
body is a JSON array of events, batched; each has ``event`` (``processed``,
``dropped``, ``delivered``, ``deferred``, ``bounce``, ``open``, ``click``,
``spamreport``, ``unsubscribe``, ``group_unsubscribe``,
``group_resubscribe``), ``timestamp`` (epoch seconds), ``email``,
``sg_event_id``, ``sg_message_id`` and the event's own fields (``url``,
``useragent``, ``reason``, ``asm_group_id``, categories, unique args ...).

What Snowplow's enrich 3.9.0 does (and this module does): one self-describing
event per array element with ``com.sendgrid/<event>/jsonschema/3-0-0``,
cleaned as its ``cleanupJsonEventValues`` cleans it (``event`` dropped,
``timestamp`` at any depth made ISO 8601, keys in the order of the Scala
``Map`` each object is rebuilt into).  The elements are first keyed by their
``sg_event_id`` (a string, or none) in a Scala ``Map``: an element repeating
an earlier one's id (or, like it, having none) replaces it, keeping its place,
and the events come out in that map's order.  ``tv`` is ``com.sendgrid-v3``,
``p`` the query string's or ``srv``, and ``nuid``, ``aid``, ``cv``, ``eid``,
``ttm``, ``url`` pass through from the query string.

Failures (``adapter_failures``), 3.9.0's messages: no body, no content type or
one that does not contain ``application/json``, a body that is not JSON
(``invalid json: ...``) or not an array (``body is not a json array``), an
empty array (``empty list of events``), an element without a string ``event``
or with an unknown one (the schema mapping, ``at index N``, N its place in the
array); every element's problem is reported.
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.scala_order import java_string_hash as _java_string_hash
from processor.webhooks._common import (
    JSON_CONTENT_TYPE,
    Adapted,
    batch_events,
    circe_json,
    cleanup_json_event_values,
    failed,
    iglu_uri,
    input_error,
    no_body,
    snowplow_lookup_schema,
    ue_event,
)
from processor.webhooks._scala import immutable_order, product_hash

VENDOR = "com.sendgrid"
TRACKER_VERSION = "com.sendgrid-v3"
EVENT_TYPES = ("processed", "dropped", "delivered", "deferred", "bounce", "open", "click", "spamreport",
               "unsubscribe", "group_unsubscribe", "group_resubscribe")
SCHEMAS = {name: iglu_uri(VENDOR, name, "3-0-0") for name in EVENT_TYPES}
_NONE_HASH = _java_string_hash("None")


def _option_hash(key: str | None) -> int:
    """``Option[String].hashCode``: ``None``'s name, or ``Some``'s product hash."""
    return _NONE_HASH if key is None else product_hash([_java_string_hash(key)])


@register(VENDOR, "v3")
def adapt_sendgrid(payload: CollectorPayload, querystring: list) -> Adapted:
    """One SendGrid batch -> one ``e=ue`` event per element kept."""
    body, content_type = payload.body, payload.content_type
    problem = no_body(body, allow_empty=True)
    if problem:
        return failed(problem)
    if content_type is None:
        return failed(input_error("contentType", None, f"no content type: expected {JSON_CONTENT_TYPE}"))
    if JSON_CONTENT_TYPE not in content_type:  # contained, not equal: not exact_content_type
        return failed(input_error("contentType", content_type, f"expected {JSON_CONTENT_TYPE}"))
    items, problem = circe_json(body)
    if problem:
        return failed(problem)
    if not isinstance(items, list):
        return failed(input_error("body", body, "body is not a json array"))
    by_id: dict[str | None, tuple[object, int]] = {}
    for index, item in enumerate(items):
        event_id = item.get("sg_event_id") if isinstance(item, dict) else None
        by_id[event_id if isinstance(event_id, str) else None] = (item, index)
    events, errors = [], []
    for key in immutable_order(list(by_id), _option_hash):
        item, index = by_id[key]
        event_type = item.get("event") if isinstance(item, dict) else None
        event_type = event_type if isinstance(event_type, str) else None
        schema, problem = snowplow_lookup_schema(event_type, SCHEMAS, index)
        if problem:
            errors.append(problem)
            continue
        data = cleanup_json_event_values(item, ("event", event_type), ["timestamp"])
        events.append(ue_event(schema, data, TRACKER_VERSION, querystring))
    return batch_events(events, errors)
