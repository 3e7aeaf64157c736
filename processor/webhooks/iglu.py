"""The Iglu webhook: ``/com.snowplowanalytics.iglu/v1``, any self-describing event over GET or POST.

For systems that let you shape your own postbacks.  Three ways in, as
Snowplow's enrich 3.9.0 reads them (and this module does):

1. ``GET ...?schema=<iglu uri>&name=value...`` (no body): the query string but
   ``schema``, ``nuid``, ``aid``, ``cv`` and ``p`` is the event's data (``eid``,
   ``ttm``, ``url`` stay in it), in the order of the Scala ``Map`` holding the
   query string; every value a string, an empty one (or one without ``=``)
   ``null``.  Platform ``app``.
2. ``POST ...?schema=<iglu uri>`` with a body, by its content type, compared
   exactly:

   * ``application/json`` or ``application/json; charset=utf-8``: a JSON array
     gives one event per element, whatever each element is; anything else must
     be a non-empty object, the one event's data.  Platform ``app``.
   * ``application/x-www-form-urlencoded``: the body, read as Olark's (the
     query of a ``java.net.URI``), is the data, every field kept (tracker names
     too), a value as sent (``""`` stays ``""``), a field without ``=``
     ``null``, in the order of the Scala ``Map`` holding them.  Platform ``srv``.

3. ``POST`` without ``schema``, the body one self-describing JSON
   ``{"schema": <iglu uri>, "data": ...}`` (not an array), content type
   ``application/json`` or ``application/json; charset=utf-8``.  Platform ``app``.

Every event is ``e=ue`` with ``tv=com.snowplowanalytics.iglu-v1``; ``p`` is the
query string's when given; ``nuid``, ``aid``, ``cv``, ``eid``, ``ttm``, ``url``
pass through from the query string (an empty one too).

Failures (``adapter_failures``), 3.9.0's messages:

* a body without a content type, with or without ``schema``: ``contentType``,
  "expected one of application/json, application/json; charset=utf-8,
  application/x-www-form-urlencoded";
* no ``schema`` and no body: "empty `schema` field" and "empty body";
* a ``schema`` that is not an Iglu URI: its parse error's code
  (``INVALID_IGLUURI``, ``INVALID_SCHEMAVER``);
* another content type: the three (with ``schema``) or the two JSON ones
  (without) expected;
* a body that is not JSON (``invalid json: ...``), an empty array (``empty array
  of events``), an object without keys or a scalar (``has no key-value pairs``),
  a body ``URI`` refuses (its message), JSON that is not self-describing (a
  NotIglu message: the JSON and the parse error's code).
"""
from __future__ import annotations

from typing import Any

from ext import CollectorPayload
from processor.adapters import Adapted, register
from processor.iglu import IgluParseError, NotIglu, parse_schema_key, parse_self_describing
from processor.protocol import scala_map_order
from processor.webhooks._common import (
    FORM_CONTENT_TYPE,
    circe_json,
    failed,
    input_error,
    java_form_params,
    query_map,
    unstruct_event_params,
)

VENDOR = "com.snowplowanalytics.iglu"
VERSION = "v1"
TRACKER_VERSION = "com.snowplowanalytics.iglu-v1"
JSON_TYPES = ("application/json", "application/json; charset=utf-8")
ALL_TYPES = (*JSON_TYPES, FORM_CONTENT_TYPE)
NOT_DATA = frozenset({"nuid", "aid", "cv", "p"})


def _expect(types: tuple[str, ...]) -> str:
    return "expected one of " + ", ".join(types)


def _event(schema: str, data: Any, params: dict[str, str | None], platform: str) -> dict[str, str]:
    """``toUnstructEventParams`` with the Iglu adapter's tracker version."""
    return unstruct_event_params(TRACKER_VERSION, schema, data, params, platform)


@register(VENDOR, VERSION)
def adapt_iglu(payload: CollectorPayload, querystring: list) -> Adapted:
    """One or more self-describing events from a GET query string or a POST body (see the module)."""
    params = query_map(querystring)
    body, content_type = payload.body, payload.content_type
    schema = params.get("schema")
    if body is not None and content_type is None:
        return failed(input_error("contentType", None, _expect(ALL_TYPES)))
    if schema is None:
        if body is None:
            return failed(input_error("schema", None, "empty `schema` field"), input_error("body", None, "empty body"))
        if content_type not in JSON_TYPES:
            return failed(input_error("contentType", content_type, _expect(JSON_TYPES)))
        doc, problem = circe_json(body)
        if problem:
            return failed(problem)
        if not isinstance(doc, dict):  # a JSON string is not read again as JSON text: Snowplow's NotIglu
            return failed(NotIglu(doc, "INVALID_DATA_PAYLOAD").to_json())
        parsed = parse_self_describing(doc, max_depth=None)
        if not isinstance(parsed, tuple):  # NotIglu
            return failed(parsed.to_json())
        key, data = parsed
        return Adapted(events=[_event(str(key), data, params, "app")])
    try:
        parse_schema_key(schema)
    except IgluParseError as exc:
        return failed(input_error("schema", schema, exc.code))
    rest = {name: value for name, value in params.items() if name != "schema"}
    if body is None:
        data = {name: (value or None) for name, value in rest.items() if name not in NOT_DATA}
        return Adapted(events=[_event(schema, data, rest, "app")])
    if content_type in JSON_TYPES:
        doc, problem = circe_json(body)
        if problem:
            return failed(problem)
        if isinstance(doc, list):
            if not doc:
                return failed(input_error("body", body, "empty array of events"))
            return Adapted(events=[_event(schema, item, rest, "app") for item in doc])
        if not isinstance(doc, dict) or not doc:
            return failed(input_error("body", body, "has no key-value pairs"))
        return Adapted(events=[_event(schema, doc, rest, "app")])
    if content_type == FORM_CONTENT_TYPE:
        fields, error = java_form_params(body)
        if error is not None:
            return failed(input_error("body", body, error))
        data = {name: fields[name] for name in scala_map_order(list(fields))}
        return Adapted(events=[_event(schema, data, rest, "srv")])
    return failed(input_error("contentType", content_type, _expect(ALL_TYPES)))
