"""Adapters: one raw ``CollectorPayload`` to the tracker-protocol events it carries.

The request path names the adapter: ``/i`` and ``/ice.png`` are the tracker
protocol over GET (tp1), ``/{vendor}/{version}`` looks up ``(vendor, version)``
in :data:`REGISTRY` (``com.snowplowanalytics.snowplow/tp2`` and the ``r/tp2``
redirect here; the Iglu webhook and vendor adapters register themselves the
same way).  An adapter returns the events as flat parameter dictionaries
(``{"e": "pv", "url": ..., ...}``) or a failure that becomes a bad row:

* ``collector_payload_format_violation`` -- the query string is one ``java.net.URI``
  refuses (:func:`read_querystring`), the path is not ``vendor/version`` nor a
  legacy pixel: one message for each;
* ``adapter_failures`` -- no adapter for ``(vendor, version)``;
* ``tracker_protocol_violations`` -- an adapter's input breaks the protocol
  (empty request, wrong content type, a body that is not ``payload_data``).

Nothing here raises on bad input: every failure is data.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable

import ext
from ext import CollectorPayload
from ext.javanum import java_uuid
from processor import jsontext
from processor.iglu import SchemaCriterion
from processor.iglu import validate as iglu_validate
from processor.protocol import lenient_base64, scala_map_order

SNOWPLOW = "com.snowplowanalytics.snowplow"
#: the contexts envelope adapters write (Snowplow 3.9.0's Adapter.Contexts)
CONTEXTS_SCHEMA = f"iglu:{SNOWPLOW}/contexts/jsonschema/1-0-1"
UNSTRUCT_SCHEMA = f"iglu:{SNOWPLOW}/unstruct_event/jsonschema/1-0-0"
URI_REDIRECT_SCHEMA = f"iglu:{SNOWPLOW}/uri_redirect/jsonschema/1-0-0"

CPFV = "collector_payload_format_violation"
ADAPTER_FAILURES = "adapter_failures"
TPV = "tracker_protocol_violations"


@dataclass
class Failure:
    """Why a payload produced no events: the bad row's type and its messages."""

    kind: str
    messages: list[dict]
    vendor: str | None = None
    version: str | None = None


@dataclass
class Adapted:
    """The events of one payload (parameter dicts), or the failure instead."""

    vendor: str | None = None
    version: str | None = None
    querystring: list[tuple[str, str | None]] = field(default_factory=list)
    events: list[dict[str, str | None]] = field(default_factory=list)
    failure: Failure | None = None
    #: epoch ms that replaces the collector's timestamp of every event (an adapter that knows better, as
    #: Snowplow's Urban Airship adapter sets it to the event's ``processed`` time)
    collector_tstamp: int | None = None
    #: one collector payload per event standing for the request it came in (Snowplow's ``RawEvent.context``),
    #: for an adapter that takes the time, address and user agent from the event itself (CloudFront's access
    #: log line); None: every event has the request's
    payloads: list | None = None


Adapter = Callable[[CollectorPayload, list], "Adapted"]
#: (vendor, version) -> adapter; later modules add webhooks here.
REGISTRY: dict[tuple[str, str], Adapter] = {}


def register(vendor: str, version: str):
    def add(adapter: Adapter) -> Adapter:
        REGISTRY[(vendor, version)] = adapter
        return adapter
    return add


def input_error(field_name: str, value, expectation: str) -> dict:
    """A tracker-protocol message about one input field (Snowplow's InputData shape)."""
    return {"field": field_name, "value": None if value is None else str(value), "expectation": expectation[:256]}


#: 3.9.0's CollectorPayload.ApiPathRegex, matched whole: one optional slash on either side, no more
_API_PATH = re.compile(r"/?([^/]+)/([^/]+)/?")
#: what :func:`vendor_version` answers for the trackers' own paths, without the regular expression
_TRACKER_PATHS = {"/i": (SNOWPLOW, "tp1"), "/ice.png": (SNOWPLOW, "tp1"), f"/{SNOWPLOW}/tp2": (SNOWPLOW, "tp2")}


