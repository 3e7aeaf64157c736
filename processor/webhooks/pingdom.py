"""Pingdom alerting webhooks at ``/com.pingdom/v1``.

What Pingdom sends (its legacy webhook): a ``GET`` with no body and no
content type, everything in one query-string parameter ``message``: JSON such
as ``{"check": "1421338", "checkname": "Webhooks_Test", "host":
"example.com", "action": "assign", "incidentid": 3, "description": "down"}``.
``action`` is ``assign`` (an incident opened and assigned),
``notify_user`` (a user notified) or ``notify_of_close`` (the incident
closed).

What Snowplow's enrich 3.9.0 does (and this module does): one self-describing
event with ``com.pingdom/incident_<action>/jsonschema/1-0-0``; ``action`` is
removed from the data, the other keys kept in order.  ``tv`` is
``com.pingdom-v1``, ``p`` the query string's or ``srv``, and ``nuid``,
``aid``, ``cv``, ``eid``, ``ttm``, ``url`` pass through from the query string.

Failures (``adapter_failures``), 3.9.0's messages: an empty query string; any
parameter whose value looks like a Python unicode tuple (``(u'apps',)``:
``should not pass regex \\(u'(.+)',\\)``, every such parameter named); no
``message`` (the query string, read into a Scala ``Map``, written back as
``k=v&...``); a ``message`` that is not JSON (``invalid json: ...``); no
string ``action``, an empty or unknown one (the schema mapping).
"""
from __future__ import annotations

import re

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    Adapted,
    circe_json,
    failed,
    iglu_uri,
    input_error,
    query_map,
    snowplow_lookup_schema,
    unstruct_event_params,
)

VENDOR = "com.pingdom"
TRACKER_VERSION = "com.pingdom-v1"
SCHEMAS = {action: iglu_uri(VENDOR, f"incident_{action}") for action in ("assign", "notify_user", "notify_of_close")}
PYTHON_UNICODE = re.compile(r"\(u'(.+)',\)", re.DOTALL)
PYTHON_UNICODE_TEXT = r"\(u'(.+)',\)"


@register(VENDOR, "v1")
def adapt_pingdom(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Pingdom alert (query string ``message``) -> one ``e=ue`` event."""
    if not querystring:
        return failed(input_error("querystring", None, "empty querystring: no events to process"))
    problems = []
    for name, value in querystring:
        match = PYTHON_UNICODE.fullmatch(value) if value is not None else None
        if match:
            problems.append(input_error(name, match.group(1), f"should not pass regex {PYTHON_UNICODE_TEXT}"))
    if problems:
        return failed(*problems)
    params = query_map(querystring)
    text = params.get("message")
    if text is None:
        written = "&".join(f"{k}={'null' if v is None else v}" for k, v in params.items())
        return failed(input_error("querystring", written, "no `message` parameter provided"))
    message, problem = circe_json(text, "message")
    if problem:
        return failed(problem)
    action = message.get("action") if isinstance(message, dict) else None
    schema, problem = snowplow_lookup_schema(action if isinstance(action, str) else None, SCHEMAS)
    if problem:
        return failed(problem)
    data = {k: v for k, v in message.items() if k != "action"}
    return Adapted(events=[unstruct_event_params(TRACKER_VERSION, schema, data, params)])
