"""Pingdom alerting webhooks at ``/com.pingdom/v1``.

What Pingdom sends (its legacy webhook): a ``GET`` with no body and no
content type, everything in one query-string parameter ``message``: JSON such
as ``{"check": "1421338", "checkname": "Webhooks_Test", "host":
"example.com", "action": "assign", "incidentid": 3, "description": "down"}``.
``action`` is ``assign`` (an incident opened and assigned),
``notify_user`` (a user notified) or ``notify_of_close`` (the incident
closed).

What Snowplow does (and this module does): one self-describing event with
``com.pingdom/incident_<action>/jsonschema/1-0-0``; ``action`` is removed
from the data (it is the schema now).  Pingdom escapes some characters
oddly; a message that is not JSON is reported as such.  ``tv`` is
``com.pingdom-v1``, ``p`` the query string's or ``srv``, and the usual
tracker parameters pass through from the query string.

Failures (``adapter_failures``): an empty query string, no ``message``,
a ``message`` that is not a JSON object, no ``action`` or an unknown one.
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    Adapted,
    decode_json,
    failed,
    iglu_uri,
    input_error,
    lookup_schema,
    one_event,
    qs_dict,
)

VENDOR = "com.pingdom"
TRACKER_VERSION = "com.pingdom-v1"
SCHEMAS = {action: iglu_uri(VENDOR, f"incident_{action}") for action in ("assign", "notify_user", "notify_of_close")}


@register(VENDOR, "v1")
def adapt_pingdom(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Pingdom alert (query string ``message``) -> one ``e=ue`` event."""
    if not querystring:
        return failed(input_error("querystring", None, "empty querystring: no events to process"))
    params = qs_dict(querystring)
    if "message" not in params:
        return failed(input_error("querystring", "&".join(f"{k}={v}" for k, v in querystring)[:1024],
                                  "no `message` parameter provided"))
    message, problem = decode_json(params["message"], "message")
    if problem:
        return failed(problem)
    if not isinstance(message, dict):
        return failed(input_error("message", params["message"], "a JSON object"))
    schema, problem = lookup_schema(message.get("action"), SCHEMAS, "action", allow_empty=True,
                                    missing="no `action` field in the message: cannot determine event type",
                                    unknown="no schema associated with the provided action")
    if problem:
        return failed(problem)
    data = {k: v for k, v in message.items() if k != "action"}
    return one_event(schema, data, TRACKER_VERSION, querystring)
