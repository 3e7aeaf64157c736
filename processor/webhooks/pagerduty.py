"""PagerDuty (v1) incident webhooks at ``/com.pagerduty/v1``.

What PagerDuty sends: a ``POST`` with ``Content-Type: application/json`` and
``{"messages": [...]}``, each message ``{"type": "incident.trigger", "id",
"created_on", "data": {"incident": {...}}}``; the types are
``incident.trigger``, ``incident.acknowledge``, ``incident.unacknowledge``,
``incident.resolve``, ``incident.assign``, ``incident.escalate`` and
``incident.delegate``.

What Snowplow's enrich 3.9.0 does (and this module does): one self-describing
event per message, all with ``com.pagerduty/incident/jsonschema/1-0-0``,
reshaped in every object reached through objects (not inside arrays): the
string ``"null"`` becomes JSON ``null``, a string ``type`` loses every
``incident.`` (``"trigger"``), a ``created_on`` or ``last_status_change_on``
ending in `` 00:00`` (a ``+`` read as a space on the way) ends in ``+00:00``;
each such object's keys come out in the order of the Scala ``Map`` it is
rebuilt into.  ``tv`` is ``com.pagerduty-v1``, ``p`` the query string's or
``srv``, and ``nuid``, ``aid``, ``cv``, ``eid``, ``ttm``, ``url`` pass through
from the query string.

Failures (``adapter_failures``), 3.9.0's messages: no body, no content type or
one other than exactly ``application/json``, a body that is not JSON
(``invalid json: ...``), no ``messages`` array (``field `messages` is not an
array``), an empty one (``empty list of events``), a message without a string
``type`` or with an unknown one (the schema mapping, ``at index N``); every
message's problem is reported.
"""
from __future__ import annotations

import re
from typing import Any

from processor.adapters import CollectorPayload, register
from processor.protocol import scala_map_order
from processor.webhooks._common import (
    JSON_CONTENT_TYPE,
    Adapted,
    batch_events,
    circe_json,
    exact_content_type,
    failed,
    iglu_uri,
    input_error,
    no_body,
    snowplow_lookup_schema,
    ue_event,
)

VENDOR = "com.pagerduty"
TRACKER_VERSION = "com.pagerduty-v1"
SCHEMA = iglu_uri(VENDOR, "incident")
EVENT_TYPES = ("incident.trigger", "incident.acknowledge", "incident.unacknowledge", "incident.resolve",
               "incident.assign", "incident.escalate", "incident.delegate")
SCHEMAS = {event_type: SCHEMA for event_type in EVENT_TYPES}
_LOST_PLUS = re.compile(r" 00:00$")


def reformat(doc: Any) -> Any:
    """3.9.0's ``reformatParameters`` of one message."""
    if not isinstance(doc, dict):
        return doc
    out = {}
    for key in scala_map_order(list(doc)):
        value = doc[key]
        if value == "null":
            value = None
        elif key == "type" and isinstance(value, str):
            value = value.replace("incident.", "")
        elif key in ("created_on", "last_status_change_on") and isinstance(value, str):
            value = _LOST_PLUS.sub("+00:00", value)
        elif isinstance(value, dict):
            value = reformat(value)
        out[key] = value
    return out


@register(VENDOR, "v1")
def adapt_pagerduty(payload: CollectorPayload, querystring: list) -> Adapted:
    """One PagerDuty webhook request -> one ``e=ue`` event per message."""
    body = payload.body
    problem = no_body(body, allow_empty=True) or exact_content_type(payload.content_type, JSON_CONTENT_TYPE)
    if problem:
        return failed(problem)
    doc, problem = circe_json(body)
    if problem:
        return failed(problem)
    messages = doc.get("messages") if isinstance(doc, dict) else None
    if not isinstance(messages, list):
        return failed(input_error("messages", body, "field `messages` is not an array"))
    events, errors = [], []
    for index, message in enumerate(messages):
        event_type = message.get("type") if isinstance(message, dict) else None
        schema, problem = snowplow_lookup_schema(event_type if isinstance(event_type, str) else None, SCHEMAS, index)
        if problem:
            errors.append(problem)
            continue
        events.append(ue_event(schema, reformat(message), TRACKER_VERSION, querystring))
    return batch_events(events, errors)
