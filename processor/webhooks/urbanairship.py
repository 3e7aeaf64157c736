"""Urban Airship (Airship) Connect events at ``/com.urbanairship.connect/v1``, as Snowplow's enrich 3.9.0 reads them.

What Connect sends: a stream of JSON events, one object per event, each with
``id`` (a UUID), ``type`` (``CLOSE``, ``CUSTOM``, ``FIRST_OPEN``, ``OPEN``,
``SEND``, ``TAG_CHANGE``, ``UNINSTALL`` ...), ``occurred`` and ``processed``
(ISO 8601), ``offset``, ``device`` (channels, named user) and a type-specific
``body``.  The adapter takes one event per ``POST``.

What Snowplow's enrich 3.9.0 does, and this module does the same: a request
with any content type is refused (``expected no content type``: the events
are brought in without one); one self-describing event with the schema
``com.urbanairship.connect/<type>/jsonschema/1-0-0`` whose data is the
Connect event unchanged; ``eid`` is the event's ``id``, ``ttm`` its
``occurred`` in epoch milliseconds and the collector timestamp its
``processed`` time.  ``tv`` is ``com.urbanairship.connect-v1``, ``p`` the
query string's or ``srv``; ``nuid``, ``aid``, ``cv``, ``url`` pass through.
The types are Snowplow's sixteen (``RICH_READ`` is not one of them).

Failures (``adapter_failures``): no body, a content type, a body that is not
JSON (NotJson with circe's message, an empty body included); then, all
reported together, an ``occurred``, ``id`` or ``processed`` that is missing or
not a string (circe's decoding message) and a missing, empty or unknown
``type`` (SchemaMapping).  Where Snowplow's time parser would throw on an
``occurred`` or ``processed`` that is not ISO 8601, this module reports an
InputData message instead.
"""
from __future__ import annotations

from datetime import datetime, timezone

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    Adapted,
    circe_json,
    failed,
    iglu_uri,
    input_error,
    no_body,
    one_event,
    snowplow_lookup_schema,
)

VENDOR = "com.urbanairship.connect"
TRACKER_VERSION = "com.urbanairship.connect-v1"
TYPES = ("CLOSE", "CUSTOM", "FIRST_OPEN", "IN_APP_MESSAGE_DISPLAY", "IN_APP_MESSAGE_EXPIRATION",
         "IN_APP_MESSAGE_RESOLUTION", "LOCATION", "OPEN", "PUSH_BODY", "REGION", "RICH_DELETE", "RICH_DELIVERY",
         "RICH_HEAD", "SEND", "TAG_CHANGE", "UNINSTALL")
#: Connect's ``type`` -> the schema of the event.
SCHEMAS = {name: iglu_uri(VENDOR, name) for name in TYPES}


def occurred_millis(text) -> int:
    """``2015-11-26T13:19:08.012Z`` (or with an offset; no zone is UTC) -> epoch milliseconds;
    ValueError if not ISO 8601."""
    if not isinstance(text, str):
        raise ValueError(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return round(moment.timestamp() * 1000)


def _string_field(event, name: str) -> tuple[str | None, dict | None]:
    """circe's ``get[String](name)``: the value, or the InputData message with its decoding error."""
    if not isinstance(event, dict) or name not in event:
        reason = f"Attempt to decode value on failed cursor: DownField({name})"
    elif not isinstance(event[name], str):
        reason = f"String: DownField({name})"
    else:
        return event[name], None
    return None, input_error(name, None, f"could not extract '{name}': {reason}")


@register(VENDOR, "v1")
def adapt_urbanairship(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Connect event -> one self-describing event with its id and times, or the failure."""
    problem = no_body(payload.body, allow_empty=True)
    if problem:
        return failed(problem)
    if payload.content_type is not None:
        return failed(input_error("contentType", payload.content_type, "expected no content type"))
    event, problem = circe_json(payload.body)
    if problem:
        return failed(problem)
    # every problem is reported, in Snowplow's order
    occurred, p1 = _string_field(event, "occurred")
    event_id, p2 = _string_field(event, "id")
    processed, p3 = _string_field(event, "processed")
    event_type = event.get("type") if isinstance(event, dict) else None
    schema, p4 = snowplow_lookup_schema(event_type if isinstance(event_type, str) else None, SCHEMAS)
    problems = [p for p in (p1, p2, p3, p4) if p]
    if problems:
        return failed(*problems)
    try:
        ttm = occurred_millis(occurred)
    except ValueError:
        return failed(input_error("occurred", occurred, "an ISO 8601 time"))
    try:
        collected = occurred_millis(processed)
    except ValueError:
        return failed(input_error("processed", processed, "an ISO 8601 time"))
    result = one_event(schema, event, TRACKER_VERSION, querystring,
                       passthrough=("nuid", "aid", "cv", "url"), extra={"ttm": str(ttm), "eid": event_id})
    result.collector_tstamp = collected
    return result
