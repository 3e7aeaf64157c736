"""Olark chat webhooks at ``/com.olark/v1``, as Snowplow's enrich 3.9.0 reads them.

What Olark sends: one ``POST`` per chat, form-encoded
(``application/x-www-form-urlencoded``) with a single field ``data`` holding
the event as JSON: ``kind`` (``"Conversation"``), ``id``, ``items`` (the
messages, each with ``kind``, ``body``, ``timestamp`` as epoch seconds text
such as ``"1473774819.263083"``, and for operator lines ``operatorId`` /
``nickname``), ``visitor`` (``fullName``, ``emailAddress``, ``ip``, ``city``,
``chat_feedback`` ...), ``groups``, ``tags``, and, for a chat transcript,
``operators``.  An offline message (left when nobody is online) has no
``operators``.

What Snowplow's enrich 3.9.0 does, and this module does the same: the JSON in
``data`` becomes one self-describing event, ``com.olark/transcript/jsonschema/1-0-0``
when it has ``operators`` and ``com.olark/offline_message/jsonschema/1-0-0``
otherwise; every string ``items[].timestamp`` becomes ISO 8601, its fraction
cut or padded to milliseconds (``1307116657.1`` -> ``2011-06-03T15:57:37.100Z``);
then every key at every depth is camelCased (``chat_feedback`` ->
``chatFeedback``, ``overall_chat`` -> ``overallChat``), order kept.  ``tv`` is
``com.olark-v1``, ``p`` the query string's or ``srv``; ``nuid``, ``aid``,
``cv``, ``eid``, ``ttm``, ``url`` pass through.

The body is read as Snowplow reads it, as the query of a ``java.net.URI``
(:func:`processor.webhooks._common.java_form_fields`).

Failures (``adapter_failures``, one message): no or an empty body, no content
type, a content type other than exactly ``application/x-www-form-urlencoded``
(the message holds no value), a body ``java.net.URI`` refuses (a space, a
brace, a bad escape: the message names the body as its field), no ``data`` field or an empty one, ``data`` that
is not JSON (NotJson with circe's message), an item timestamp with more than
one dot or whose digits are not a Java long.
"""
from __future__ import annotations

from typing import Any

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    FORM_CONTENT_TYPE,
    Adapted,
    circe_json,
    could_not_parse_body,
    exact_content_type,
    failed,
    iglu_uri,
    input_error,
    java_form_fields,
    java_long,
    no_body,
    one_event,
    seconds_to_iso,
    snowplow_camelize,
)

VENDOR = "com.olark"
TRACKER_VERSION = "com.olark-v1"
TRANSCRIPT = iglu_uri(VENDOR, "transcript")
OFFLINE_MESSAGE = iglu_uri(VENDOR, "offline_message")


def olark_timestamp(text: str) -> tuple[str | None, dict | None]:
    """``"1307116661.25"`` -> ``"2011-06-03T15:57:41.250Z"``: ``(iso, None)`` or ``(None, message)``.

    The text is split on dots as Java splits (trailing empty parts dropped);
    seconds and the first three fraction digits (padded with zeros) make the
    milliseconds, which must read as a Java long.
    """
    parts = text.split(".")
    while parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if text and all(p == "" for p in parts):  # only dots: Java's split leaves nothing
        parts = []
    if len(parts) == 1:
        digits = parts[0] + "000"
    elif len(parts) == 2:
        digits = parts[0] + parts[1][:3].ljust(3, "0")
    else:
        return None, input_error("timestamp", text, "unexpected timestamp format")
    millis = java_long(digits)
    if millis is None:
        return None, input_error("timestamp", digits, "cannot be converted to Double")
    iso = _millis_iso(millis)
    if iso is None:
        return None, input_error("timestamp", digits, "cannot be converted to Double")
    return iso, None


def _millis_iso(millis: int) -> str | None:
    seconds, rest = divmod(millis, 1000)
    text = seconds_to_iso(seconds)
    return None if text is None else text[:-4] + f"{rest:03d}Z"


def _transform_timestamps(event: Any) -> tuple[Any, dict | None]:
    # every element of ``items`` (the values of an object too, as circe-optics' ``each`` goes)
    items = event.get("items") if isinstance(event, dict) else None
    if not isinstance(items, (list, dict)):
        return event, None
    new_items = {} if isinstance(items, dict) else []
    for key, item in (items.items() if isinstance(items, dict) else enumerate(items)):
        if isinstance(item, dict) and isinstance(item.get("timestamp"), str):
            iso, problem = olark_timestamp(item["timestamp"])
            if problem:
                return None, problem
            item = {**item, "timestamp": iso}
        if isinstance(new_items, dict):
            new_items[key] = item
        else:
            new_items.append(item)
    return {**event, "items": new_items}, None


@register(VENDOR, "v1")
def adapt_olark(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Olark webhook request -> one transcript or offline_message event, or the failure."""
    body = payload.body
    problem = no_body(body) or exact_content_type(payload.content_type, FORM_CONTENT_TYPE, show_value=False)
    if problem:
        return failed(problem)
    fields, error = java_form_fields(body)
    if error is not None:
        # Snowplow names the body itself as the field
        return failed(could_not_parse_body(body, body, error))
    data = fields.get("data")
    if not data:
        return failed(input_error("data", None, "missing 'data' field"))
    event, problem = circe_json(data, "data")
    if problem:
        return failed(problem)
    schema = TRANSCRIPT if isinstance(event, dict) and "operators" in event else OFFLINE_MESSAGE
    event, problem = _transform_timestamps(event)
    if problem:
        return failed(problem)
    return one_event(schema, snowplow_camelize(event), TRACKER_VERSION, querystring)
