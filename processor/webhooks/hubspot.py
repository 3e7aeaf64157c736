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

What Snowplow does (and this module does): one self-describing event per
array element, with the schema for its ``subscriptionType``
(``com.hubspot/<object>_creation``, ``<object>_deletion``, and
``<object>_change`` for ``propertyChange``, all 1-0-0);
``subscriptionType`` is removed from the data and ``occurredAt`` becomes ISO
8601 with milliseconds.  ``tv`` is ``com.hubspot-v1``, ``p`` the query
string's or ``srv``; ``nuid``, ``aid``, ``cv``, ``eid``, ``ttm``, ``url``
pass through.

Failures (``adapter_failures``): an empty body, a content type other than
JSON, a body that is not a JSON array of objects, and per element (the whole
request then fails, one message per bad element, as Snowplow does): no
``subscriptionType``, an unknown one (SchemaMapping), an ``occurredAt`` that
is not epoch milliseconds.
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    JSON_CONTENT_TYPE,
    Adapted,
    check_content_type,
    decode_json,
    epoch_to_iso,
    failed,
    iglu_uri,
    input_error,
    not_json,
    require_body,
    schema_mapping,
    ue_event,
)

VENDOR = "com.hubspot"
TRACKER_VERSION = "com.hubspot-v1"
#: HubSpot's ``subscriptionType`` -> the schema of the event.
SCHEMAS = {
    f"{obj}.{change}": iglu_uri(VENDOR, f"{obj}_{name}")
    for obj in ("contact", "company", "deal")
    for change, name in (("creation", "creation"), ("deletion", "deletion"), ("propertyChange", "change"))
}


def _event(index: int, event, querystring: list) -> tuple[dict | None, dict | None]:
    """The parameters of one array element, or the message saying why not."""
    if not isinstance(event, dict):
        return None, input_error(f"[{index}]", event, "a HubSpot event object")
    event_type = event.get("subscriptionType")
    if not isinstance(event_type, str) or not event_type:
        return None, input_error(f"[{index}].subscriptionType", None,
                                 "no `subscriptionType` in the event: cannot determine event type")
    schema = SCHEMAS.get(event_type)
    if schema is None:
        return None, schema_mapping(event_type, SCHEMAS, f"no schema associated with the subscriptionType of event {index}")
    data = {k: v for k, v in event.items() if k != "subscriptionType"}
    if "occurredAt" in data:
        try:
            data["occurredAt"] = epoch_to_iso(data["occurredAt"], "ms")
        except ValueError:
            return None, input_error(f"[{index}].occurredAt", data["occurredAt"], "epoch milliseconds")
    return ue_event(schema, data, TRACKER_VERSION, querystring), None


@register(VENDOR, "v1")
def adapt_hubspot(payload: CollectorPayload, querystring: list) -> Adapted:
    """One HubSpot webhook request -> one self-describing event per element, or the failure."""
    problem = require_body(payload.body, "HubSpot") or check_content_type(payload.content_type, [JSON_CONTENT_TYPE])
    if problem:
        return failed(problem)
    doc, problem = decode_json(payload.body)
    if problem:
        return failed(problem)
    if not isinstance(doc, list):
        return failed(not_json("body", payload.body, "expected a JSON array of HubSpot events"))
    events, problems = [], []
    for index, event in enumerate(doc):
        params, problem = _event(index, event, querystring)
        if problem:
            problems.append(problem)
        else:
            events.append(params)
    if problems:
        return failed(*problems)
    if not events:
        return failed(input_error("body", payload.body, "a non-empty array of HubSpot events"))
    return Adapted(events=events)
