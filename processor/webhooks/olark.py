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
    Adapted,
    convert_field,
    epoch_to_iso,
    failed,
    form_json_field,
    form_request,
    iglu_uri,
    one_event,
)

VENDOR = "com.olark"
TRACKER_VERSION = "com.olark-v1"
TRANSCRIPT = iglu_uri(VENDOR, "transcript")
OFFLINE_MESSAGE = iglu_uri(VENDOR, "offline_message")


@register(VENDOR, "v1")
def adapt_olark(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Olark webhook request -> one transcript or offline_message event, or the failure."""
    form, failure = form_request(payload, "Olark")
    if failure:
        return failure
    event, problem = form_json_field(form, "data", "an Olark form body with a `data` field", want_object=True)
    if problem:
        return failed(problem)
    items = event.get("items")
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict) and "timestamp" in item:
                problem = convert_field(item, "timestamp", epoch_to_iso, f"items[{index}].timestamp",
                                        "epoch seconds such as 1473774819.263083")
                if problem:
                    return failed(problem)
    schema = TRANSCRIPT if "operators" in event else OFFLINE_MESSAGE
    return one_event(schema, event, TRACKER_VERSION, querystring)