def vendor_version(path: str | None) -> tuple[str, str] | None:
    """``(vendor, version)`` for a request path, or None when it has neither shape: 3.9.0's
    ``CollectorPayload.parseApi``, the ``vendor/version`` shape first, then the legacy pixel's paths."""
    known = _TRACKER_PATHS.get(path)
    if known is not None or path is None:
        return known
    match = _API_PATH.fullmatch(path)
    if match is not None:
        return match[1], match[2]
    if path.startswith(("/ice.png", "/i?")):  # (and "/i", which the table answers)
        return SNOWPLOW, "tp1"
    return None


_webhooks_loaded = False


def load_webhooks() -> None:
    """Register the webhook adapters (``processor.webhooks``); done once, on the first :func:`adapt`."""
    global _webhooks_loaded
    if not _webhooks_loaded:
        from processor import webhooks
        webhooks.load_all()
        _webhooks_loaded = True


def adapt(payload: CollectorPayload, resolver=None) -> Adapted:
    """Route a decoded payload to its adapter; ``resolver`` (a :class:`processor.iglu.Resolver`, by default
    the process's default one) validates a tp2 body that the shipped ``payload_data`` rules do not settle."""
    if not _webhooks_loaded:
        load_webhooks()
    encoding = payload.encoding
    if encoding != "UTF-8" and not java_knows_charset(encoding):
        # 3.9.0's ThriftLoader reads the query string with Charset.forName(encoding) before anything else: its
        # exception's message is the name
        return Adapted(failure=Failure(CPFV, [{"error": "error deserializing raw event: " + (
            "Null charset name" if encoding is None else encoding)}]))
    vv = vendor_version(payload.path)
    querystring, problem = read_querystring(payload)
    nuid_problem = None
    if payload.network_user_id is not None:
        # the loader reads the network user id with UUID.fromString: the event gets its canonical form
        nuid = java_uuid(payload.network_user_id)
        if nuid is None:
            nuid_problem = {"payloadField": "networkUserId", "value": payload.network_user_id,
                            "expectation": "not valid UUID"}
        else:
            payload.network_user_id = nuid
    if vv is None or problem is not None or nuid_problem is not None:
        # as 3.9.0's ThriftLoader: the query string's message, then the path's, then the network user id's,
        # each a bad row of its own
        messages = [] if problem is None else [problem]
        if vv is None:  # CollectorPayload.parseApi's words (a request without a path: ThriftLoader's)
            messages.append({"payloadField": "path", "value": payload.path, "expectation": (
                "path does not match (/)vendor/version(/) nor is a legacy /i(ce.png) request"
                if payload.path is not None else "request does not contain a path")})
        if nuid_problem is not None:
            messages.append(nuid_problem)
        return Adapted(*(vv or (None, None)), failure=Failure(CPFV, messages, *(vv or (None, None))))
    vendor, version = vv
    adapter = REGISTRY.get(vv)
    if adapter is None:
        return Adapted(vendor, version, querystring, failure=Failure(ADAPTER_FAILURES, [input_error(
            "vendor/version", f"{vendor}/{version}", "vendor/version combination is not supported")],
            vendor, version))
    result = adapter(payload, querystring, resolver) if adapter is adapt_tp2 else adapter(payload, querystring)
    result.vendor, result.version, result.querystring = vendor, version, querystring
    if result.failure is not None:
        result.failure.vendor, result.failure.version = vendor, version
    return result


_INSTANCE = re.compile(r"@[0-9a-z]+;")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def strip_instance_etc(message: str) -> str:
    """Snowplow's ``JsonUtils.stripInstanceEtc``: instance ids masked, tabs as four spaces, controls removed, trimmed."""
    message = _INSTANCE.sub("@xxxxxx;", message).replace("\t", "    ")
    return _CONTROL.sub("", message).strip(" \t\n\r\x0b\x0c\x00")


@cache
def _java_charset_names() -> frozenset[str]:
    lines = Path(__file__).with_name("java_charsets.txt").read_text(encoding="ascii").splitlines()
    return frozenset(name.lower() for line in lines if not line.startswith("#") for name in line.split())


