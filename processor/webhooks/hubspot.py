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
    convert_field,
    epoch_to_iso,
    events_or_failure,
    failed,
    iglu_uri,
    input_error,
    json_request,
    lookup_schema,
    not_json,
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
    schema, problem = lookup_schema(
        event.get("subscriptionType"), SCHEMAS, f"[{index}].subscriptionType",
        missing="no `subscriptionType` in the event: cannot determine event type",
        unknown=f"no schema associated with the subscriptionType of event {index}")
    if problem:
        return None, problem
    data = {k: v for k, v in event.items() if k != "subscriptionType"}
    if "occurredAt" in data:
        problem = convert_field(data, "occurredAt", lambda value: epoch_to_iso(value, "ms"),
                                f"[{index}].occurredAt", "epoch milliseconds")
        if problem:
            return None, problem
    return ue_event(schema, data, TRACKER_VERSION, querystring), None


@register(VENDOR, "v1")
def adapt_hubspot(payload: CollectorPayload, querystring: list) -> Adapted:
    """One HubSpot webhook request -> one self-describing event per element, or the failure."""
    doc, failure = json_request(payload, "HubSpot", [JSON_CONTENT_TYPE])
    if failure:
        return failure
    if not isinstance(doc, list):
        return failed(not_json("body", payload.body, "expected a JSON array of HubSpot events"))
    events, problems = [], []
    for index, event in enumerate(doc):
        params, problem = _event(index, event, querystring)
        if problem:
            problems.append(problem)
        else:
            events.append(params)
    return events_or_failure(events, problems,
                             empty=input_error("body", payload.body, "a non-empty array of HubSpot events"))
