"""Mailchimp list webhooks at ``/com.mailchimp/v1``.

What Mailchimp sends: one ``POST`` per list event, form-encoded
(``application/x-www-form-urlencoded``), with ``type`` (``subscribe``,
``unsubscribe``, ``profile``, ``upemail``, ``cleaned``, ``campaign``),
``fired_at`` (``"2009-03-26 21:35:57"``, UTC, no zone) and the details as
bracket keys (``data[email]``, ``data[merges][FNAME]``, ``data[merges][GROUPINGS][0][name]`` ...).
Mailchimp also sends a ``GET`` to check the URL when the webhook is created;
the collector answers it, and an empty request gives no event here.

What Snowplow does (and this module does): one self-describing event per
request with the schema for ``type``
(subscribe -> ``com.mailchimp/subscribe``, unsubscribe -> ``unsubscribe``,
profile -> ``profile_update``, upemail -> ``email_address_change``,
cleaned -> ``cleaned_email``, campaign -> ``campaign_sending_status``, all
1-0-0); the bracket keys become nested objects; ``fired_at`` becomes ISO 8601
(``2009-03-26T21:35:57.000Z``); every value stays a string.  ``tv`` is
``com.mailchimp-v1``, ``p`` the query string's or ``srv``, and ``nuid``,
``aid``, ``cv``, ``eid``, ``ttm``, ``url`` pass through from the query string.

Failures (``adapter_failures``): an empty body, a content type other than
form encoding, a body that cannot be decoded, no ``type``, an unknown
``type`` (a SchemaMapping message naming it) and a ``fired_at`` that is not a
Mailchimp timestamp.  Difference: a ``fired_at`` Snowplow cannot parse is left
as it was there (the event then fails validation); here it is an adapter
failure naming the field, which says more.
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    FORM_CONTENT_TYPE,
    Adapted,
    brackets_to_nested,
    check_request,
    convert_field,
    decode_form,
    failed,
    iglu_uri,
    lookup_schema,
    one_event,
    reformat_timestamp,
)

VENDOR = "com.mailchimp"
TRACKER_VERSION = "com.mailchimp-v1"
#: Mailchimp's ``type`` -> the schema of the event.
SCHEMAS = {
    "subscribe": iglu_uri(VENDOR, "subscribe"),
    "unsubscribe": iglu_uri(VENDOR, "unsubscribe"),
    "profile": iglu_uri(VENDOR, "profile_update"),
    "upemail": iglu_uri(VENDOR, "email_address_change"),
    "cleaned": iglu_uri(VENDOR, "cleaned_email"),
    "campaign": iglu_uri(VENDOR, "campaign_sending_status"),
}
FIRED_AT_FORMAT = "%Y-%m-%d %H:%M:%S"


@register(VENDOR, "v1")
def adapt_mailchimp(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Mailchimp webhook request -> one ``e=ue`` event, or the failure."""
    problem = check_request(payload, "Mailchimp", [FORM_CONTENT_TYPE])
    if problem:
        return failed(problem)
    pairs, problem = decode_form(payload.body)
    if problem:
        return failed(problem)
    data = brackets_to_nested(pairs)
    schema, problem = lookup_schema(data.get("type"), SCHEMAS, "type",
                                    missing="no `type` parameter provided: cannot determine event type")
    if problem:
        return failed(problem)
    if "fired_at" in data:
        problem = convert_field(data, "fired_at", lambda text: reformat_timestamp(text, FIRED_AT_FORMAT), "fired_at",
                                "a Mailchimp timestamp like 2009-03-26 21:35:57")
        if problem:
            return failed(problem)
    return one_event(schema, data, TRACKER_VERSION, querystring)
