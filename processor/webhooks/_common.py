"""Helpers shared by the webhook adapters (Iglu, remote and the vendors).

Every vendor adapter does the same few things around its own mapping:

* checks the request: a body is there (:func:`require_body`), its content type
  is one the vendor sends (:func:`check_content_type`, :func:`media_type`);
* decodes the body: form encoding (:func:`parse_form`, :func:`form_dict`, with
  ``ext.parse_query_string`` doing the percent-decoding), bracket keys such as
  ``data[merges][EMAIL]`` into nested objects (:func:`brackets_to_nested`), or
  JSON (:func:`parse_json`);
* reshapes fields as Snowplow does: ``camelCase`` <-> ``snake_case``
  (:func:`camel_to_snake`, :func:`snake_to_camel`, :func:`keys_to_snake`,
  :func:`keys_to_camel`), timestamps to ISO 8601 with milliseconds and ``Z``
  (:func:`epoch_to_iso`, :func:`reformat_timestamp`, :data:`ISO_FORMAT`);
* emits each event as a self-describing ``ue`` event in tracker-protocol
  parameters (:func:`ue_event`): ``e=ue``, ``ue_pr`` (the ``unstruct_event``
  envelope around ``{"schema": <vendor schema>, "data": ...}``), ``tv``, ``p``
  (the request's own ``p`` or the adapter's default) and the pass-through
  parameters :data:`PASSTHROUGH` taken from the query string;
* reports bad input as an ``adapter_failures`` failure (:func:`failed`) whose
  messages have Snowplow's ``AdapterFailure`` shapes: :func:`input_error`
  (InputData: field, value, expectation), :func:`not_json` (NotJson: field,
  value, error) and :func:`schema_mapping` (SchemaMapping: actual,
  expectedMapping, expectation) for an unknown event type.

Nothing here raises on bad input that an adapter would have to catch, except
the decoders (:func:`parse_form`, :func:`parse_json`), which raise
``ValueError`` with a message fit for a bad row; :func:`decode_form` and
:func:`decode_json` return ``(value, failure)`` instead.
"""
from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import ext
from processor import jsontext
from processor.protocol import scala_map_order
from processor.adapters import ADAPTER_FAILURES, UNSTRUCT_SCHEMA, Adapted, Failure, input_error, strip_instance_etc

__all__ = [
    "Adapted",
    "Failure",
    "FORM_CONTENT_TYPE",
    "ISO_FORMAT",
    "JSON_CONTENT_TYPE",
    "PASSTHROUGH",
    "brackets_to_nested",
    "camel_to_snake",
    "check_content_type",
    "check_request",
    "convert_field",
    "decode_form",
    "decode_json",
    "decode_json_object",
    "epoch_to_iso",
    "events_or_failure",
    "failed",
    "form_dict",
    "form_json_field",
    "form_request",
    "iglu_uri",
    "indexed_schema",
    "input_error",
    "json_request",
    "keys_to_camel",
    "keys_to_snake",
    "lookup_schema",
    "media_type",
    "not_json",
    "one_event",
    "parse_form",
    "parse_json",
    "qs_dict",
    "reformat_timestamp",
    "require_body",
    "schema_mapping",
    "snake_to_camel",
    "ue_event",
    "unstruct",
]

#: Tracker parameters a webhook request's query string may carry and Snowplow
#: copies onto every event of the request.
PASSTHROUGH = ("nuid", "aid", "cv", "eid", "ttm", "url")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"
#: Snowplow's output format for reformatted timestamps (always UTC, milliseconds).
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.{ms:03d}Z"


# -- failures -----------------------------------------------------------------

def not_json(field_name: str, value: Any, error: str) -> dict:
    """Snowplow's NotJson message: ``field`` held ``value``, which did not parse."""
    return {"field": field_name, "value": None if value is None else str(value)[:1024], "error": str(error)[:256]}


def schema_mapping(actual: Any, expected_mapping: Mapping[str, str], expectation: str) -> dict:
    """Snowplow's SchemaMapping message: an event type with no schema in the adapter's mapping."""
    mapping = {k: expected_mapping[k] for k in scala_map_order(list(expected_mapping))}  # a Scala Map's order
    return {"actual": None if actual is None else str(actual), "expectedMapping": mapping,
            "expectation": expectation[:256]}


