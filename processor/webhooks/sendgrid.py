"""SendGrid Event Webhook at ``/com.sendgrid/v3``.

What SendGrid sends: a ``POST`` with ``Content-Type: application/json`` whose
body is a JSON array of events, batched; each has ``event`` (``processed``,
``dropped``, ``delivered``, ``deferred``, ``bounce``, ``open``, ``click``,
``spamreport``, ``unsubscribe``, ``group_unsubscribe``,
``group_resubscribe``), ``timestamp`` (epoch seconds), ``email``,
``sg_event_id``, ``sg_message_id`` and the event's own fields (``url``,
``useragent``, ``reason``, ``asm_group_id``, categories, unique args ...).

What Snowplow does (and this module does): one self-describing event per
array element with ``com.sendgrid/<event>/jsonschema/3-0-0``; the ``event``
field is dropped from the data and ``timestamp`` becomes ISO 8601; elements
repeating an earlier element's ``sg_event_id`` in the same request are
dropped (SendGrid may deliver an event twice).  ``tv`` is
``com.sendgrid-v3``, ``p`` the query string's or ``srv``, and the usual
tracker parameters pass through from the query string.

Failures (``adapter_failures``; one bad element fails the whole request, all
problems reported): empty body, a content type that is not JSON, a body that
is not JSON or not an array, an element that is not an object, has no
``event`` or an unknown one (naming its index), or a ``timestamp`` that is
not an epoch number.
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    JSON_CONTENT_TYPE,
    Adapted,
    convert_field,
    epoch_to_iso,
    events_or_failure,
    failed,
    iglu_uri,
    indexed_schema,
    input_error,
    json_request,
    ue_event,
)

VENDOR = "com.sendgrid"
TRACKER_VERSION = "com.sendgrid-v3"
EVENT_TYPES = ("processed", "dropped", "delivered", "deferred", "bounce", "open", "click", "spamreport",
               "unsubscribe", "group_unsubscribe", "group_resubscribe")
SCHEMAS = {name: iglu_uri(VENDOR, name, "3-0-0") for name in EVENT_TYPES}


@register(VENDOR, "v3")
def adapt_sendgrid(payload: CollectorPayload, querystring: list) -> Adapted:
    """One SendGrid batch -> one ``e=ue`` event per distinct element."""
    items, failure = json_request(payload, "SendGrid", [JSON_CONTENT_TYPE])
    if failure:
        return failure
    if not isinstance(items, list) or not items:
        return failed(input_error("body", payload.body[:1024], "a non-empty JSON array of SendGrid events"))
    events, errors, seen = [], [], set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(input_error(f"body[{index}]", str(item)[:1024], "a SendGrid event object"))
            continue
        schema, problem = indexed_schema(item.get("event"), SCHEMAS, f"body[{index}].event", "SendGrid", index)
        if problem:
            errors.append(problem)
            continue
        event_id = item.get("sg_event_id")
        if event_id is not None and event_id in seen:
            continue  # a duplicate delivery within the batch
        seen.add(event_id)
        data = {k: v for k, v in item.items() if k != "event"}
        if "timestamp" in data:
            problem = convert_field(data, "timestamp", epoch_to_iso, f"body[{index}].timestamp",
                                    "an epoch time in seconds")
            if problem:
                errors.append(problem)
                continue
        events.append(ue_event(schema, data, TRACKER_VERSION, querystring))
    return events_or_failure(events, errors)
