"""Marketo webhooks at ``/com.marketo/v1``.

What Marketo sends: a webhook whose body the user writes in Marketo with
tokens; the format Snowplow documents is one JSON object (``application/json``)
with ``name``, ``step``, ``description``, ``datetime``, ``campaign``
(``id``, ``name``), ``lead`` (``acquisition_date``, ``created_at``,
``email_address``, ``first_name`` ...), ``company``, ``program``, ``social``,
``munchkinId`` and links.  Marketo's date tokens render as
``2018-06-16 11:23:58`` (no zone, read as UTC).

What Snowplow's enrich 3.9.0 does (and this module does): one self-describing
event ``com.marketo/event/jsonschema/2-0-0``.  In every object reached
through objects (not inside arrays), a string under one of the date keys
(``acquisition_date``, ``created_at``, ``email_suspended_at``,
``last_referred_enrollment``, ``last_referred_visit``, ``updated_at``,
``datetime``, ``last_interesting_moment_date``) becomes ISO 8601 with
milliseconds when Joda reads it as ``yyyy-MM-dd HH:mm:ss``, else stays as sent;
each such object's keys come out in the order of the Scala ``Map`` it is
rebuilt into.  The content type is not checked.  ``tv`` is ``com.marketo-v1``,
``p`` the query string's or ``srv``; ``nuid``, ``aid``, ``cv``, ``eid``,
``ttm``, ``url`` pass through.

Failures (``adapter_failures``), 3.9.0's messages: no body (``empty body: no
events to process``), a body that is not JSON (``invalid json: ...``) or not an
object (``not a json object``).
"""
from __future__ import annotations

from typing import Any

from processor.adapters import CollectorPayload, register
from processor.protocol import scala_map_order
from processor.webhooks._common import (
    Adapted,
    failed,
    iglu_uri,
    input_error,
    json_body,
    joda_datetime_iso,
    one_event,
)

VENDOR = "com.marketo"
TRACKER_VERSION = "com.marketo-v1"
EVENT = iglu_uri(VENDOR, "event", "2-0-0")
DATE_FIELDS = frozenset({"acquisition_date", "created_at", "email_suspended_at", "last_referred_enrollment",
                         "last_referred_visit", "updated_at", "datetime", "last_interesting_moment_date"})


def reformat(doc: Any) -> Any:
    """3.9.0's ``reformatParameters``: the date keys' strings read, at every depth through objects."""
    if not isinstance(doc, dict):
        return doc
    out = {}
    for key in scala_map_order(list(doc)):
        value = doc[key]
        if key in DATE_FIELDS:
            if isinstance(value, str):
                value = joda_datetime_iso(value)
        elif isinstance(value, dict):
            value = reformat(value)
        out[key] = value
    return out


@register(VENDOR, "v1")
def adapt_marketo(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Marketo webhook request -> one event, or the failure."""
    body = payload.body
    event, problem = json_body(body)
    if problem:
        return failed(problem)
    if not isinstance(event, dict):
        return failed(input_error("body", body, "not a json object"))
    return one_event(EVENT, reformat(event), TRACKER_VERSION, querystring)