def java_knows_charset(name: str | None) -> bool:
    """Whether ``Charset.forName(name)`` returns a charset on the JDK 3.9.0 runs on (names and aliases, any case)."""
    return name is not None and name.lower() in _java_charset_names()


#: the names java.nio.charset.Charset knows UTF-8 by (lower case), all written ``UTF-8`` (its canonical name)
_UTF_8_NAMES = frozenset({"utf-8", "utf8", "unicode-1-1-utf-8"})


def read_querystring(payload: CollectorPayload) -> tuple[list[tuple[str, str | None]], dict | None]:
    """The payload's query string as 3.9.0's loader reads it (``Loader.parseQuerystring``:
    ``URLEncodedUtils.parse(URI.create("http://localhost/?" + q), Charset.forName(encoding))``, see
    :func:`ext.parse_uri_query`): ``(pairs, None)``, a parameter without ``=`` having the value None, or
    ``([], message)``, the ``collector_payload_format_violation`` message of a query ``java.net.URI`` refuses.

    The bytes are read as UTF-8 whatever the payload's encoding (Snowplow's collector writes ``UTF-8``);
    an encoding that is not a name of UTF-8 is only repeated in the message."""
    qs = payload.querystring
    if not qs:
        return [], None
    try:
        return ext.parse_uri_query(qs), None
    except ext.QueryStringError as exc:
        encoding = payload.encoding or "UTF-8"
        if encoding.lower() in _UTF_8_NAMES:
            encoding = "UTF-8"
        return [], {"payloadField": "querystring", "value": qs, "expectation": (
            f"could not extract name-value pairs from querystring with encoding {encoding}: "
            f"{strip_instance_etc(str(exc))}")[:256]}


def _params(pairs: list[tuple[str, str | None]]) -> dict[str, str | None]:
    # A repeated parameter keeps its last value.
    return dict(pairs)


def _violation(*messages: dict) -> Adapted:
    return Adapted(failure=Failure(TPV, list(messages)))


@register(SNOWPLOW, "tp1")
def adapt_tp1(payload: CollectorPayload, querystring: list) -> Adapted:
    """The tracker protocol as GET parameters: one event per request.  Without any, an ``adapter_failures``
    row worded as Snowplow's enrich 3.9.0 words it (``Tp1Adapter``, which borrowed the redirect's message)."""
    if not querystring:
        return Adapted(failure=Failure(ADAPTER_FAILURES, [
            input_error("querystring", None, "empty querystring: not a valid URI redirect")]))
    return Adapted(events=[_params(querystring)])


@register(SNOWPLOW, "tp2")
def adapt_tp2(payload: CollectorPayload, querystring: list, resolver=None) -> Adapted:
    """GET parameters (one event) or a POSTed ``payload_data`` batch, checked as Snowplow's enrich 3.9.0
    (``Tp2Adapter``) checks them, in its order:

    * no body and no query string: two messages (``body``, ``querystring``);
    * a content type other than :data:`TP2_CONTENT_TYPES` (compared exactly), with or without a body;
    * a body without a content type, a JSON content type without a body (even with a query string);
    * a body that is not JSON (circe's message), not self-describing, not valid against the schema it
      names (validated by ``resolver``), or of a schema other than ``payload_data`` 1-0-*: one message,
      and the **whole** request fails -- one bad event in a batch of 100 loses all 100, as in 3.9.0.

    Each event of a batch gets the query-string parameters merged in, the query string winning.
    """
    body = payload.body
    content_type = payload.content_type
    if body is None and not querystring:
        return _violation(input_error("body", None, "empty body: not a valid tracker protocol event"),
                          input_error("querystring", None, "empty querystring: not a valid tracker protocol event"))
    if content_type is not None and content_type not in TP2_CONTENT_TYPES:
        return _violation(input_error("contentType", content_type, _EXPECTED_CONTENT_TYPES))
    if body is not None and content_type is None:
        return _violation(input_error("contentType", None, _EXPECTED_CONTENT_TYPES))
    if body is None:
        if content_type is not None:
            return _violation(input_error("body", None, "empty body: not a valid track protocol event"))
        return Adapted(events=[_params(querystring)])
    events, errors = parse_payload_data(body, resolver)
    if errors:
        return _violation(*errors)
    if querystring:
        qs = _params(querystring)
        events = [{**event, **qs} for event in events]
    return Adapted(events=events)


