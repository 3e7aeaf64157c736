"""Mandrill (Mailchimp Transactional) webhooks at ``/com.mandrill/v1``.

What Mandrill sends: a ``POST``, form-encoded, with one field
``mandrill_events``: a JSON array of events, each ``{"event": TYPE, "ts":
EPOCH_SECONDS, "_id": ..., "msg": {...}}`` (``msg`` has its own ``ts`` and
``opens``/``clicks``/``smtp_events`` lists with epoch ``ts`` too).  The types
are ``send``, ``deferral``, ``hard_bounce``, ``soft_bounce``, ``open``,
``click``, ``spam``, ``unsub`` and ``reject`` (whitelist/blacklist sync events
are not message events and are not supported, as in Snowplow).  Mandrill
checks a new webhook URL with a ``HEAD`` request, which the collector answers.

What Snowplow's enrich 3.9.0 does (and this module does): one self-describing event per
array element with the schema for its ``event`` (send -> ``message_sent``
1-0-0, deferral -> ``message_delayed`` 1-0-1, hard_bounce ->
``message_bounced`` 1-0-1, soft_bounce -> ``message_soft_bounced`` 1-0-1,
open -> ``message_opened`` 1-0-1, click -> ``message_clicked`` 1-0-1, spam ->
``message_marked_as_spam`` 1-0-1, unsub -> ``recipient_unsubscribed`` 1-0-1,
reject -> ``message_rejected`` 1-0-0); at every depth an ``event`` holding the
type is dropped, a ``ts`` holding whole epoch seconds (number or text) becomes
ISO 8601 and each object's keys come out in the order of the Scala ``Map``
Snowplow rebuilds it into.  The body is read as the query of a
``java.net.URI`` and must hold exactly one field with a value.  ``tv`` is
``com.mandrill-v1``, ``p`` the query string's or ``srv``, and the usual
tracker parameters (``aid`` ...) pass through from the query string.

Failures (``adapter_failures``, Snowplow's messages): no body, no content
type or one other than exactly ``application/x-www-form-urlencoded``, a body
``java.net.URI`` refuses, a body with other than one field (an empty body
has none), no or an empty ``mandrill_events``, a value that is not JSON
(NotJson on ``mandril_events``, sic) or not an array, an empty array; then
every element without a string ``event`` or with an unknown one, naming its
index, all together (no event is emitted when any element is bad).
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    Adapted,
    batch_events,
    circe_json,
    cleanup_json_event_values,
    failed,
    iglu_uri,
    input_error,
    java_form_body,
    java_form_fields,
    snowplow_lookup_schema,
    ue_event,
)

VENDOR = "com.mandrill"
TRACKER_VERSION = "com.mandrill-v1"
# in Snowplow's declaration order
SCHEMAS = {
    "hard_bounce": iglu_uri(VENDOR, "message_bounced", "1-0-1"),
    "click": iglu_uri(VENDOR, "message_clicked", "1-0-1"),
    "deferral": iglu_uri(VENDOR, "message_delayed", "1-0-1"),
    "spam": iglu_uri(VENDOR, "message_marked_as_spam", "1-0-1"),
    "open": iglu_uri(VENDOR, "message_opened", "1-0-1"),
    "reject": iglu_uri(VENDOR, "message_rejected", "1-0-0"),
    "send": iglu_uri(VENDOR, "message_sent", "1-0-0"),
    "soft_bounce": iglu_uri(VENDOR, "message_soft_bounced", "1-0-1"),
    "unsub": iglu_uri(VENDOR, "recipient_unsubscribed", "1-0-1"),
}


@register(VENDOR, "v1")
def adapt_mandrill(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Mandrill webhook request -> one ``e=ue`` event per element of ``mandrill_events``."""
    body = payload.body
    fields, problem = java_form_body(payload, java_form_fields)
    if problem:
        return failed(problem)
    if len(fields) != 1:
        return failed(input_error("body", body, f"body should have size 1: actual size {len(fields)}"))
    if "mandrill_events" not in fields:
        return failed(input_error("body", body, "no `mandrill_events` parameter provided"))
    text = fields["mandrill_events"]
    if not text:
        return failed(input_error("body", body, "`mandrill_events` field is empty"))
    items, problem = circe_json(text, "mandril_events")  # (sic) Snowplow names the field "mandril_events" here
    if problem:
        return failed(problem)
    if not isinstance(items, list):
        return failed(input_error("mandrill_events", text, "not a json array"))
    events, errors = [], []
    for index, item in enumerate(items):
        event_type = item.get("event") if isinstance(item, dict) else None
        event_type = event_type if isinstance(event_type, str) else None
        schema, problem = snowplow_lookup_schema(event_type, SCHEMAS, index)
        if problem:
            errors.append(problem)
            continue
        data = cleanup_json_event_values(item, ("event", event_type), ["ts"])
        events.append(ue_event(schema, data, TRACKER_VERSION, querystring))
    return batch_events(events, errors)
