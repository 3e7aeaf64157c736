"""Mandrill (Mailchimp Transactional) webhooks at ``/com.mandrill/v1``.

What Mandrill sends: a ``POST``, form-encoded, with one field
``mandrill_events``: a JSON array of events, each ``{"event": TYPE, "ts":
EPOCH_SECONDS, "_id": ..., "msg": {...}}`` (``msg`` has its own ``ts`` and
``opens``/``clicks``/``smtp_events`` lists with epoch ``ts`` too).  The types
are ``send``, ``deferral``, ``hard_bounce``, ``soft_bounce``, ``open``,
``click``, ``spam``, ``unsub`` and ``reject`` (whitelist/blacklist sync events
are not message events and are not supported, as in Snowplow).  Mandrill
checks a new webhook URL with a ``HEAD`` request, which the collector answers.

What Snowplow does (and this module does): one self-describing event per
array element with the schema for its ``event`` (send -> ``message_sent``
1-0-0, deferral -> ``message_delayed`` 1-0-1, hard_bounce ->
``message_bounced`` 1-0-1, soft_bounce -> ``message_soft_bounced`` 1-0-1,
open -> ``message_opened`` 1-0-1, click -> ``message_clicked`` 1-0-1, spam ->
``message_marked_as_spam`` 1-0-1, unsub -> ``recipient_unsubscribed`` 1-0-1,
reject -> ``message_rejected`` 1-0-0); the ``event`` field is dropped from
the data and every integer ``ts`` at any depth becomes ISO 8601.  ``tv`` is
``com.mandrill-v1``, ``p`` the query string's or ``srv``, and the usual
tracker parameters (``aid`` ...) pass through from the query string.

Failures (``adapter_failures``, all of a request's problems together, no
event emitted when any element is bad): empty body, wrong content type, no
``mandrill_events`` field, a value that is not JSON or not an array, an
element without ``event`` or with an unknown one (naming its index).
"""
from __future__ import annotations

from typing import Any

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    Adapted,
    epoch_to_iso,
    events_or_failure,
    failed,
    form_json_field,
    form_request,
    iglu_uri,
    indexed_schema,
    input_error,
    ue_event,
)

VENDOR = "com.mandrill"
TRACKER_VERSION = "com.mandrill-v1"
SCHEMAS = {
    "send": iglu_uri(VENDOR, "message_sent", "1-0-0"),
    "deferral": iglu_uri(VENDOR, "message_delayed", "1-0-1"),
    "hard_bounce": iglu_uri(VENDOR, "message_bounced", "1-0-1"),
    "soft_bounce": iglu_uri(VENDOR, "message_soft_bounced", "1-0-1"),
    "open": iglu_uri(VENDOR, "message_opened", "1-0-1"),
    "click": iglu_uri(VENDOR, "message_clicked", "1-0-1"),
    "spam": iglu_uri(VENDOR, "message_marked_as_spam", "1-0-1"),
    "unsub": iglu_uri(VENDOR, "recipient_unsubscribed", "1-0-1"),
    "reject": iglu_uri(VENDOR, "message_rejected", "1-0-0"),
}


def ts_to_iso(doc: Any) -> Any:
    """Every ``ts`` holding an epoch number, at any depth, as ISO 8601 text."""
    if isinstance(doc, dict):
        return {k: (_iso_or_same(v) if k == "ts" else ts_to_iso(v)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [ts_to_iso(v) for v in doc]
    return doc


def _iso_or_same(value: Any) -> Any:
    # Only epoch numbers are converted; anything else is left for validation to judge.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ts_to_iso(value)
    try:
        return epoch_to_iso(value)
    except ValueError:
        return value


@register(VENDOR, "v1")
def adapt_mandrill(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Mandrill webhook request -> one ``e=ue`` event per element of ``mandrill_events``."""
    form, failure = form_request(payload, "Mandrill")
    if failure:
        return failure
    items, problem = form_json_field(form, "mandrill_events", "no `mandrill_events` parameter provided")
    if problem:
        return failed(problem)
    if not isinstance(items, list):
        return failed(input_error("mandrill_events", form["mandrill_events"][:1024], "a JSON array of events"))
    events, errors = [], []
    for index, item in enumerate(items):
        event_type = item.get("event") if isinstance(item, dict) else None
        schema, problem = indexed_schema(event_type, SCHEMAS, f"mandrill_events[{index}].event", "Mandrill", index)
        if problem:
            errors.append(problem)
            continue
        data = ts_to_iso({k: v for k, v in item.items() if k != "event"})
        events.append(ue_event(schema, data, TRACKER_VERSION, querystring))
    return events_or_failure(events, errors, empty=input_error(
        "mandrill_events", form["mandrill_events"], "at least one event in the array"))
