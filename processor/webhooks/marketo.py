"""Marketo webhooks at ``/com.marketo/v1``.

What Marketo sends: a webhook whose body the user writes in Marketo with
tokens; the format Snowplow documents is one JSON object (``application/json``)
with ``name``, ``step``, ``description``, ``datetime``, ``campaign``
(``id``, ``name``), ``lead`` (``acquisition_date``, ``created_at``,
``email_address``, ``first_name`` ...), ``company``, ``program``, ``social``,
``munchkinId`` and links.  Marketo's date tokens render as
``2018-06-16 11:23:58`` (no zone, read as UTC).

What Snowplow does (and this module does): one self-describing event
``com.marketo/event/jsonschema/2-0-0``; the date fields
(``lead.acquisition_date``, ``lead.created_at``, ``lead.email_suspended_at``,
``lead.last_referred_enrollment``, ``lead.last_referred_visit``,
``lead.updated_at``, ``lead.last_interesting_moment_date`` and the top-level
``datetime``) become ISO 8601 with milliseconds; the rest is kept.  ``tv`` is
``com.marketo-v1``, ``p`` the query string's or ``srv``; ``nuid``, ``aid``,
``cv``, ``eid``, ``ttm``, ``url`` pass through.

Failures (``adapter_failures``): an empty body, a body that is not a JSON
object (NotJson), a date field that is not a Marketo date (naming the field).
Difference: Snowplow leaves an unparsable date alone (then a schema
violation); here it is an adapter failure naming the field.  An ISO 8601 value
is accepted too.
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    Adapted,
    convert_field,
    failed,
    iglu_uri,
    json_request,
    one_event,
    reformat_timestamp,
)

VENDOR = "com.marketo"
TRACKER_VERSION = "com.marketo-v1"
EVENT = iglu_uri(VENDOR, "event", "2-0-0")
LEAD_DATES = ("acquisition_date", "created_at", "email_suspended_at", "last_referred_enrollment",
              "last_referred_visit", "updated_at", "last_interesting_moment_date")
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S")


@register(VENDOR, "v1")
def adapt_marketo(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Marketo webhook request -> one event, or the failure."""
    event, failure = json_request(payload, "Marketo", object_expectation="expected a JSON object")
    if failure:
        return failure
    dates = [(event, "datetime", "datetime")]
    if isinstance(event.get("lead"), dict):
        dates += [(event["lead"], key, f"lead.{key}") for key in LEAD_DATES]
    for container, key, name in dates:
        value = container.get(key)
        if value is None or value == "":
            continue
        problem = convert_field(container, key, lambda text: reformat_timestamp(text, DATE_FORMATS), name,
                                "a Marketo date like 2018-06-16 11:23:58")
        if problem:
            return failed(problem)
    return one_event(EVENT, event, TRACKER_VERSION, querystring)
