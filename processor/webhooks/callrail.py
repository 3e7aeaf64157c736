"""CallRail post-call webhooks at ``/com.callrail/v1``.

What CallRail sends: a ``GET`` per completed call with the call as query
parameters (the 2014 webhook API Snowplow supports): ``id``, ``datetime``
(``2014-10-09 16:23:45``, UTC), ``duration`` (seconds), ``answered`` and
``first_call`` (``true``/``false``), ``callernum``, ``callername``,
``callercity`` ..., ``trackingnum``, ``destinationnum``, ``callsource``,
``referrer``, ``landingpage``, ``keywords``, ``gclid``, ``ga``, ``utm_*``,
``utma`` ... ``utmz``, ``recording``, ``ip``; the Snowplow ``aid`` (and ``p``)
can be added to the URL.

What Snowplow does (and this module does): one self-describing event
``com.callrail/call_complete/jsonschema/1-0-2`` from every parameter except
the tracker ones (``nuid``, ``aid``, ``cv``, ``p``, and here also ``eid``,
``ttm``, ``url``), typed: ``answered`` and ``first_call`` booleans,
``duration`` an integer, ``datetime`` ISO 8601 with milliseconds, an empty
value ``null``, the rest strings.  ``tv`` is ``com.callrail-v1``, ``p`` the
query string's or ``srv``; ``nuid``, ``aid``, ``cv``, ``eid``, ``ttm``,
``url`` pass through.

Failures (``adapter_failures``): an empty query string, and a value that is
not of its type (a boolean, integer or date), naming the field.
"""
from __future__ import annotations

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    PASSTHROUGH,
    Adapted,
    failed,
    iglu_uri,
    input_error,
    reformat_timestamp,
    ue_event,
)

VENDOR = "com.callrail"
TRACKER_VERSION = "com.callrail-v1"
CALL_COMPLETE = iglu_uri(VENDOR, "call_complete", "1-0-2")
BOOLEANS = ("answered", "first_call")
INTEGERS = ("duration",)
DATETIMES = ("datetime",)
TRACKER_PARAMS = {*PASSTHROUGH, "p"}


def _typed(name: str, value: str):
    """The JSON value of one parameter (ValueError with the expectation if it is not of its type)."""
    if value == "":
        return None
    if name in BOOLEANS:
        if value.lower() not in ("true", "false"):
            raise ValueError("true or false")
        return value.lower() == "true"
    if name in INTEGERS:
        try:
            return int(value)
        except ValueError:
            raise ValueError("an integer") from None
    if name in DATETIMES:
        try:
            return reformat_timestamp(value, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise ValueError("a date like 2014-10-09 16:23:45") from None
    return value


@register(VENDOR, "v1")
def adapt_callrail(payload: CollectorPayload, querystring: list) -> Adapted:
    """One CallRail webhook request -> one call_complete event, or the failure."""
    if not querystring:
        return failed(input_error("querystring", None, "empty querystring: no CallRail event to process"))
    params = dict(querystring)
    data, problems = {}, []
    for name, value in params.items():
        if name in TRACKER_PARAMS:
            continue
        try:
            data[name] = _typed(name, value)
        except ValueError as exc:
            problems.append(input_error(name, value, str(exc)))
    if problems:
        return failed(*problems)
    return Adapted(events=[ue_event(CALL_COMPLETE, data, TRACKER_VERSION, params)])