def failed(*messages: dict) -> Adapted:
    """An ``adapter_failures`` ``Adapted`` with these messages (vendor/version are filled in by ``adapt``)."""
    return Adapted(failure=Failure(ADAPTER_FAILURES, list(messages)))


# -- request checks -------------------------------------------------------------

def qs_dict(querystring: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The query-string pairs as a dict; a repeated name keeps its last value."""
    return dict(querystring)


def media_type(content_type: str | None) -> str:
    """``"application/json"`` for ``"Application/JSON; charset=UTF-8"``; ``""`` for none."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def check_content_type(content_type: str | None, accepted: Iterable[str], *,
                       exact: bool = False) -> dict | None:
    """None when the content type is accepted, else the InputData message saying so.

    By default the media type is compared (parameters such as ``charset`` are
    ignored, case-insensitively); with ``exact=True`` the whole header value must
    be one of ``accepted`` (case-insensitive), as some of Snowplow's adapters do.
    """
    accepted = tuple(accepted)
    if exact:
        ok = (content_type or "").strip().lower() in {a.lower() for a in accepted}
    else:
        ok = media_type(content_type) in {media_type(a) for a in accepted}
    if ok:
        return None
    return input_error("contentType", content_type, f"expected one of {', '.join(accepted)}")


def require_body(body: str | None, vendor_name: str) -> dict | None:
    """None when there is a body, else the message Snowplow gives for an empty one."""
    if body:
        return None
    return input_error("body", None, f"empty body: no {vendor_name} events to process")


def check_request(payload: Any, vendor_name: str, content_types: Iterable[str] | None = None) -> dict | None:
    """None when the request has a body and (if ``content_types`` is given) an accepted content type.

    Otherwise the first problem's message: :func:`require_body`, then
    :func:`check_content_type`.
    """
    problem = require_body(payload.body, vendor_name)
    if problem is None and content_types is not None:
        problem = check_content_type(payload.content_type, content_types)
    return problem


# -- decoding -------------------------------------------------------------------

def parse_form(body: str) -> list[tuple[str, str]]:
    """Form-encoded pairs, percent-decoded, in order (``ext.QueryStringError`` if undecodable)."""
    return ext.parse_query_string(body)


def form_dict(body: str) -> dict[str, str]:
    """Form-encoded body as a dict; a repeated name keeps its last value."""
    return dict(parse_form(body))


def decode_form(body: str, field_name: str = "body") -> tuple[list[tuple[str, str]] | None, dict | None]:
    """``(pairs, None)`` or ``(None, message)`` for a body that cannot be decoded."""
    try:
        return parse_form(body), None
    except ext.QueryStringError as exc:
        return None, input_error(field_name, body[:1024], f"a form-encoded body that can be decoded: {exc}")


def parse_json(text: str) -> Any:
    """The parsed JSON document (``ValueError`` if it is not JSON)."""
    return jsontext.loads(text)


def decode_json(text: str, field_name: str = "body") -> tuple[Any, dict | None]:
    """``(document, None)`` or ``(None, NotJson message)``."""
    try:
        return parse_json(text), None
    except ValueError as exc:
        return None, not_json(field_name, text, f"invalid json: {exc}")


def decode_json_object(text: str, field_name: str = "body",
                       expectation: str = "expected a JSON object") -> tuple[dict | None, dict | None]:
    """``(object, None)``, or ``(None, NotJson message)`` when ``text`` is not JSON or not a JSON object."""
    doc, problem = decode_json(text, field_name)
    if problem is None and not isinstance(doc, dict):
        return None, not_json(field_name, text, expectation)
    return doc, problem


def form_json_field(form: Mapping[str, str], name: str, missing_expectation: str, *,
                    want_object: bool = False) -> tuple[Any, dict | None]:
    """The JSON held in form field ``name``: ``(document, None)`` or ``(None, message)``.

    A missing field is an InputData message on ``name`` with ``missing_expectation``;
    a value that is not JSON (or, with ``want_object``, not a JSON object) a NotJson message.
    """
    if name not in form:
        return None, input_error(name, None, missing_expectation)
    if want_object:
        return decode_json_object(form[name], name)
    return decode_json(form[name], name)


def form_request(payload: Any, vendor_name: str,
                 content_types: Iterable[str] = (FORM_CONTENT_TYPE,)) -> tuple[dict[str, str] | None, Adapted | None]:
    """A form-encoded webhook request's fields: ``(form, None)`` or ``(None, failed Adapted)``.

    Checks the request (:func:`check_request`) and decodes its body (:func:`decode_form`);
    a repeated name keeps its last value.
    """
    problem = check_request(payload, vendor_name, content_types)
    if problem:
        return None, failed(problem)
    pairs, problem = decode_form(payload.body)
    if problem:
        return None, failed(problem)
    return dict(pairs), None