#: Tp2Adapter's content types, compared as they are (the collector records them lower-cased)
TP2_CONTENT_TYPES = ("application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8")
_EXPECTED_CONTENT_TYPES = f"expected one of {', '.join(TP2_CONTENT_TYPES)}"
PAYLOAD_DATA_CRITERION = f"iglu:{SNOWPLOW}/payload_data/jsonschema/1-0-*"
#: the most of a body or a document a message repeats (the bad row's payload holds the whole body)
MESSAGE_VALUE_CHARS = 1024


def parse_payload_data(body: str, resolver=None) -> tuple[list[dict[str, str]], list[dict]]:
    """The events of a ``payload_data`` body, or the tracker-protocol messages saying why not.

    A body naming a ``payload_data`` version snowmelt ships is checked here against that schema's
    rules (an array of at least one object; ``tv``, ``p`` and ``e`` present; only the schema's
    properties, each a string) -- the same verdict as the validator's, without handing the batch to it.
    Anything else goes through the Iglu resolver, as Snowplow's ``Tp2Adapter`` does: validated against
    the schema it names, then required to be ``payload_data`` 1-0-*.
    """
    try:
        doc = jsontext.loads_shortest(body)
    except (ValueError, RecursionError) as exc:
        found = jsontext.circe_parse_error(body)
        return [], [{"field": "body", "value": body[:MESSAGE_VALUE_CHARS],
                     "error": f"invalid json: {exc if found is None else found}"}]
    if type(doc) is dict:
        schema = doc.get("schema")
        keys = _shipped_payload_data().get(schema) if type(schema) is str else None
        data = doc.get("data")
        if keys is not None and type(data) is list and data and ext.string_objects(data, keys, _REQUIRED):
            return data, []  # objects of strings: no number of the body is read
    doc = jsontext.loads(body)  # the numbers as written, for validation and the messages that show them
    failure = iglu_validate(doc, field="body", resolver=resolver)
    if not failure.ok:
        return [], [_message(failure)]
    key, data = failure.schema_key, failure.data
    if not _PAYLOAD_DATA.matches(key):
        return [], [{"schemaKey": key.uri, "schemaCriterion": str(_PAYLOAD_DATA)}]
    return _to_parameters(data)


def _to_parameters(data) -> tuple[list[dict[str, str]], list[dict]]:
    """Tp2Adapter's ``toParametersNel`` for data its schema let through (a schema other than the shipped ones)."""
    if type(data) is not list or any(type(event) is not dict for event in data):
        return [], [input_error("body", _compact(data), "json is not an array")]
    if not data:
        return [], [input_error("body", "[]", "empty list of events")]
    errors = []
    for event in data:
        for name, value in event.items():
            if value is None:
                errors.append(input_error(name, None, "value cannot be null"))
            elif type(value) is not str:
                errors.append(input_error(name, _compact(value), "value is not a string"))
    return (data, []) if not errors else ([], errors)


def _compact(doc) -> str:
    return jsontext.dumps(doc)[:MESSAGE_VALUE_CHARS]


def _message(failure) -> dict:
    """One Iglu failure as a tracker-protocol message, its copies of the input cut to size."""
    out = failure.to_json()
    if "json" in out and not _small(out["json"]):
        out["json"] = None
    if isinstance(out.get("value"), str):
        out["value"] = out["value"][:MESSAGE_VALUE_CHARS]
    return out


#: the properties payload_data requires of each event
_REQUIRED = ("e", "p", "tv")
_shipped: dict[str, frozenset] | None = None


