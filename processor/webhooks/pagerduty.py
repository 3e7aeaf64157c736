"""PagerDuty (v1) incident webhooks at ``/com.pagerduty/v1``.

What PagerDuty sends: a ``POST`` with ``Content-Type: application/json`` and
``{"messages": [...]}``, each message ``{"type": "incident.trigger", "id",
"created_on", "data": {"incident": {...}}}``; the types are
``incident.trigger``, ``incident.acknowledge``, ``incident.unacknowledge``,
``incident.resolve``, ``incident.assign``, ``incident.escalate`` and
``incident.delegate``.

What Snowplow does (and this module does): one self-describing event per
message, all with ``com.pagerduty/incident/jsonschema/1-0-0``; ``type`` loses
its ``incident.`` prefix (``"trigger"``), the string ``"null"`` anywhere
becomes JSON ``null``, and a date whose ``+`` was turned into a space on the
way (``2014-11-12T18:53:47 00:00``) gets its ``+`` back.  ``tv`` is
``com.pagerduty-v1``, ``p`` the query string's or ``srv``, and the usual
tracker parameters pass through from the query string.

Failures (``adapter_failures``, the whole request fails when one message
does): empty body, a content type that is not JSON, a body that is not JSON,
no ``messages`` array, a message without ``type`` or with an unknown one
(naming its index).
"""
from __future__ import annotations

import re
from typing import Any

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    JSON_CONTENT_TYPE,
    Adapted,
    events_or_failure,
    failed,
    iglu_uri,
    indexed_schema,
    input_error,
    json_request,
    ue_event,
)

VENDOR = "com.pagerduty"
TRACKER_VERSION = "com.pagerduty-v1"
SCHEMA = iglu_uri(VENDOR, "incident")
EVENT_TYPES = ("incident.trigger", "incident.acknowledge", "incident.unacknowledge", "incident.resolve",
               "incident.assign", "incident.escalate", "incident.delegate")
SCHEMAS = {event_type: SCHEMA for event_type in EVENT_TYPES}
_LOST_PLUS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?) (\d\d:\d\d)$")


def reformat(doc: Any) -> Any:
    """``"null"`` -> None and ``... 00:00`` -> ``...+00:00`` at every depth."""
    if isinstance(doc, dict):
        return {k: reformat(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [reformat(v) for v in doc]
    if doc == "null":
        return None
    if isinstance(doc, str):
        match = _LOST_PLUS.match(doc)
        if match:
            return f"{match.group(1)}+{match.group(2)}"
    return doc


@register(VENDOR, "v1")
def adapt_pagerduty(payload: CollectorPayload, querystring: list) -> Adapted:
    """One PagerDuty webhook request -> one ``e=ue`` event per message."""
    doc, failure = json_request(payload, "PagerDuty", [JSON_CONTENT_TYPE])
    if failure:
        return failure
    messages = doc.get("messages") if isinstance(doc, dict) else None
    if not isinstance(messages, list) or not messages:
        return failed(input_error("messages", None if messages is None else str(messages)[:1024],
                                  "a non-empty `messages` array of PagerDuty messages"))
    events, errors = [], []
    for index, message in enumerate(messages):
        event_type = message.get("type") if isinstance(message, dict) else None
        schema, problem = indexed_schema(event_type, SCHEMAS, f"messages[{index}].type", "PagerDuty", index)
        if problem:
            errors.append(problem)
            continue
        data = reformat(message)
        data["type"] = event_type.removeprefix("incident.")
        events.append(ue_event(schema, data, TRACKER_VERSION, querystring))
    return events_or_failure(events, errors)