def json_request(payload: Any, vendor_name: str, content_types: Iterable[str] | None = None, *,
                 object_expectation: str | None = None) -> tuple[Any, Adapted | None]:
    """A JSON webhook request's document: ``(document, None)`` or ``(None, failed Adapted)``.

    Checks the request (:func:`check_request`; the content type only when
    ``content_types`` is given) and parses the body; with ``object_expectation``
    the document must also be a JSON object (else a NotJson message with it).
    """
    problem = check_request(payload, vendor_name, content_types)
    if problem:
        return None, failed(problem)
    if object_expectation is not None:
        doc, problem = decode_json_object(payload.body, "body", object_expectation)
    else:
        doc, problem = decode_json(payload.body)
    if problem:
        return None, failed(problem)
    return doc, None


_BRACKET_KEY = re.compile(r"^([^\[\]]*)((?:\[[^\[\]]*\])*)$")
_BRACKET_PART = re.compile(r"\[([^\[\]]*)\]")


def brackets_to_nested(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``[("data[merges][EMAIL]", "a@b")]`` -> ``{"data": {"merges": {"EMAIL": "a@b"}}}``.

    Keys without brackets stay flat; a key that is not in bracket form at all
    (``a]b``) is kept as is.  When a name is both a value and an object
    (``a=1&a[b]=2``) the later pair wins.  Values stay strings.
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        match = _BRACKET_KEY.match(key)
        if not match or not match.group(2):
            out[key] = value
            continue
        path = [match.group(1), *_BRACKET_PART.findall(match.group(2))]
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return out


# -- reshaping ------------------------------------------------------------------

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def camel_to_snake(name: str) -> str:
    """``"eventType"`` -> ``"event_type"``, ``"HTTPStatus"`` -> ``"http_status"``; dashes and spaces become ``_``."""
    return _CAMEL_BOUNDARY.sub("_", name).replace("-", "_").replace(" ", "_").lower()


def snake_to_camel(name: str) -> str:
    """``"event_type"`` -> ``"eventType"`` (also ``-``); a leading separator is kept out."""
    parts = [p for p in re.split(r"[_\-]+", name) if p]
    if not parts:
        return name
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _map_keys(doc: Any, fn) -> Any:
    if isinstance(doc, dict):
        return {fn(k): _map_keys(v, fn) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_map_keys(v, fn) for v in doc]
    return doc


def keys_to_snake(doc: Any) -> Any:
    """Every object key, at every depth, in snake_case."""
    return _map_keys(doc, camel_to_snake)


