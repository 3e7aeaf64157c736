"""The Iglu webhook: ``/com.snowplowanalytics.iglu/v1``, any self-describing event over GET or POST.

For systems that let you shape your own postbacks.  Three ways in, as
Snowplow's Iglu webhook documents them:

1. ``GET ...?schema=<iglu uri>&name=value...``: the query string minus the
   tracker parameters is the event's data.  Every value is a string; an empty
   value (``source=``) becomes ``null``, as Snowplow's adapter does.
2. ``POST ...?schema=<iglu uri>`` with a body:

   * ``application/json`` (or ``application/json; charset=utf-8``): a JSON
     object is the data of one event; a JSON array gives one event per element
     (each an object).  Values keep their JSON types.
   * ``application/x-www-form-urlencoded``: the form's name-value pairs are the
     data, typed as in GET (strings, empty -> ``null``).

3. ``POST`` without ``schema``, body ``{"schema": <iglu uri>, "data": {...}}``
   (or an array of them, one event each), JSON content type only.

Every event is ``e=ue`` with ``tv=com.snowplowanalytics.iglu-v1``; ``p`` is the
query string's ``p`` when given.  The tracker parameters ``nuid``, ``aid``,
``cv``, ``eid``, ``ttm``, ``url`` (and ``p``, ``schema``) are taken from the
query string and are not part of the event's data; in form mode the same names
in the body are also taken out of the data and used when the query string does
not have them.

The content types are compared whole and lower-cased (the collector lower-cases
the header), as Snowplow does: ``application/json;charset=utf-8`` without the
space is refused.

Failures (``adapter_failures``, InputData messages unless said):

* no ``schema`` and no body: ``schema`` "empty `schema` field" and ``body``
  "empty body" (two messages);
* a ``schema`` that is not an Iglu URI: ``schema`` with the value, "INVALID_IGLUURI";
* a body without a content type or with another one: ``contentType``, "expected
  one of application/json, application/json; charset=utf-8,
  application/x-www-form-urlencoded" (only the two JSON ones when there is no
  ``schema`` parameter, since then the body must be self-describing JSON);
* a body that is not JSON: NotJson on ``body``;
* ``{}``: ``body`` "has no key-value pairs"; ``[]``: ``body`` "empty array of events";
* without ``schema``, a body that is not self-describing JSON: ``body`` (or
  ``body[i]`` in an array) naming what is missing; an array element that is
  not an object: ``body[i]``;
* a form body with no ``schema`` parameter: ``contentType``, since without
  ``schema`` only self-describing JSON is read.

Differences from Snowplow: the default platform.  Snowplow's documentation says
``srv``; its adapter sets ``app`` for GET and ``srv`` for form-encoded POSTs.
We follow the adapter for those two and use ``app`` for JSON bodies as well.
"""
from __future__ import annotations

from typing import Any

from ext import CollectorPayload
from processor.adapters import Adapted, register
from processor.iglu import IgluParseError, parse_schema_key
from processor.webhooks._common import (
    FORM_CONTENT_TYPE,
    PASSTHROUGH,
    decode_form,
    decode_json,
    failed,
    input_error,
    qs_dict,
    ue_event,
)

VENDOR = "com.snowplowanalytics.iglu"
VERSION = "v1"
TRACKER_VERSION = "com.snowplowanalytics.iglu-v1"
JSON_TYPES = ("application/json", "application/json; charset=utf-8")
ALL_TYPES = (*JSON_TYPES, FORM_CONTENT_TYPE)
#: Query-string names that are never part of the event's data.
TRACKER_NAMES = frozenset(("schema", "p", *PASSTHROUGH))
GET_PLATFORM = "app"
FORM_PLATFORM = "srv"
JSON_PLATFORM = "app"


def _expect(types: tuple[str, ...]) -> str:
    return "expected one of " + ", ".join(types)


