"""StatusGator status-change webhooks at ``/com.statusgator/v1``.

What StatusGator sends: one ``POST`` per status change of a monitored
service, form-encoded (``application/x-www-form-urlencoded``) with
``service_name``, ``favicon_url``, ``status_page_url``, ``home_page_url``,
``current_status`` (``up``, ``warn``, ``down``), ``last_status`` and
``occurred_at`` (ISO 8601, e.g. ``2016-05-19T09:26:31+00:00``).

What Snowplow's enrich 3.9.0 does (and this module does): one self-describing
event ``com.statusgator/status_change/jsonschema/1-0-0`` holding every field of
the form, whatever its name, keys camelCased (``serviceName``,
``currentStatus``, ``occurredAt`` ...), values as sent (a field without ``=``
is ``null``), in the order of the Scala ``Map`` 3.9.0 reads the form into.
``tv`` is ``com.statusgator-v1``, ``p`` the query string's or ``srv``;
``nuid``, ``aid``, ``cv``, ``eid``, ``ttm``, ``url`` pass through.

The body is read as the query of ``java.net.URI`` and Apache's
``URLEncodedUtils`` (as Olark's and Unbounce's): a space or a brace in it
refuses the request with ``URI``'s message.

Failures (``adapter_failures``), 3.9.0's messages: no body or an empty one
(``empty body: no events to process``), no content type or one other than
exactly ``application/x-www-form-urlencoded`` (a ``charset`` parameter too), a
body ``URI`` refuses (``could not parse body: ...``, on the field ``body``).
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    FORM_CONTENT_TYPE,
    Adapted,
    could_not_parse_body,
    exact_content_type,
    failed,
    iglu_uri,
    java_form_params,
    no_body,
    one_event,
    snowplow_camelize,
)
from processor.protocol import scala_map_order

VENDOR = "com.statusgator"
TRACKER_VERSION = "com.statusgator-v1"
STATUS_CHANGE = iglu_uri(VENDOR, "status_change")


@register(VENDOR, "v1")
def adapt_statusgator(payload: CollectorPayload, querystring: list) -> Adapted:
    """One StatusGator webhook request -> one status_change event, or the failure."""
    body = payload.body
    problem = no_body(body) or exact_content_type(payload.content_type, FORM_CONTENT_TYPE)
    if problem:
        return failed(problem)
    fields, error = java_form_params(body)
    if error is not None:
        return failed(could_not_parse_body("body", body, error))
    data = {name: fields[name] for name in scala_map_order(list(fields))}
    return one_event(STATUS_CHANGE, snowplow_camelize(data), TRACKER_VERSION, querystring)
