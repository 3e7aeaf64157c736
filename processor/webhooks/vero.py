"""Vero webhooks at ``/com.getvero/v1``, as Snowplow's enrich 3.9.0 reads them.

What Vero sends: one ``POST`` per event, JSON, with ``type`` (``sent``,
``delivered``, ``opened``, ``clicked``, ``bounced``, ``unsubscribed``,
``user_created``, ``user_updated``), a Unix time in seconds named after the
type (``sent_at`` ...), ``user`` (``id``, ``email``), for email events
``campaign`` and the triggering ``event`` (``name``, ``data``,
``triggered_at``); ``user_updated`` carries ``changes`` (``_tags`` added and
removed).

What Snowplow's enrich 3.9.0 does, and this module does the same: one
self-describing event with the schema for ``type``
(``com.getvero/<type>/jsonschema/1-0-0``; ``user_created`` -> ``created``,
``user_updated`` -> ``updated``).  At every depth: a ``<type>_at`` or
``triggered_at`` holding whole Unix seconds (number or text) becomes ISO 8601
with milliseconds (anything else is left as it is), a ``type`` holding the
event type is dropped, and each object's keys come out in the order of the
Scala ``Map`` Snowplow rebuilds it into; then ``_tags`` is renamed ``tags`` in
every nested object (not inside arrays).  ``tv`` is ``com.getvero-v1``, ``p``
the query string's or ``srv``; ``nuid``, ``aid``, ``cv``, ``eid``, ``ttm``,
``url`` pass through.  The content type is not checked.

Failures (``adapter_failures``, one message): no body (InputData), a body that
is not JSON (NotJson with circe's message, an empty body included), no string
``type`` (InputData with circe's decoding message), an unknown or empty
``type`` (SchemaMapping).
"""
from __future__ import annotations

from typing import Any

from processor.adapters import CollectorPayload, register
from processor.protocol import scala_map_order
from processor.webhooks._common import (
    Adapted,
    cleanup_json_event_values,
    failed,
    iglu_uri,
    input_error,
    json_body,
    one_event,
    snowplow_lookup_schema,
)

VENDOR = "com.getvero"
TRACKER_VERSION = "com.getvero-v1"
#: Vero's ``type`` -> the schema of the event (in Snowplow's declaration order).
SCHEMAS = {
    "bounced": iglu_uri(VENDOR, "bounced"),
    "clicked": iglu_uri(VENDOR, "clicked"),
    "delivered": iglu_uri(VENDOR, "delivered"),
    "opened": iglu_uri(VENDOR, "opened"),
    "sent": iglu_uri(VENDOR, "sent"),
    "unsubscribed": iglu_uri(VENDOR, "unsubscribed"),
    "user_created": iglu_uri(VENDOR, "created"),
    "user_updated": iglu_uri(VENDOR, "updated"),
}


def rename_tags(doc: Any) -> Any:
    """``_tags`` -> ``tags`` in this object and every object nested in it (arrays are left alone)."""
    if not isinstance(doc, dict):
        return doc
    out = {}
    for key, value in doc.items():
        out["tags" if key == "_tags" else key] = rename_tags(value) if isinstance(value, dict) else value
    return {k: out[k] for k in scala_map_order(list(out))}


def _type_problem(doc: Any) -> dict | None:
    if not isinstance(doc, dict) or "type" not in doc:
        reason = "Attempt to decode value on failed cursor: DownField(type)"
    elif not isinstance(doc["type"], str):
        reason = "String: DownField(type)"
    else:
        return None
    return input_error("type", None, f"could not extract 'type': {reason}")


@register(VENDOR, "v1")
def adapt_vero(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Vero webhook request -> one self-describing event, or the failure."""
    doc, problem = json_body(payload.body)
    if problem:
        return failed(problem)
    problem = _type_problem(doc)
    if problem:
        return failed(problem)
    event_type = doc["type"]
    data = rename_tags(cleanup_json_event_values(doc, ("type", event_type), [f"{event_type}_at", "triggered_at"]))
    schema, problem = snowplow_lookup_schema(event_type, SCHEMAS)
    if problem:
        return failed(problem)
    return one_event(schema, data, TRACKER_VERSION, querystring)
