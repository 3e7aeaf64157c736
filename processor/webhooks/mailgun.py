"""Mailgun webhooks at ``/com.mailgun/v1``, in the JSON format Snowplow's enrich 3.9.0 reads.

What Mailgun sends (its webhooks since 2018): one ``POST`` per event,
``application/json``, a body ``{"signature": {"timestamp", "token",
"signature"}, "event-data": {"event": ..., "timestamp": ..., ...}}``.

What Snowplow's enrich 3.9.0 does, and this module does the same:

* the content type must be exactly ``application/json`` (no parameters, as
  the collector recorded it); the legacy form-encoded and multipart webhooks
  are refused;
* ``event-data.event`` picks the schema, ``com.mailgun/<name>/jsonschema/1-0-0``
  (delivered -> ``message_delivered``, dropped, bounced, complained, opened,
  clicked -> ``message_<type>``, unsubscribed -> ``recipient_unsubscribed``);
* the signature's ``timestamp`` replaces ``event-data.timestamp``, then the
  signature object is deep-merged with ``event-data`` (``event-data`` wins a
  clash; the signature's ``token`` and ``signature`` come after its keys);
* every key, at every depth, becomes camelCase (``delivery-status`` ->
  ``deliveryStatus``, ``my_var_1`` -> ``myVar1``); ``bodyPlain`` and
  ``attachmentCount`` are dropped from the top level, the latter put back as
  a number when it reads as an integer;
* any ``event`` key holding the event type is dropped and any ``timestamp``
  holding whole epoch seconds (number or text) becomes ISO 8601 with
  milliseconds, at every depth; each object's keys come out in the order of
  the Scala ``Map`` Snowplow rebuilds it into.

``tv`` is ``com.mailgun-v1``, ``p`` the query string's or ``srv``, and the
usual tracker parameters pass through.  Failures (``adapter_failures``, one
message, the first that applies): no body or an empty one, no content type,
another content type, a body that is not JSON (circe's message), no
``event-data.event``, an event type that is not a string, empty or unknown, a
missing ``signature.timestamp``, ``signature.token`` or
``signature.signature``, an ``event-data`` without ``timestamp``.  The
signature is carried as data, not verified (neither does Snowplow).
"""
from __future__ import annotations

from typing import Any

from processor import jsontext
from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    JSON_CONTENT_TYPE,
    Adapted,
    cleanup_json_event_values,
    could_not_parse_body,
    deep_merge,
    exact_content_type,
    failed,
    iglu_uri,
    input_error,
    json_whole_number,
    no_body,
    one_event,
    snowplow_camelize,
    snowplow_lookup_schema,
)

VENDOR = "com.mailgun"
TRACKER_VERSION = "com.mailgun-v1"
# in the order Snowplow declares its map (its bad rows list the map in Scala's order)
SCHEMAS = {
    "bounced": iglu_uri(VENDOR, "message_bounced"),
    "clicked": iglu_uri(VENDOR, "message_clicked"),
    "complained": iglu_uri(VENDOR, "message_complained"),
    "delivered": iglu_uri(VENDOR, "message_delivered"),
    "dropped": iglu_uri(VENDOR, "message_dropped"),
    "opened": iglu_uri(VENDOR, "message_opened"),
    "unsubscribed": iglu_uri(VENDOR, "recipient_unsubscribed"),
}
SIGNATURE_FIELDS = ("timestamp", "token", "signature")
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


def _json_int(value: Any) -> int | None:
    """circe's ``as[Int]``: a whole number in 32 bits, or text that is such a JSON number."""
    if isinstance(value, str):
        try:
            value = jsontext.loads(value)
        except ValueError:
            return None
        if not isinstance(value, (int, float)):
            return None
    return json_whole_number(value, _INT_MIN, _INT_MAX)


@register(VENDOR, "v1")
def adapt_mailgun(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Mailgun JSON webhook request -> one ``e=ue`` event."""
    body = payload.body
    problem = no_body(body) or exact_content_type(payload.content_type, JSON_CONTENT_TYPE)
    if problem:
        return failed(problem)
    try:
        doc = jsontext.loads(body)
    except ValueError:
        reason = jsontext.circe_parse_error(body) or "exhausted input"
        return failed(could_not_parse_body("body", body, reason))
    event_data = doc.get("event-data") if isinstance(doc, dict) else None
    if not isinstance(event_data, dict) or "event" not in event_data:
        return failed(input_error("body", body, "no `event` parameter provided: cannot determine event type"))
    event_type = event_data["event"]
    schema, problem = snowplow_lookup_schema(event_type, SCHEMAS)
    if problem:
        return failed(problem)
    signature = doc.get("signature")
    for name in SIGNATURE_FIELDS:
        if not isinstance(signature, dict) or name not in signature:
            return failed(input_error(name, None, f"missing '{name}'"))
    if "timestamp" not in event_data:
        return failed(input_error("event-data", None, "missing 'event-data'"))
    event_data = {**event_data, "timestamp": signature["timestamp"]}
    data = snowplow_camelize(deep_merge(signature, event_data))
    attachment_count = _json_int(data["attachmentCount"]) if "attachmentCount" in data else None
    data = {k: v for k, v in data.items() if k not in ("bodyPlain", "attachmentCount")}
    if attachment_count is not None:
        data["attachmentCount"] = attachment_count
    data = cleanup_json_event_values(data, ("event", event_type), ["timestamp"])
    return one_event(schema, data, TRACKER_VERSION, querystring)
