"""Olark chat webhooks at ``/com.olark/v1``.

What Olark sends: one ``POST`` per chat, form-encoded
(``application/x-www-form-urlencoded``) with a single field ``data`` holding
the event as JSON: ``kind`` (``"Conversation"``), ``id``, ``items`` (the
messages, each with ``kind``, ``body``, ``timestamp`` as epoch seconds text
such as ``"1473774819.263083"``, and for operator lines ``operatorId`` /
``nickname``), ``visitor`` (``fullName``, ``emailAddress``, ``ip``, ``city``
...), ``groups``, ``tags``, and, for a chat transcript, ``operators``.  An
offline message (left when nobody is online) has no ``operators``.

What Snowplow does (and this module does): the JSON in ``data`` becomes one
self-describing event, ``com.olark/transcript/jsonschema/1-0-0`` when it has
``operators`` and ``com.olark/offline_message/jsonschema/1-0-0`` otherwise;
every ``items[].timestamp`` becomes ISO 8601 with milliseconds
(``2016-09-13T13:53:39.263Z``); the other fields are kept as Olark sent them
(already camelCase).  ``tv`` is ``com.olark-v1``, ``p`` the query string's or
``srv``; ``nuid``, ``aid``, ``cv``, ``eid``, ``ttm``, ``url`` pass through.

Failures (``adapter_failures``): an empty body, a content type other than
form encoding, no ``data`` field, ``data`` that is not a JSON object (a
NotJson message on ``data``) and an item timestamp that is not epoch seconds.
Difference: Snowplow leaves an unparsable item timestamp alone (the event then
fails validation); here it is an adapter failure naming the item.
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    FORM_CONTENT_TYPE,
    Adapted,
    check_content_type,
    decode_form,
    decode_json,
    epoch_to_iso,
    failed,
    iglu_uri,
    input_error,
    not_json,
    require_body,
    ue_event,
)

VENDOR = "com.olark"
TRACKER_VERSION = "com.olark-v1"
TRANSCRIPT = iglu_uri(VENDOR, "transcript")
OFFLINE_MESSAGE = iglu_uri(VENDOR, "offline_message")


@register(VENDOR, "v1")
def adapt_olark(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Olark webhook request -> one transcript or offline_message event, or the failure."""
    problem = require_body(payload.body, "Olark") or check_content_type(payload.content_type, [FORM_CONTENT_TYPE])
    if problem:
        return failed(problem)
    pairs, problem = decode_form(payload.body)
    if problem:
        return failed(problem)
    form = dict(pairs)
    if "data" not in form:
        return failed(input_error("data", None, "an Olark form body with a `data` field"))
    event, problem = decode_json(form["data"], "data")
    if problem:
        return failed(problem)
    if not isinstance(event, dict):
        return failed(not_json("data", form["data"], "expected a JSON object"))
    items = event.get("items")
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict) and "timestamp" in item:
                try:
                    item["timestamp"] = epoch_to_iso(item["timestamp"], "s")
                except ValueError:
                    return failed(input_error(f"items[{index}].timestamp", item["timestamp"],
                                              "epoch seconds such as 1473774819.263083"))
    schema = TRANSCRIPT if "operators" in event else OFFLINE_MESSAGE
    return Adapted(events=[ue_event(schema, event, TRACKER_VERSION, querystring)])
