"""HubSpot webhook subscriptions at ``/com.hubspot/v1``.

What HubSpot sends: ``POST`` (``application/json``) of a JSON array of
events, up to 100 per request, each with ``subscriptionType``
(``contact.creation``, ``contact.deletion``, ``contact.propertyChange``,
``company.creation``, ``company.deletion``, ``company.propertyChange``,
``deal.creation``, ``deal.deletion``, ``deal.propertyChange``), ``eventId``,
``subscriptionId``, ``portalId``, ``appId``, ``occurredAt`` (epoch
milliseconds), ``attemptNumber``, ``objectId``, ``changeSource``, and
``changeFlag`` (creation/deletion) or ``propertyName`` / ``propertyValue``
(property changes).

What Snowplow's enrich 3.9.0 does (and this module does): one self-describing
event per array element, with the schema for its ``subscriptionType``
(``com.hubspot/<object>_creation``, ``<object>_deletion``, and
``<object>_change`` for ``propertyChange``, all 1-0-0); ``subscriptionType``
is removed from the data, the other keys kept in order, and ``occurredAt``
becomes ISO 8601 with milliseconds when circe reads it as a ``Long`` (a whole
number, or a string holding one), else stays as sent.  ``tv`` is
``com.hubspot-v1``, ``p`` the query string's or ``srv``; ``nuid``, ``aid``,
``cv``, ``eid``, ``ttm``, ``url`` pass through.

Failures (``adapter_failures``), 3.9.0's messages: no body (``empty body: not
events to process``, sic), no content type or one other than exactly
``application/json``, a body that is not JSON (``invalid json: ...``) or not an
array (``not a json array``), an empty array (``empty list of events``), an
element without a string ``subscriptionType`` or with an unknown one (the
schema mapping, ``at index N``); every element's problem is reported.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    JSON_CONTENT_TYPE,
    Adapted,
    batch_events,
    circe_json,
    exact_content_type,
    failed,
    iglu_uri,
    input_error,
    json_whole_number,
    snowplow_lookup_schema,
    ue_event,
)

VENDOR = "com.hubspot"
TRACKER_VERSION = "com.hubspot-v1"
#: HubSpot's ``subscriptionType`` -> the schema of the event, in 3.9.0's declaration order
SCHEMAS = {
    f"{obj}.{change}": iglu_uri(VENDOR, f"{obj}_{name}")
    for obj in ("contact", "company", "deal")
    for change, name in (("creation", "creation"), ("deletion", "deletion"), ("propertyChange", "change"))
}
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?", re.ASCII)
_LONG = (-(1 << 63), (1 << 63) - 1)


def circe_long(value: Any) -> int | None:
    """circe's ``as[Long]``: a whole JSON number in range, or a string holding one; else None."""
    if isinstance(value, str):
        if not _JSON_NUMBER.fullmatch(value):
            return None
        number = Decimal(value)
        if number != number.to_integral_value() or not _LONG[0] <= number <= _LONG[1]:
            return None
        return int(number)
    return json_whole_number(value)


def millis_to_iso(millis: int) -> str | None:
    """Joda's ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`` of epoch ms (UTC); None beyond what Python dates hold."""
    try:
        moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=millis)
    except OverflowError:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def reformat(event: Any) -> Any:
    """3.9.0's ``reformatParameters``: ``occurredAt`` as ISO 8601 when it is a Long, ``subscriptionType`` removed."""
    if not isinstance(event, dict):
        return event
    out = dict(event)
    if "occurredAt" in out:
        millis = circe_long(out["occurredAt"])
        text = millis_to_iso(millis) if millis is not None else None
        if text is not None:
            out["occurredAt"] = text
    out.pop("subscriptionType", None)
    return out


@register(VENDOR, "v1")
def adapt_hubspot(payload: CollectorPayload, querystring: list) -> Adapted:
    """One HubSpot webhook request -> one self-describing event per element, or the failure."""
    body = payload.body
    if body is None:  # (sic) 3.9.0's words
        return failed(input_error("body", None, "empty body: not events to process"))
    problem = exact_content_type(payload.content_type, JSON_CONTENT_TYPE)
    if problem:
        return failed(problem)
    doc, problem = circe_json(body)
    if problem:
        return failed(problem)
    if not isinstance(doc, list):
        return failed(input_error("body", body, "not a json array"))
    events, problems = [], []
    for index, event in enumerate(doc):
        event_type = event.get("subscriptionType") if isinstance(event, dict) else None
        schema, problem = snowplow_lookup_schema(event_type if isinstance(event_type, str) else None, SCHEMAS, index)
        if problem:
            problems.append(problem)
            continue
        events.append(ue_event(schema, reformat(event), TRACKER_VERSION, querystring))
    return batch_events(events, problems)