def _string_data(pairs) -> dict[str, Any]:
    """Name-value pairs as event data: strings, an empty value as null; tracker names left out."""
    return {k: (v if v != "" else None) for k, v in pairs if k not in TRACKER_NAMES}


def _schema_error(schema: str) -> dict | None:
    try:
        parse_schema_key(schema)
    except IgluParseError:
        return input_error("schema", schema, "INVALID_IGLUURI")
    return None


def _events(schema_and_data: list[tuple[str, Any]], qs: dict[str, str], platform: str) -> Adapted:
    return Adapted(events=[ue_event(schema, data, TRACKER_VERSION, qs, platform=platform)
                           for schema, data in schema_and_data])


@register(VENDOR, VERSION)
def adapt_iglu(payload: CollectorPayload, querystring: list) -> Adapted:
    """One or more self-describing events from a GET query string or a POST body (see the module)."""
    qs = qs_dict(querystring)
    body = payload.body
    schema = qs.get("schema")
    content_type = (payload.content_type or "").strip().lower() or None

    if schema is None or schema == "":
        if not body:
            return failed(input_error("schema", None, "empty `schema` field"), input_error("body", None, "empty body"))
        return _self_describing_body(body, content_type, payload.content_type, qs)

    if (err := _schema_error(schema)) is not None:
        return failed(err)
    if not body:
        return _events([(schema, _string_data(querystring))], qs, GET_PLATFORM)
    if content_type not in ALL_TYPES:
        return failed(input_error("contentType", payload.content_type, _expect(ALL_TYPES)))
    if content_type == FORM_CONTENT_TYPE:
        pairs, err = decode_form(body)
        if err is not None:
            return failed(err)
        # pass-through names in the form body count when the query string lacks them
        merged = {k: v for k, v in pairs if k in TRACKER_NAMES and k != "schema"}
        merged.update(qs)
        return _events([(schema, _string_data(pairs))], merged, FORM_PLATFORM)

    doc, err = decode_json(body)
    if err is not None:
        return failed(err)
    items, err = _json_items(doc, body)
    if err is not None:
        return failed(err)
    bad = [input_error(f"body[{i}]", _short(item), "a JSON object") for i, item in enumerate(items)
           if not isinstance(item, dict)]
    if bad:
        return failed(*bad)
    return _events([(schema, item) for item in items], qs, JSON_PLATFORM)


def _json_items(doc: Any, body: str) -> tuple[list, dict | None]:
    """The events of a JSON body: an array's elements, or the one document."""
    if isinstance(doc, list):
        if not doc:
            return [], input_error("body", body, "empty array of events")
        return doc, None
    if isinstance(doc, dict) and not doc:
        return [], input_error("body", body, "has no key-value pairs")
    return [doc], None


def _short(value: Any) -> str:
    from processor import jsontext
    return jsontext.dumps(value)[:1024]


def _self_describing_body(body: str, content_type: str | None, raw_content_type: str | None,
                          qs: dict[str, str]) -> Adapted:
    """Mode 3: no ``schema`` parameter, the body is self-describing JSON (one or an array)."""
    if content_type not in JSON_TYPES:
        return failed(input_error("contentType", raw_content_type, _expect(JSON_TYPES)))
    doc, err = decode_json(body)
    if err is not None:
        return failed(err)
    items, err = _json_items(doc, body)
    if err is not None:
        return failed(err)
    errors, pairs = [], []
    for i, item in enumerate(items):
        where = f"body[{i}]" if isinstance(doc, list) else "body"
        if not isinstance(item, dict) or not isinstance(item.get("schema"), str) or "data" not in item:
            errors.append(input_error(where, _short(item),
                                      "self-describing JSON: an object with a schema (Iglu URI) and data"))
            continue
        if (schema_err := _schema_error(item["schema"])) is not None:
            errors.append(schema_err)
            continue
        pairs.append((item["schema"], item["data"]))
    if errors:
        return failed(*errors)
    return _events(pairs, qs, JSON_PLATFORM)
