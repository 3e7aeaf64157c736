"""API request enrichment (``api_request_enrichment_config``): entities from your own HTTP API.

Snowplow's "dimension widening" over HTTP, configured with Snowplow's own
config (``iglu:com.snowplowanalytics.snowplow.enrichments/api_request_enrichment_config/jsonschema/1-0-0``,
``1-0-1`` -- cache ``size``/``ttl`` may be 0 -- and ``1-0-2`` which adds
``ignoreOnError``).

What happens per event, as in Snowplow:

``inputs``
    each input names a ``key`` and where its value comes from: ``pojo.field``
    is an atomic field of the enriched event (``user_id``, ``app_id``,
    ``derived_tstamp`` ...; timestamps in the TSV's ``yyyy-MM-dd HH:mm:ss.SSS``
    form), ``json`` a JSONPath (``jsonPath``) into the data of the first
    ``unstruct_event``, ``contexts`` or ``derived_contexts`` entity whose schema
    matches ``schemaCriterion``; ``derived_contexts`` are those the earlier
    enrichments attached to this event.  A JSON string is used as is, any
    other JSON value as its compact JSON text.
    **If any input has no value, no request is made and nothing is attached**
    (the event is not failed).
``api.http``
    ``uri`` is a template whose ``{{key}}`` placeholders are replaced by the
    inputs' values, URL-encoded (a value of only dots, ``..``, with its dots encoded too, so that it
    never climbs the path; a placeholder with no input of that key means
    no request, as in Snowplow).  ``GET`` sends nothing else; ``POST`` (and
    ``PUT``) send the inputs as a JSON object ``{"key": "value", ...}``.
    ``authentication.httpBasic`` adds an ``Authorization: Basic`` header
    (unless username and password are both empty).  ``timeout`` is in
    milliseconds and bounds the whole request.
``outputs``
    each output's ``json.jsonPath`` is applied to the response's JSON; the
    value found (a list when the path matches several) becomes the ``data`` of
    an entity with the output's ``schema``, attached to ``derived_contexts``
    (and validated against that schema by the pipeline: the user's schema must
    be resolvable).  A path that matches nothing fails the event.
``cache``
    responses are kept per request (URL and body) for ``ttl`` seconds, at most
    ``size`` of them (least recently used first out); ``0`` for either means
    no caching.  Failures are not cached.
``ignoreOnError`` (1-0-2)
    when true, a failed request, a non-2xx answer, a body that is not JSON or
    an output path that finds nothing leave the event without the entities
    instead of failing it.

Differences from Snowplow: none in behaviour that we know of.  The HTTP
client is a pooled, blocking :mod:`urllib3` pool manager (keep-alive, no
retries, the config's timeout as total timeout); simple paths
(``$.a.b.c``) are walked directly and anything else goes through
``jsonpath_ng`` (with its filter extension).
"""
from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import cachetools
import urllib3

from processor.enriched import FIELD_KINDS, format_timestamp
from processor.enrichments.base import (
    ENRICHMENTS_VENDOR,
    ConfigError,
    Enrichment,
    EnrichmentFailure,
    EventContext,
    LoadContext,
)
from processor.enrichments.jsonpaths import JsonRule, compile_json_path

_MISSING = object()
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_-]+)\s*\}\}")


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class _Input:
    key: str
    pojo: str | None = None               # atomic field name
    json: JsonRule | None = None

    def value(self, event: Any, ctx: EventContext) -> str | None:
        if self.pojo is not None:
            value = getattr(event, self.pojo, None)
            if value is None or value == "":
                return None
            if FIELD_KINDS.get(self.pojo) == "timestamp" and isinstance(value, (int, datetime)):
                return format_timestamp(value)
            if isinstance(value, bool):
                return "1" if value else "0"
            if isinstance(value, (str, int, float, Decimal)):
                return str(value)
            return _as_text(value)
        for entity in self.json.entities(event, ctx):  # the first matching entity the path finds a value in
            found = self.json.select(entity.get("data"))
            if found:
                value = found[0] if len(found) == 1 else found
                return None if value is None else _as_text(value)
        return None


@dataclass(frozen=True)
class _Output:
    schema: str
    path_text: str
    path: Callable[[Any], list[Any]]