def _shipped_payload_data() -> dict[str, frozenset]:
    """payload_data schema URI -> the properties it allows, for each shipped version whose rules are the
    ones ``ext.string_objects`` checks (read once from ``schemas/``)."""
    global _shipped
    if _shipped is None:
        from importlib import resources

        found = {}
        folder = resources.files("schemas").joinpath(f"{SNOWPLOW}/payload_data/jsonschema")
        for entry in folder.iterdir():
            schema = json.loads(entry.read_text(encoding="utf-8"))
            items = schema.get("items", {})
            props = items.get("properties", {})
            if (schema.get("type") == "array" and schema.get("minItems") == 1 and set(schema) <= _ARRAY_KEYS
                    and items.get("type") == "object" and items.get("additionalProperties") is False
                    and sorted(items.get("required", ())) == ["e", "p", "tv"] and set(items) <= _ITEM_KEYS
                    and all(spec == {"type": "string"} for spec in props.values())):
                found[f"iglu:{SNOWPLOW}/payload_data/jsonschema/{entry.name}"] = frozenset(props)
        _shipped = found
    return _shipped


_ARRAY_KEYS = {"$schema", "description", "self", "type", "items", "minItems"}
_ITEM_KEYS = {"type", "properties", "required", "additionalProperties"}


_PAYLOAD_DATA = SchemaCriterion.parse(PAYLOAD_DATA_CRITERION)


def _small(doc) -> bool:
    try:
        return len(jsontext.dumps(doc)) <= 4096
    except (TypeError, ValueError):
        return False


@register("r", "tp2")
def adapt_redirect(payload: CollectorPayload, querystring: list) -> Adapted:
    """A click through ``/r/tp2?u=TARGET``, as Snowplow's enrich 3.9.0 (``RedirectAdapter``) reads it.

    Without ``e`` the click is a ``uri_redirect`` self-describing event (``ue_pr``); with ``e`` the
    target is put first in the event's contexts: into ``cx`` when there is one (decoded leniently,
    written back as unpadded base64url), else into ``co`` (an empty ``co`` is no contexts), else as a
    new ``co``.  A ``co``/``cx`` that is not JSON fails the request (``co|cx``, with the decoded text);
    one that is JSON but has no ``data`` array is kept as it is, without the redirect.  ``tv`` is
    always ``r-tp2``; ``p`` defaults to ``web``.  No parameters, or no ``u`` (``&u`` without a value
    counts as none), fails the request.
    """
    if not querystring:
        return _violation(input_error("querystring", None, "empty querystring: not a valid URI redirect"))
    params = dict(querystring)
    target = params.get("u")
    if target is None:
        shown = "&".join(f"{name}={'null' if params[name] is None else params[name]}"
                         for name in scala_map_order(list(params)))
        return _violation(input_error("querystring", shown, "missing `u` parameter: not a valid URI redirect"))
    del params["u"]
    redirect = {"schema": URI_REDIRECT_SCHEMA, "data": {"uri": target}}
    if "e" not in params:
        params["e"] = "ue"
        params["ue_pr"] = jsontext.dumps({"schema": UNSTRUCT_SCHEMA, "data": redirect})
    elif "cx" in params:
        decoded = lenient_base64(params["cx"] or "").decode("utf-8", "replace")
        merged = _with_redirect(decoded, redirect)
        if isinstance(merged, dict):
            return _violation(merged)
        params["cx"] = base64.urlsafe_b64encode(merged.encode("utf-8", "replace")).decode("ascii").rstrip("=")
    elif params.get("co"):
        merged = _with_redirect(params["co"], redirect)
        if isinstance(merged, dict):
            return _violation(merged)
        params["co"] = merged
    else:
        params["co"] = jsontext.dumps({"schema": CONTEXTS_SCHEMA, "data": [redirect]})
    params["tv"] = "r-tp2"
    if "p" not in params:
        params["p"] = "web"
    return Adapted(events=[params])


def _with_redirect(text: str, redirect: dict) -> str | dict:
    """The contexts ``text`` with ``redirect`` put first in its ``data`` array, as compact JSON; the
    ``co|cx`` message when ``text`` is not JSON."""
    try:
        doc = jsontext.loads(text)
    except (ValueError, RecursionError) as exc:
        found = jsontext.circe_parse_error(text)
        return {"field": "co|cx", "value": text, "error": f"invalid json: {exc if found is None else found}"}
    if type(doc) is dict and type(doc.get("data")) is list:
        doc = {**doc, "data": [redirect, *doc["data"]]}
    return jsontext.dumps(doc)
