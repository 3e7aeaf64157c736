"""Mailchimp list webhooks at ``/com.mailchimp/v1``.

What Mailchimp sends: one ``POST`` per list event, form-encoded
(``application/x-www-form-urlencoded``), with ``type`` (``subscribe``,
``unsubscribe``, ``profile``, ``upemail``, ``cleaned``, ``campaign``),
``fired_at`` (``"2009-03-26 21:35:57"``, UTC, no zone) and the details as
bracket keys (``data[email]``, ``data[merges][FNAME]``, ``data[merges][GROUPINGS][0][name]`` ...).

What Snowplow's enrich 3.9.0 does (and this module does): one self-describing
event per request with the schema for ``type`` (subscribe ->
``com.mailchimp/subscribe``, unsubscribe -> ``unsubscribe``, profile ->
``profile_update``, upemail -> ``email_address_change``, cleaned ->
``cleaned_email``, campaign -> ``campaign_sending_status``, all 1-0-0).

* The body is read as the query of ``java.net.URI`` and Apache's
  ``URLEncodedUtils``; the query string's parameters and the body's are one
  map (the body's win).
* The event's data is every parameter of that map with a value but ``nuid``,
  ``aid``, ``cv`` and ``p`` (so the query string's ``eid``, ``url`` ... too):
  each key split on its brackets (``data[merges][FNAME]`` is
  ``data``/``merges``/``FNAME``) into nested objects merged as circe's
  ``deepMerge`` merges them, the parameters taken in the Scala ``Map``'s
  order; every value a string.
* ``fired_at`` becomes ISO 8601 (``2009-03-26T21:35:57.000Z``) when Joda reads
  it as ``yyyy-MM-dd HH:mm:ss``, else stays as sent.
* ``tv`` is ``com.mailchimp-v1``, ``p`` the map's or ``srv``; ``nuid``,
  ``aid``, ``cv``, ``eid``, ``ttm``, ``url`` are copied from the map.

Failures (``adapter_failures``), 3.9.0's messages: no body (``empty body: no
events to process``), no content type or one other than exactly the form's, a
body ``URI`` refuses (its message, on the field ``body``), no ``type`` (``no
`type` parameter provided: cannot determine event type``, with the body), an
empty or unknown ``type`` (the schema mapping).
"""
from __future__ import annotations

import re
from typing import Any

from processor.adapters import CollectorPayload, register
from processor.protocol import scala_map_order
from processor.webhooks._common import (
    Adapted,
    deep_merge,
    failed,
    iglu_uri,
    input_error,
    java_form_body,
    java_form_params,
    joda_datetime_iso,
    snowplow_lookup_schema,
    unstruct,
)

VENDOR = "com.mailchimp"
TRACKER_VERSION = "com.mailchimp-v1"
#: Mailchimp's ``type`` -> the schema of the event, in 3.9.0's declaration order
SCHEMAS = {
    "subscribe": iglu_uri(VENDOR, "subscribe"),
    "unsubscribe": iglu_uri(VENDOR, "unsubscribe"),
    "campaign": iglu_uri(VENDOR, "campaign_sending_status"),
    "cleaned": iglu_uri(VENDOR, "cleaned_email"),
    "upemail": iglu_uri(VENDOR, "email_address_change"),
    "profile": iglu_uri(VENDOR, "profile_update"),
}
_PASSED = ("nuid", "aid", "cv", "eid", "ttm", "url")
_NOT_DATA = frozenset({"nuid", "aid", "cv", "p"})
_KEY_SPLIT = re.compile(r"\]?(?:\[|\])")


def form_keys(name: str) -> list[str]:
    """``name.split("\\]?(\\[|\\])")`` as Java splits: a leading empty part kept, trailing ones dropped."""
    parts = _KEY_SPLIT.split(name)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


@register(VENDOR, "v1")
def adapt_mailchimp(payload: CollectorPayload, querystring: list) -> Adapted:
    """One Mailchimp webhook request -> one ``e=ue`` event, or the failure."""
    body = payload.body
    params, problem = java_form_body(payload, java_form_params)
    if problem:
        return failed(problem)
    event_type = params.get("type")
    if event_type is None:
        return failed(input_error("body", body, "no `type` parameter provided: cannot determine event type"))
    schema, problem = snowplow_lookup_schema(event_type, SCHEMAS)
    if problem:
        return failed(problem)
    if params.get("fired_at") is not None:
        params["fired_at"] = joda_datetime_iso(params["fired_at"])
    merged: dict[str, str | None] = {}
    for name, value in querystring:
        merged[name] = value
    for name, value in params.items():
        merged[name] = value
    ordered = {name: merged[name] for name in scala_map_order(list(merged))}
    data: Any = None
    for name, value in ordered.items():
        if value is None or name in _NOT_DATA:
            continue
        keys = form_keys(name)
        entity: Any = value
        for key in reversed(keys):
            entity = {key: entity}
        data = entity if data is None else deep_merge(data, entity)
    event = {"tv": TRACKER_VERSION, "e": "ue", "p": ordered.get("p") or "srv", "ue_pr": unstruct(schema, data)}
    for name in _PASSED:
        if ordered.get(name) is not None:
            event[name] = ordered[name]
    return Adapted(events=[event])
