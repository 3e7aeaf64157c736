"""Urban Airship (Airship) Connect events at ``/com.urbanairship.connect/v1``.

What Connect sends: a stream of JSON events, one object per event, each with
``id`` (a UUID), ``type`` (``CLOSE``, ``CUSTOM``, ``FIRST_OPEN``,
``IN_APP_MESSAGE_DISPLAY``, ``IN_APP_MESSAGE_EXPIRATION``,
``IN_APP_MESSAGE_RESOLUTION``, ``LOCATION``, ``OPEN``, ``PUSH_BODY``,
``REGION``, ``RICH_DELETE``, ``RICH_DELIVERY``, ``RICH_HEAD``, ``RICH_READ``,
``SEND``, ``TAG_CHANGE``, ``UNINSTALL``), ``occurred`` and ``processed`` (ISO
8601), ``offset``, ``device`` (channels, named user) and a type-specific
``body``.  Snowplow's docs say it is brought in from S3 rather than pushed; the
adapter takes one event per ``POST`` (``application/json``).

What Snowplow does (and this module does): one self-describing event with the
schema ``com.urbanairship.connect/<type>/jsonschema/1-0-0`` whose data is the
Connect event unchanged; ``eid`` is the event's ``id`` and ``ttm`` its
``occurred`` in epoch milliseconds (so the event keeps Connect's identity and
time).  ``tv`` is ``com.urbanairship.connect-v1``, ``p`` the query string's or
``srv``; ``nuid``, ``aid``, ``cv``, ``url`` pass through.

Failures (``adapter_failures``): an empty body, a body that is not a JSON
object (NotJson), no ``type``, an unknown ``type`` (a SchemaMapping message
naming it), and an ``occurred`` that is missing or not ISO 8601.

Differences: ``RICH_HEAD`` is not in Iglu Central; its schema here has
``RICH_READ``'s shape.  Snowplow does not check the content type here either.
"""
from __future__ import annotations

from datetime import datetime

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    Adapted,
    failed,
    iglu_uri,
    input_error,
    json_request,
    lookup_schema,
    one_event,
)

VENDOR = "com.urbanairship.connect"
TRACKER_VERSION = "com.urbanairship.connect-v1"
TYPES = ("CLOSE", "CUSTOM", "FIRST_OPEN", "IN_APP_MESSAGE_DISPLAY", "IN_APP_MESSAGE_EXPIRATION",
         "IN_APP_MESSAGE_RESOLUTION", "LOCATION", "OPEN", "PUSH_BODY", "REGION", "RICH_DELETE", "RICH_DELIVERY",
         "RICH_HEAD", "RICH_READ", "SEND", "TAG_CHANGE", "UNINSTALL")
#: Connect's ``type`` -> the schema of the event.
SCHEMAS = {name: iglu_uri(VENDOR, name) for name in TYPES}


def occurred_millis(text) -> int:
    """``2015-11-26T13:19:08.012Z`` (or with an offset) -> epoch milliseconds; ValueError if not ISO 8601."""
    if not isinstance(text, str) or "T" not in text:
        raise ValueError(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(text)
    return round(moment.timestamp() * 1000)


@register(VENDOR, "v1")
def adapt_urbanairship(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Connect event -> one self-describing event with its id and time, or the failure."""
    event, failure = json_request(payload, "Urban Airship",
                                  object_expectation="expected a JSON object: one Connect event")
    if failure:
        return failure
    schema, problem = lookup_schema(event.get("type"), SCHEMAS, "type")
    if problem:
        return failed(problem)
    try:
        ttm = occurred_millis(event.get("occurred"))
    except ValueError:
        return failed(input_error("occurred", event.get("occurred"), "an ISO 8601 time with a zone"))
    extra = {"ttm": str(ttm)}
    if event.get("id") is not None:
        extra["eid"] = str(event["id"])
    return one_event(schema, event, TRACKER_VERSION, querystring,
                     passthrough=("nuid", "aid", "cv", "url"), extra=extra)
