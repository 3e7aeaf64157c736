"""StatusGator status-change webhooks at ``/com.statusgator/v1``.

What StatusGator sends: one ``POST`` per status change of a monitored
service, form-encoded (``application/x-www-form-urlencoded``) with
``service_name``, ``favicon_url``, ``status_page_url``, ``home_page_url``,
``current_status`` (``up``, ``warn``, ``down``), ``last_status`` and
``occurred_at`` (ISO 8601, e.g. ``2016-05-19T09:26:31+00:00``).

What Snowplow does (and this module does): one self-describing event
``com.statusgator/status_change/jsonschema/1-0-0`` whose keys are the form's
in camelCase (``serviceName``, ``currentStatus``, ``occurredAt`` ...), values
as sent.  ``tv`` is ``com.statusgator-v1``, ``p`` the query string's or
``srv``; ``nuid``, ``aid``, ``cv``, ``eid``, ``ttm``, ``url`` pass through.

Failures (``adapter_failures``): an empty body, a content type other than form
encoding, a body that cannot be decoded, and a form with none of
StatusGator's fields (which would be an empty event).
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    Adapted,
    failed,
    form_request,
    iglu_uri,
    input_error,
    one_event,
    snake_to_camel,
)

VENDOR = "com.statusgator"
TRACKER_VERSION = "com.statusgator-v1"
STATUS_CHANGE = iglu_uri(VENDOR, "status_change")
FIELDS = ("service_name", "favicon_url", "status_page_url", "home_page_url", "current_status", "last_status",
          "occurred_at")


@register(VENDOR, "v1")
def adapt_statusgator(payload: CollectorPayload, querystring: list) -> Adapted:
    """One StatusGator webhook request -> one status_change event, or the failure."""
    form, failure = form_request(payload, "StatusGator")
    if failure:
        return failure
    if not any(name in form for name in FIELDS):
        return failed(input_error("body", payload.body[:1024],
                                  f"a StatusGator form with at least one of {', '.join(FIELDS)}"))
    data = {snake_to_camel(key): value for key, value in form.items()}
    return one_event(STATUS_CHANGE, data, TRACKER_VERSION, querystring)
