"""Vero webhooks at ``/com.getvero/v1``.

What Vero sends: one ``POST`` per event, JSON (``application/json``), with
``type`` (``sent``, ``delivered``, ``opened``, ``clicked``, ``bounced``,
``unsubscribed``, ``user_created``, ``user_updated``), a Unix time in seconds
named after the type (``sent_at``, ``delivered_at``, ``opened_at``,
``clicked_at``, ``bounced_at``, ``unsubscribed_at``), ``user`` (``id``,
``email``), and for email events ``campaign`` and the triggering ``event``
(``name``, ``data``, ``triggered_at``, also Unix seconds); ``user_updated``
carries ``changes`` (tags added and removed).

What Snowplow does (and this module does): one self-describing event with the
schema for ``type`` (``com.getvero/<type>/jsonschema/1-0-0``; ``user_created``
-> ``created``, ``user_updated`` -> ``updated``); ``<type>_at`` and
``event.triggered_at`` become ISO 8601 with milliseconds; everything else,
``type`` included, is kept.  ``tv`` is ``com.getvero-v1``, ``p`` the query
string's or ``srv``; ``nuid``, ``aid``, ``cv``, ``eid``, ``ttm``, ``url``
pass through.

Failures (``adapter_failures``): an empty body, a body that is not a JSON
object (NotJson), no ``type``, an unknown ``type`` (SchemaMapping), and a time
field that is not a Unix time.  Difference: Snowplow leaves a bad time as it
was (the event then fails validation); here it is an adapter failure naming
the field.
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    Adapted,
    convert_field,
    epoch_to_iso,
    failed,
    iglu_uri,
    json_request,
    lookup_schema,
    one_event,
)

VENDOR = "com.getvero"
TRACKER_VERSION = "com.getvero-v1"
#: Vero's ``type`` -> the schema of the event.
SCHEMAS = {
    "sent": iglu_uri(VENDOR, "sent"),
    "delivered": iglu_uri(VENDOR, "delivered"),
    "opened": iglu_uri(VENDOR, "opened"),
    "clicked": iglu_uri(VENDOR, "clicked"),
    "bounced": iglu_uri(VENDOR, "bounced"),
    "unsubscribed": iglu_uri(VENDOR, "unsubscribed"),
    "user_created": iglu_uri(VENDOR, "created"),
    "user_updated": iglu_uri(VENDOR, "updated"),
}


@register(VENDOR, "v1")
def adapt_vero(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Vero webhook request -> one self-describing event, or the failure."""
    event, failure = json_request(payload, "Vero", object_expectation="expected a JSON object")
    if failure:
        return failure
    event_type = event.get("type")
    schema, problem = lookup_schema(event_type, SCHEMAS, "type")
    if problem:
        return failed(problem)
    # (container, key, field name for messages) of each Unix time to reformat
    times = [(event, f"{event_type}_at", f"{event_type}_at")]
    if isinstance(event.get("event"), dict):
        times.append((event["event"], "triggered_at", "event.triggered_at"))
    for container, key, name in times:
        if container.get(key) is not None:
            problem = convert_field(container, key, epoch_to_iso, name, "a Unix time in seconds")
            if problem:
                return failed(problem)
    return one_event(schema, event, TRACKER_VERSION, querystring)