def keys_to_camel(doc: Any) -> Any:
    """Every object key, at every depth, in camelCase."""
    return _map_keys(doc, snake_to_camel)


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime(ISO_FORMAT.format(ms=moment.microsecond // 1000))


def epoch_to_iso(value: Any, unit: str = "s") -> str:
    """An epoch time (``unit`` ``"s"`` or ``"ms"``; number or numeric text) as ``2014-10-22T13:10:40.000Z``.

    ``ValueError`` when the value is not a number or out of range.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not an epoch time: {value!r}") from None
    seconds = number / 1000.0 if unit == "ms" else number
    try:
        moment = datetime.fromtimestamp(0, timezone.utc) + _timedelta(seconds)
    except (OverflowError, ValueError):
        raise ValueError(f"epoch time out of range: {value!r}") from None
    return _iso(moment)


def _timedelta(seconds: float) -> timedelta:
    # Round to whole milliseconds first, so 1.0015 s does not print as .001 by float error.
    return timedelta(milliseconds=round(seconds * 1000))


def reformat_timestamp(text: str, fmt: str | Iterable[str] = "%Y-%m-%d %H:%M:%S") -> str:
    """A timestamp in ``fmt`` (a ``strptime`` format, or several tried in order) as ISO 8601 UTC.

    A format without a zone reads the time as UTC.  ``ValueError`` when no
    format matches.
    """
    formats = [fmt] if isinstance(fmt, str) else list(fmt)
    for f in formats:
        try:
            moment = datetime.strptime(text, f)
        except (TypeError, ValueError):
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return _iso(moment)
    raise ValueError(f"timestamp {text!r} does not match {' or '.join(formats)}")


def convert_field(container: dict, key: str, convert, field_name: str, expectation: str) -> dict | None:
    """Replace ``container[key]`` by ``convert(container[key])``; None, or the InputData message when that fails.

    A ``ValueError`` or ``TypeError`` from ``convert`` is the failure; the message
    names ``field_name`` and holds the value as it was.
    """
    try:
        container[key] = convert(container[key])
    except (ValueError, TypeError):
        return input_error(field_name, container[key], expectation)
    return None


# -- event types ----------------------------------------------------------------

def lookup_schema(event_type: Any, schemas: Mapping[str, str], field_name: str, *,
                  missing: str | None = None, unknown: str | None = None,
                  allow_empty: bool = False) -> tuple[str | None, dict | None]:
    """The schema of ``event_type`` in ``schemas``: ``(schema, None)`` or ``(None, message)``.

    No event type (not a string; also an empty one unless ``allow_empty``) is an
    InputData message on ``field_name`` with ``missing`` (default ``no `FIELD` in
    the event: cannot determine event type``); a type with no schema is a
    SchemaMapping message with ``unknown`` (default ``no schema associated with
    the provided FIELD parameter``).
    """
    if not isinstance(event_type, str) or (not event_type and not allow_empty):
        return None, input_error(field_name, None,
                                 missing or f"no `{field_name}` in the event: cannot determine event type")
    schema = schemas.get(event_type)
    if schema is None:
        return None, schema_mapping(event_type, schemas,
                                    unknown or f"no schema associated with the provided {field_name} parameter")
    return schema, None


def indexed_schema(event_type: Any, schemas: Mapping[str, str], field_name: str, vendor_name: str,
                   index: int) -> tuple[str | None, dict | None]:
    """:func:`lookup_schema` for element ``index`` of a batch, with Snowplow's per-index messages."""
    return lookup_schema(
        event_type, schemas, field_name, allow_empty=True,
        missing=f"cannot determine event type: type parameter not provided at index {index}",
        unknown=f"{vendor_name} event at index [{index}] failed: type parameter not recognized")


# -- output ---------------------------------------------------------------------

def iglu_uri(vendor: str, name: str, version: str = "1-0-0") -> str:
    """``iglu:vendor/name/jsonschema/version``."""
    return f"iglu:{vendor}/{name}/jsonschema/{version}"


def unstruct(schema: str, data: Any) -> str:
    """The ``ue_pr`` text: the ``unstruct_event`` envelope around ``{"schema", "data"}``."""
    return jsontext.dumps({"schema": UNSTRUCT_SCHEMA, "data": {"schema": schema, "data": data}})


def ue_event(schema: str, data: Any, tracker_version: str,
             querystring: Iterable[tuple[str, str]] | Mapping[str, str] = (), *,
             platform: str = "srv", passthrough: Iterable[str] = PASSTHROUGH,
             extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tracker-protocol parameters of one self-describing webhook event.

    ``e=ue``, ``ue_pr`` (see :func:`unstruct`), ``tv`` = ``tracker_version``
    (e.g. ``"com.mailchimp-v1"``), ``p`` = the query string's ``p`` or
    ``platform``, and each of ``passthrough`` present in the query string.
    ``extra`` parameters (e.g. a vendor's own ``dtm``) are added last and win.
    """
    qs = dict(querystring.items() if isinstance(querystring, Mapping) else querystring)
    # 3.9.0's buildUnstructEventParams: ``Map(tv, e, p, ue_pr)`` in that order (a bad row lists four parameters in
    # it), ``p`` being ``parameters.getOrElse("p", Option(platform))`` (a valueless ``p`` is None)
    params = {"tv": tracker_version, "e": "ue", "p": qs["p"] if "p" in qs else platform,
              "ue_pr": unstruct(schema, data)}
    for name in passthrough:
        if name in qs:
            params[name] = qs[name]
    if extra:
        params.update(extra)
    return params


def one_event(schema: str, data: Any, tracker_version: str,
              querystring: Iterable[tuple[str, str]] | Mapping[str, str] = (), **options: Any) -> Adapted:
    """An ``Adapted`` holding the one event :func:`ue_event` builds from these arguments."""
    return Adapted(events=[ue_event(schema, data, tracker_version, querystring, **options)])


def events_or_failure(events: list[dict[str, str]], errors: list[dict],
                      empty: dict | None = None) -> Adapted:
    """The events, or the failure with all ``errors``; with ``empty``, also a failure when there are no events."""
    if errors:
        return failed(*errors)
    if not events and empty is not None:
        return failed(empty)
    return Adapted(events=events)


# -- Snowplow's shared reshaping (Adapter.scala in enrich 3.9.0) ----------------

_SNAKE_OR_DASH = re.compile(r"[_-]([A-Za-z0-9_])")
_JAVA_LONG = re.compile(r"^[+-]?\d+$")
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1


def snowplow_camel_case(name: str) -> str:
    """Snowplow's ``camelCase``: the first character lower-cased, then ``_x``/``-x`` -> ``X``.

    ``X-Mailgun-Sid`` -> ``xMailgunSid``, ``my_var_1`` -> ``myVar1``; a separator
    followed by no word character stays, ``a__b`` -> ``a_b``.
    """
    if not name:
        return name
    head = name[0].lower() if len(name[0].lower()) == 1 else name[0]
    return _SNAKE_OR_DASH.sub(lambda m: m.group(1).upper(), head + name[1:])


def snowplow_camelize(doc: Any) -> Any:
    """:func:`snowplow_camel_case` on every object key, at every depth (inside arrays too); order kept."""
    if isinstance(doc, dict):
        return {snowplow_camel_case(k): snowplow_camelize(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [snowplow_camelize(v) for v in doc]
    return doc


def java_long(text: str) -> int | None:
    """``Long.parseLong(text)``, or None when Java refuses it (a sign, digits, in 64 bits)."""
    if not isinstance(text, str) or not _JAVA_LONG.match(text):
        return None
    value = int(text)
    return value if _LONG_MIN <= value <= _LONG_MAX else None


def json_whole_number(value: Any, low: int = _LONG_MIN, high: int = _LONG_MAX) -> int | None:
    """circe's ``as[Long]`` (or ``as[Int]`` with other bounds) on a JSON number: a whole number in range, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int) and low <= value <= high:
        return value
    return None


def seconds_to_iso(seconds: int) -> str | None:
    """Epoch seconds as Snowplow writes them (``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'``, UTC); None out of range."""
    millis = (seconds * 1000 + (1 << 63)) % (1 << 64) - (1 << 63)  # a Java long product wraps
    try:
        return _iso(datetime.fromtimestamp(0, timezone.utc) + timedelta(milliseconds=millis))
    except (OverflowError, ValueError):
        return None


def _timestamp_value(value: Any) -> Any:
    if isinstance(value, str):
        seconds = java_long(value)
    else:
        seconds = json_whole_number(value)
    if seconds is None:
        return value
    text = seconds_to_iso(seconds)
    return value if text is None else text


def cleanup_json_event_values(doc: Any, event: tuple[str, str] | None, timestamp_keys: Iterable[str]) -> Any:
    """Snowplow's ``cleanupJsonEventValues``, at every depth.

    Values of ``timestamp_keys`` holding epoch seconds (a number, or text
    ``Long.parseLong`` reads) become ISO 8601 with milliseconds; a key
    ``event[0]`` holding the string ``event[1]`` is dropped; every object's keys
    come out in the order of the Scala ``Map`` Snowplow rebuilds it into.
    """
    keys = tuple(timestamp_keys)

    def clean(node: Any) -> Any:
        if isinstance(node, list):
            return [clean(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for k, v in node.items():
            if k in keys:
                v = _timestamp_value(v)
            elif isinstance(v, (dict, list)):
                v = clean(v)
            out[k] = v
        # Snowplow filters the rebuilt Map: the order is the one of all the keys, the dropped one included
        order = scala_map_order(list(out))
        if event is not None and out.get(event[0]) == event[1] and isinstance(out.get(event[0]), str):
            del out[event[0]]
        return {k: out[k] for k in order if k in out}

    return clean(doc)


def snowplow_lookup_schema(event_type: Any, schemas: Mapping[str, str],
                           index: int | None = None) -> tuple[str | None, dict | None]:
    """Snowplow's ``lookupSchema``: ``(schema, None)`` or ``(None, SchemaMapping message)``.

    ``event_type`` is the JSON value read as the type (not a string: no type);
    with ``index`` the messages name the event's position in a batch.
    """
    at = "" if index is None else f" at index {index}"
    if not isinstance(event_type, str):
        return None, schema_mapping(None, schemas, f"cannot determine event type: type parameter not provided{at}")
    if event_type in schemas:
        return schemas[event_type], None
    if event_type == "":
        return None, schema_mapping("", schemas, f"cannot determine event type: type parameter empty{at}")
    return None, schema_mapping(event_type, schemas, f"no schema associated with the provided type parameter{at}")


# -- requests and bodies as Snowplow's enrich 3.9.0 adapters check and read them -----------------

EMPTY_BODY = "empty body: no events to process"


def no_body(body: str | None, *, allow_empty: bool = False) -> dict | None:
    """None when there is a body, else 3.9.0's InputData message for a missing one (:data:`EMPTY_BODY`).

    An empty body counts as missing unless ``allow_empty`` (the adapters that only test for
    ``None`` read an empty body on).
    """
    if body is None or (not body and not allow_empty):
        return input_error("body", None, EMPTY_BODY)
    return None


def exact_content_type(content_type: str | None, expected: str, *, show_value: bool = True) -> dict | None:
    """None when the content type is exactly ``expected`` (case and parameters count), else 3.9.0's message:
    ``no content type: expected X`` or ``expected X``, the latter holding the content type unless not
    ``show_value`` (Olark's)."""
    if content_type is None:
        return input_error("contentType", None, f"no content type: expected {expected}")
    if content_type != expected:
        return input_error("contentType", content_type if show_value else None, f"expected {expected}")
    return None


def circe_json(text: str, field_name: str = "body", *, prefix: str = "") -> tuple[Any, dict | None]:
    """``(document, None)``, or ``(None, NotJson message)`` with circe's words when ``text`` is not JSON:
    ``invalid json: expected json value got 'x' (line 1, column 1)``, after ``prefix``.
    The document may be None itself (``null``): test the message."""
    try:
        return jsontext.loads(text), None
    except ValueError:
        reason = jsontext.circe_parse_error(text) or "exhausted input"
        return None, not_json(field_name, text, f"{prefix}invalid json: {reason}")


def json_body(body: str | None) -> tuple[Any, dict | None]:
    """A body that must be there (empty is read on) and be JSON: ``(document, None)``, or ``(None,`` the
    :func:`no_body` or :func:`circe_json` message ``)``."""
    problem = no_body(body, allow_empty=True)
    if problem:
        return None, problem
    return circe_json(body)


def batch_events(events: list[dict[str, str]], errors: list[dict]) -> Adapted:
    """3.9.0's result of a batch: every bad element's message, else the events, else ``empty list of events``."""
    return events_or_failure(events, errors, empty=input_error("", None, "empty list of events"))


def deep_merge(left: Any, right: Any) -> Any:
    """circe's ``left.deepMerge(right)``: objects merge key by key (``right``'s keys first, each merged
    with ``left``'s, then ``left``'s others); anything else is ``right``."""
    if not (isinstance(left, dict) and isinstance(right, dict)):
        return right
    out = dict(right)
    for key, value in left.items():
        out[key] = deep_merge(value, right[key]) if key in right else value
    return out


def query_map(querystring: Iterable[tuple[str, str | None]]) -> dict[str, str | None]:
    """The query string as 3.9.0's ``Map``: a repeated name keeps its last value, the names in the Scala
    ``Map``'s order."""
    merged = dict(querystring)
    return {name: merged[name] for name in scala_map_order(list(merged))}


def unstruct_event_params(tracker_version: str, schema: str, data: Any, params: Mapping[str, str | None],
                          platform: str = "srv") -> dict[str, str]:
    """3.9.0's ``toUnstructEventParams`` on the request's parameters (a valueless one is None):
    ``tv``, ``e=ue``, ``p`` as the parameters give it (none when valueless) or else ``platform``,
    ``ue_pr``, then each of :data:`PASSTHROUGH` that has a value."""
    event = {"tv": tracker_version, "e": "ue"}
    if "p" in params:
        if params["p"] is not None:
            event["p"] = params["p"]
    else:
        event["p"] = platform
    event["ue_pr"] = unstruct(schema, data)
    for name in PASSTHROUGH:
        if params.get(name) is not None:
            event[name] = params[name]
    return event


# -- form bodies read as Snowplow's Olark, StatusGator and Unbounce adapters read them ----------------

def could_not_parse_body(field_name: str, body: str, error: str) -> dict:
    """3.9.0's InputData message for a body its parser refuses (``java.net.URI``'s form reading, Mailgun's
    circe): ``could not parse body: `` and the parser's message through :func:`strip_instance_etc` (line
    breaks in circe's quoted excerpt removed); Olark and Unbounce name the body itself as the field."""
    return input_error(field_name, body, f"could not parse body: {strip_instance_etc(error)}")


def java_form_fields(body: str) -> tuple[dict[str, str] | None, str | None]:
    """A form body as ``URLEncodedUtils.parse(URI.create("http://localhost/?" + body))`` reads it, then
    Snowplow's ``toMap`` keeping the fields that have a value: ``(fields, None)`` or ``(None, error)``.

    The error is ``java.net.URI``'s message (``Illegal character in query at
    index 22: http://localhost/?a=b c``).
    Read by :func:`ext.parse_uri_query`: only the part before a ``#``; ``&`` and
    ``;`` separate fields; ``+`` is a space, ``%XX`` a byte and any other
    character the low 8 bits of its UTF-16 code units (the bytes read as UTF-8,
    undecodable ones replaced as Java replaces them); a later field of the same
    name wins; a field without ``=`` or with an empty name is left out.
    """
    fields, error = java_form_params(body)
    if error is not None:
        return None, error
    return {k: v for k, v in fields.items() if v is not None}, None


def java_form_params(body: str) -> tuple[dict[str, str | None] | None, str | None]:
    """:func:`java_form_fields` keeping the fields without ``=`` (as None): ``ConversionUtils.parseUrlEncodedForm``.
    The fields are in the order first met, each with its last value."""
    try:
        pairs = ext.parse_uri_query(body)
    except ext.QueryStringError as exc:
        return None, str(exc)
    return dict(pairs), None


def java_form_body(payload: Any, read) -> tuple[dict | None, dict | None]:
    """A form body as 3.9.0's Mailchimp and Mandrill adapters take it: ``(fields, None)`` or ``(None, message)``.

    No body (an empty one is read on), then a content type other than exactly the form's, is
    refused (:func:`no_body`, :func:`exact_content_type`); the body is read by ``read``
    (:func:`java_form_fields` or :func:`java_form_params`), a body ``java.net.URI``
    refuses giving ``URI``'s message as it is, on the field ``body``.
    """
    body = payload.body
    problem = no_body(body, allow_empty=True) or exact_content_type(payload.content_type, FORM_CONTENT_TYPE)
    if problem:
        return None, problem
    fields, error = read(body)
    if error is not None:
        return None, input_error("body", body, error)
    return fields, None


# -- JSON as circe prints Snowplow's values ------------------------------------------------------

class JavaDouble(float):
    """A double, written as Java's ``Double.toString`` writes it."""


def java_double_text(value: float) -> str:
    """``Double.toString``: plain from 10^-3 up to 10^7 (``1.0``, ``12.23``), else ``1.0E7``; NaN/infinity
    as circe's ``fromDoubleOrNull`` (``null``)."""
    if value != value or value in (float("inf"), float("-inf")):
        return "null"
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    _, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + exponent  # position of the decimal point in text
    minus = "-" if value < 0 else ""
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            return f"{minus}0.{'0' * -point}{text}"
        whole, fraction = text[:point].ljust(point, "0"), text[point:]
        return f"{minus}{whole}.{fraction or '0'}"
    return f"{minus}{text[0]}.{text[1:] or '0'}E{point - 1}"


def json_text(value) -> str:
    """Compact JSON with the keys in the order given and :class:`JavaDouble` written as Java writes it."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, JavaDouble):
        return java_double_text(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{jsontext.dumps(k)}:{json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    return jsontext.dumps(value)


_JODA_DATETIME = re.compile(r"([+-]?\d{1,9})-(\d{1,2})-(\d{1,2}) (\d{1,2}):(\d{1,2}):(\d{1,2})", re.ASCII)


def joda_datetime_iso(text: str) -> str:
    """``JsonUtils.toJsonSchemaDateTime(text, "yyyy-MM-dd HH:mm:ss" in UTC)``: Joda's reading printed as
    ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'``; a text it does not read, as it was (Mailchimp, Marketo)."""
    match = _JODA_DATETIME.fullmatch(text)
    if not match:
        return text
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        return text
    if not 1 <= day <= (calendar.monthrange(year, month)[1] if 1 <= year <= 9999 else 31):
        return text
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.000Z"
