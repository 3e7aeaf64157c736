"""CallRail post-call webhooks at ``/com.callrail/v1``.

What CallRail sends: a ``GET`` per completed call with the call as query
parameters (the 2014 webhook API Snowplow supports): ``id``, ``datetime``
(``2014-10-09 16:23:45``, UTC), ``duration`` (seconds), ``answered`` and
``first_call`` (``true``/``false``), ``callernum``, ``callername``,
``callercity`` ..., ``trackingnum``, ``destinationnum``, ``callsource``,
``referrer``, ``landingpage``, ``keywords``, ``gclid``, ``ga``, ``utm_*``,
``utma`` ... ``utmz``, ``recording``, ``ip``; the Snowplow ``aid`` (and ``p``)
can be added to the URL.

What Snowplow's enrich 3.9.0 does (and this module does): one self-describing
event ``com.callrail/call_complete/jsonschema/1-0-2`` from every parameter
but ``nuid``, ``aid``, ``cv`` and ``p`` (``eid``, ``ttm``, ``url`` stay in the
data too), in the order of the Scala ``Map`` holding the query string, each
value as its ``buildFormatter`` types it: empty (or without ``=``) ``null``;
``answered`` and ``first_call`` ``true``/``false`` exactly as booleans;
``duration`` an integer when ``BigInteger`` reads it; ``datetime`` ISO 8601
with milliseconds when Joda reads it as ``yyyy-MM-dd HH:mm:ss``; anything else
kept as the string sent (the schema judges it).  ``tv`` is ``com.callrail-v1``,
``p`` the query string's or ``srv``; ``nuid``, ``aid``, ``cv``, ``eid``,
``ttm``, ``url`` pass through.

Failures (``adapter_failures``): only an empty query string (``empty querystring``).
"""
from __future__ import annotations

from typing import Any

from processor.adapters import CollectorPayload, register
from processor.webhooks._common import (
    Adapted,
    failed,
    iglu_uri,
    input_error,
    joda_datetime_iso,
    query_map,
    unstruct_event_params,
)

VENDOR = "com.callrail"
TRACKER_VERSION = "com.callrail-v1"
CALL_COMPLETE = iglu_uri(VENDOR, "call_complete", "1-0-2")
BOOLEANS = ("answered", "first_call")
INTEGERS = ("duration",)
DATETIMES = ("datetime",)
NOT_DATA = frozenset({"nuid", "aid", "cv", "p"})


def java_big_integer(text: str) -> int | None:
    """``new BigInteger(text)``: an optional sign then decimal digits of any script; else None."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not all(c.isdecimal() for c in digits):
        return None
    number = int("".join(str(int(c)) for c in digits))
    return -number if text[:1] == "-" else number


def typed(name: str, value: str | None) -> Any:
    """``JsonUtils.toJson`` of one parameter with CallRail's booleans, integers and date."""
    if value is None or value == "":
        return None
    if name in BOOLEANS:
        return {"true": True, "false": False}.get(value, value)
    if name in INTEGERS:
        number = java_big_integer(value)
        return value if number is None else number
    if name in DATETIMES:
        return joda_datetime_iso(value)
    return value


@register(VENDOR, "v1")
def adapt_callrail(payload: CollectorPayload, querystring: list) -> Adapted:
    """One CallRail webhook request -> one call_complete event, or the failure."""
    params = query_map(querystring)
    if not params:
        return failed(input_error("querystring", None, "empty querystring"))
    data = {name: typed(name, value) for name, value in params.items() if name not in NOT_DATA}
    return Adapted(events=[unstruct_event_params(TRACKER_VERSION, CALL_COMPLETE, data, params)])
