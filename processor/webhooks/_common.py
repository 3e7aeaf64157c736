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

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import ext
from processor import jsontext
from processor.adapters import ADAPTER_FAILURES, UNSTRUCT_SCHEMA, Adapted, Failure, input_error

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
    "decode_form",
    "decode_json",
    "epoch_to_iso",
    "failed",
    "form_dict",
    "iglu_uri",
    "input_error",
    "keys_to_camel",
    "keys_to_snake",
    "media_type",
    "not_json",
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
    return {"actual": None if actual is None else str(actual), "expectedMapping": dict(expected_mapping),
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
    params = {"e": "ue", "p": qs.get("p") or platform, "tv": tracker_version, "ue_pr": unstruct(schema, data)}
    for name in passthrough:
        if name in qs:
            params[name] = qs[name]
    if extra:
        params.update(extra)
    return params
