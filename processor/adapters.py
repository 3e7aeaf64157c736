"""Adapters: one raw ``CollectorPayload`` to the tracker-protocol events it carries.

The request path names the adapter: ``/i`` and ``/ice.png`` are the tracker
protocol over GET (tp1), ``/{vendor}/{version}`` looks up ``(vendor, version)``
in :data:`REGISTRY` (``com.snowplowanalytics.snowplow/tp2`` and the ``r/tp2``
redirect here; the Iglu webhook and vendor adapters register themselves the
same way).  An adapter returns the events as flat parameter dictionaries
(``{"e": "pv", "url": ..., ...}``) or a failure that becomes a bad row:

* ``collector_payload_format_violation`` -- the path is not ``vendor/version``
  nor a legacy pixel, or the query string cannot be decoded (one message);
* ``adapter_failures`` -- no adapter for ``(vendor, version)``;
* ``tracker_protocol_violations`` -- an adapter's input breaks the protocol
  (empty request, wrong content type, a body that is not ``payload_data``).

Nothing here raises on bad input: every failure is data.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Callable

import ext
from ext import CollectorPayload
from processor import jsontext

SNOWPLOW = "com.snowplowanalytics.snowplow"
PAYLOAD_DATA_PREFIX = f"iglu:{SNOWPLOW}/payload_data/jsonschema/1-0-"
CONTEXTS_SCHEMA = f"iglu:{SNOWPLOW}/contexts/jsonschema/1-0-0"
UNSTRUCT_SCHEMA = f"iglu:{SNOWPLOW}/unstruct_event/jsonschema/1-0-0"
URI_REDIRECT_SCHEMA = f"iglu:{SNOWPLOW}/uri_redirect/jsonschema/1-0-0"
JSON_CONTENT_TYPES = ("application/json", "application/json; charset=utf-8")

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
    querystring: list[tuple[str, str]] = field(default_factory=list)
    events: list[dict[str, str]] = field(default_factory=list)
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


def vendor_version(path: str | None) -> tuple[str, str] | None:
    """``(vendor, version)`` for a request path, or None when it has neither shape."""
    if path in ("/i", "/ice.png"):
        return SNOWPLOW, "tp1"
    if not path or not path.startswith("/"):
        return None
    parts = path.strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


_webhooks_loaded = False


def load_webhooks() -> None:
    """Register the webhook adapters (``processor.webhooks``); done once, on the first :func:`adapt`."""
    global _webhooks_loaded
    if not _webhooks_loaded:
        from processor import webhooks
        webhooks.load_all()
        _webhooks_loaded = True


def adapt(payload: CollectorPayload) -> Adapted:
    """Route a decoded payload to its adapter."""
    if not _webhooks_loaded:
        load_webhooks()
    vv = vendor_version(payload.path)
    if vv is None:
        return Adapted(failure=Failure(CPFV, [{
            "payloadField": "path", "value": payload.path,
            "expectation": "a (/)vendor/version(/) path or a legacy /i(ce.png) request"}]))
    vendor, version = vv
    try:
        querystring = ext.parse_query_string(payload.querystring) if payload.querystring else []
    except ext.QueryStringError as exc:
        return Adapted(vendor, version, failure=Failure(CPFV, [{
            "payloadField": "querystring", "value": payload.querystring[:1024],
            "expectation": f"a query string that can be decoded: {exc}"[:256]}], vendor, version))
    adapter = REGISTRY.get(vv)
    if adapter is None:
        return Adapted(vendor, version, querystring, failure=Failure(ADAPTER_FAILURES, [input_error(
            "vendor/version", f"{vendor}/{version}", "vendor/version combination is not supported")],
            vendor, version))
    result = adapter(payload, querystring)
    result.vendor, result.version, result.querystring = vendor, version, querystring
    if result.failure is not None:
        result.failure.vendor, result.failure.version = vendor, version
    return result


def _params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    # A repeated parameter keeps its last value.
    return dict(pairs)


def _violation(*messages: dict) -> Adapted:
    return Adapted(failure=Failure(TPV, list(messages)))


@register(SNOWPLOW, "tp1")
def adapt_tp1(payload: CollectorPayload, querystring: list) -> Adapted:
    """The tracker protocol as GET parameters: one event per request."""
    if not querystring:
        return _violation(input_error("querystring", None, "empty querystring: expected at least one parameter"))
    return Adapted(events=[_params(querystring)])


@register(SNOWPLOW, "tp2")
def adapt_tp2(payload: CollectorPayload, querystring: list) -> Adapted:
    """GET parameters (one event) or a POSTed ``payload_data`` batch.

    Each event of a batch gets the query-string parameters merged in, the
    query string winning.
    """
    body = payload.body
    if not body:
        if not querystring:
            return _violation(input_error(
                "body", None, "empty body and querystring: expected at least one populated"))
        return Adapted(events=[_params(querystring)])
    content_type = (payload.content_type or "").lower()
    if content_type not in JSON_CONTENT_TYPES:
        return _violation(input_error("contentType", payload.content_type,
                                      f"expected one of {', '.join(JSON_CONTENT_TYPES)}"))
    events, errors = parse_payload_data(body)
    if errors:
        return _violation(*errors)
    if querystring:
        qs = _params(querystring)
        events = [{**event, **qs} for event in events]
    return Adapted(events=events)


def parse_payload_data(body: str) -> tuple[list[dict[str, str]], list[dict]]:
    """The events of a ``payload_data`` body, or the protocol messages saying why not."""
    try:
        doc = jsontext.loads(body)
    except ValueError as exc:
        return [], [{"field": "body", "value": body[:1024], "error": f"invalid json: {exc}"}]
    if not isinstance(doc, dict) or not isinstance(doc.get("schema"), str) or "data" not in doc:
        return [], [{"json": doc if _small(doc) else None, "error": "INVALID_DATA_PAYLOAD"}]
    schema = doc["schema"]
    if not schema.startswith(PAYLOAD_DATA_PREFIX):
        return [], [{"schemaKey": schema, "schemaCriterion": PAYLOAD_DATA_PREFIX + "*"}]
    data = doc["data"]
    if not isinstance(data, list) or not data:
        return [], [input_error("data", json.dumps(data)[:1024], "a non-empty array of events")]
    errors = []
    for index, event in enumerate(data):
        if type(event) is not dict:
            errors.append(input_error(f"data[{index}]", json.dumps(event)[:1024], "an object of string values"))
            continue
        if _STR_ONLY.issuperset(map(type, event.values())):  # the common case, checked in C
            continue
        for key, value in event.items():
            if type(value) is not str:
                errors.append(input_error(f"data[{index}].{key}"[:64], json.dumps(value)[:1024], "a string"))
    return (data, []) if not errors else ([], errors)


_STR_ONLY = frozenset((str,))


def _small(doc) -> bool:
    return len(json.dumps(doc)) <= 4096


@register("r", "tp2")
def adapt_redirect(payload: CollectorPayload, querystring: list) -> Adapted:
    """A click through ``/r/tp2?u=TARGET``.

    Without ``e`` the click is a ``uri_redirect`` self-describing event; with
    ``e`` the target is added to the event's contexts instead.
    """
    params = _params(querystring)
    target = params.pop("u", None)
    if not target:
        return _violation(input_error("u", target, "the redirect target u must be present"))
    redirect = {"schema": URI_REDIRECT_SCHEMA, "data": {"uri": target}}
    params.setdefault("tv", "r-tp2")
    params.setdefault("p", "web")
    if "e" not in params:
        params["e"] = "ue"
        params["ue_pr"] = json.dumps({"schema": UNSTRUCT_SCHEMA, "data": redirect}, separators=(",", ":"))
        return Adapted(events=[params])
    try:
        if "cx" in params:
            contexts = json.loads(ext.decode_base64url(params["cx"]))
            contexts["data"].append(redirect)
            params["cx"] = base64.urlsafe_b64encode(json.dumps(contexts, separators=(",", ":")).encode()).decode()
        elif "co" in params:
            contexts = json.loads(params["co"])
            contexts["data"].append(redirect)
            params["co"] = json.dumps(contexts, separators=(",", ":"))
        else:
            params["co"] = json.dumps({"schema": CONTEXTS_SCHEMA, "data": [redirect]}, separators=(",", ":"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        field_name = "cx" if "cx" in params else "co"
        return _violation(input_error(field_name, params[field_name][:1024],
                                      f"contexts that can take the redirect context ({exc})"))
    return Adapted(events=[params])