@dataclass(frozen=True)
class ApiRequest(Enrichment):
    name = "api_request_enrichment_config"
    vendors = (ENRICHMENTS_VENDOR,)
    criteria = ("1-0-*",)

    inputs: tuple[_Input, ...]
    method: str
    uri_parts: tuple[str | None, ...]      # literal text, or None where a placeholder goes
    uri_keys: tuple[str, ...]              # the placeholder keys, in order
    timeout_ms: int
    auth_header: str | None
    outputs: tuple[_Output, ...]
    cache_size: int
    cache_ttl: int
    ignore_on_error: bool
    _http: urllib3.PoolManager = field(repr=False, compare=False, default=None)
    _cache: Any = field(repr=False, compare=False, default=None)
    _lock: Any = field(repr=False, compare=False, default_factory=threading.Lock)

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> ApiRequest:
        inputs = []
        for i, spec in enumerate(parameters["inputs"]):
            where = f"$.data.parameters.inputs[{i}]"
            if "pojo" in spec:
                name = spec["pojo"].get("field")
                if name not in FIELD_KINDS:
                    raise ConfigError(f"{where}.pojo.field: {name!r} is not an atomic field of the enriched event")
                inputs.append(_Input(spec["key"], pojo=name))
            elif "json" in spec:
                inputs.append(_Input(spec["key"], json=JsonRule.compile(spec["json"], f"{where}.json")))
            else:
                raise ConfigError(f"{where}: needs pojo or json")
        http = parameters["api"].get("http")
        if http is None:
            raise ConfigError("$.data.parameters.api.http: is required")
        template = http["uri"]
        if not template.lower().startswith(("http://", "https://")):
            raise ConfigError(f"$.data.parameters.api.http.uri: {template!r} is not an http(s) URI")
        parts: list[str | None] = []
        keys: list[str] = []
        last = 0
        for m in _PLACEHOLDER.finditer(template):
            parts.append(template[last:m.start()])
            parts.append(None)
            keys.append(m.group(1))
            last = m.end()
        parts.append(template[last:])
        basic = (http.get("authentication") or {}).get("httpBasic")
        auth = None
        if basic and (basic.get("username") or basic.get("password")):
            token = base64.b64encode(f"{basic['username']}:{basic['password']}".encode()).decode()
            auth = f"Basic {token}"
        outputs = []
        for i, spec in enumerate(parameters["outputs"]):
            if "json" not in spec:
                raise ConfigError(f"$.data.parameters.outputs[{i}].json: is required")
            path = spec["json"]["jsonPath"]
            outputs.append(_Output(spec["schema"], path,
                                   compile_json_path(path, f"$.data.parameters.outputs[{i}].json.jsonPath")))
        cache = parameters["cache"]
        size, ttl = int(cache["size"]), int(cache["ttl"])
        return cls(
            inputs=tuple(inputs), method=http["method"], uri_parts=tuple(parts), uri_keys=tuple(keys),
            timeout_ms=int(http["timeout"]), auth_header=auth, outputs=tuple(outputs),
            cache_size=size, cache_ttl=ttl, ignore_on_error=bool(parameters.get("ignoreOnError") or False),
            _http=urllib3.PoolManager(num_pools=4, maxsize=8, retries=False,
                                      timeout=urllib3.Timeout(total=int(http["timeout"]) / 1000)),
            _cache=cachetools.TTLCache(maxsize=size, ttl=ttl) if size > 0 and ttl > 0 else None,
        )

    # ------------------------------------------------------------------ per event

    def enrich(self, event: Any, ctx: EventContext) -> None:
        values: dict[str, str] = {}
        for spec in self.inputs:
            value = spec.value(event, ctx)
            if value is None:
                return  # a missing input: no request, no entity (as Snowplow)
            values[spec.key] = value
        url = self._url(values)
        if url is None:
            return
        body = None
        if self.method != "GET":
            body = json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")
        cache_key = (url, body)
        entities = None
        if self._cache is not None:
            with self._lock:
                entities = self._cache.get(cache_key)
        if entities is None:
            try:
                entities = self._request(url, body)
            except EnrichmentFailure:
                if self.ignore_on_error:
                    return
                raise
            if self._cache is not None:
                with self._lock:
                    self._cache[cache_key] = entities
        # new envelopes per event; the data is shared with the cache, read only
        ctx.derived.extend({"schema": s, "data": d} for s, d in entities)

    def _url(self, values: dict[str, str]) -> str | None:
        out = []
        keys = iter(self.uri_keys)
        for part in self.uri_parts:
            if part is None:
                value = values.get(next(keys))
                if value is None:
                    return None  # a placeholder without an input
                encoded = quote(value, safe="")
                if encoded.strip(".") == "":  # "." or "..": a path segment that would climb a level
                    encoded = encoded.replace(".", "%2E")
                out.append(encoded)
            else:
                out.append(part)
        return "".join(out)

    def _request(self, url: str, body: bytes | None) -> tuple[tuple[str, Any], ...]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        if self.auth_header:
            headers["Authorization"] = self.auth_header
        try:
            response = self._http.request(self.method, url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise EnrichmentFailure.error(f"API request {self.method} {_redact(url)} failed: "
                                          f"{type(exc).__name__}: {exc}") from None
        if not 200 <= response.status < 300:
            raise EnrichmentFailure.error(f"API request {self.method} {_redact(url)} answered "
                                          f"HTTP {response.status}: {response.data[:200]!r}")
        try:
            document = json.loads(response.data)
        except ValueError as exc:
            raise EnrichmentFailure.error(f"API request {self.method} {_redact(url)}: response is not JSON: "
                                          f"{exc}") from None
        entities = []
        for output in self.outputs:
            found = output.path(document)
            if not found:
                raise EnrichmentFailure.error(f"API request {self.method} {_redact(url)}: JSONPath "
                                              f"{output.path_text} found nothing in the response")
            entities.append((output.schema, found[0] if len(found) == 1 else found))
        return tuple(entities)

    def close(self) -> None:
        self._http.clear()


def _redact(url: str) -> str:
    """The URL without its query string (which may hold keys or personal data) for error messages."""
    return url.split("?", 1)[0]
