"""The Snowplow Micro API of ``snowmelt up``: what it keeps, the shapes it answers, its routes.

Routes (request and answer shapes of Snowplow Micro's REST API):

* ``GET|POST /micro/all`` -- ``{"total", "good", "bad"}`` counted since start
  or the last reset;
* ``GET /micro/good`` -- every good event kept; ``POST`` with a JSON object of
  filters ``event_type``, ``schema``, ``contexts`` (all listed schemas present),
  ``limit`` (the most recent N).  Each item: ``event`` (the analytics-SDK JSON
  of the enriched event), ``eventType``, ``schema`` (the self-describing event's
  URI for ``unstruct``, else the standard event's), ``contexts`` (context schema
  URIs) and ``rawEvent`` (the event's tracker-protocol parameters and request
  context, as the enrichment saw them, less what the privacy enrichments hide:
  see :class:`PrivacyView`);
* ``GET /micro/bad`` -- every bad row kept; ``POST`` filters ``vendor``,
  ``version`` (of the request's ``collectorPayload.api``) and ``limit``.  Each
  item: ``collectorPayload``, ``rawEvent`` (or null) and ``errors`` (strings);
* ``POST /micro/reset`` -- forget what is kept in memory (not the files).

Unlike Snowplow Micro, these answer browsers carefully: no CORS header (a
page on another origin cannot read them; ``snowmelt up``'s middleware answers
a preflight without permission), reset only by ``POST`` with ``Content-Type: application/json`` or
a token header (neither can be sent cross-site without a preflight), answers
streamed one item at a time (memory stays bounded whatever is kept), and
filter bodies over :data:`MAX_FILTER_BYTES` or not a flat JSON object answered
400.  Who may call them at all is :func:`snowmelt.access.token_refusal`'s
decision, applied by ``snowmelt up``'s middleware.
"""
from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from typing import Iterable, Sequence

import orjson
from aiohttp import web

from processor import badrows
from processor.adapters import read_querystring, vendor_version
from processor.analytics import parse_tsv
from processor.enriched import FIELD_INDEX
from snowmelt.http_body import read_bounded

__all__ = ["MicroStore", "MicroApi", "PrivacyView", "raw_event", "collector_payload", "good_event",
           "bad_row_errors", "raw_event_from_bad_row", "MAX_FILTER_BYTES"]

#: Largest filter body a POST to /micro/good or /micro/bad may carry.
MAX_FILTER_BYTES = 64 * 1024


# --------------------------------------------------------------------------- Micro's shapes


def _payload_source_context(payload) -> tuple[dict, dict]:
    source = {"name": payload.collector or "", "encoding": payload.encoding or "UTF-8",
              "hostname": payload.hostname}
    return source, badrows.request_context(payload)


def raw_event(payload, vendor: str | None, version: str | None, params: dict) -> dict:
    """Micro's ``RawEvent``: one event's parameters and the request it came in."""
    source, context = _payload_source_context(payload)
    return {"api": {"vendor": vendor, "version": version}, "parameters": dict(params),
            "contentType": payload.content_type, "source": source, "context": context}


def collector_payload(payload, querystring: Iterable[tuple[str, str]] | None = None) -> dict:
    """Micro's ``CollectorPayload``: the request as the collector recorded it."""
    vv = vendor_version(payload.path) or (None, None)
    if querystring is None:
        querystring = read_querystring(payload)[0]  # as 3.9.0's loader reads it; none if refused
    source, context = _payload_source_context(payload)
    return {"api": {"vendor": vv[0], "version": vv[1]},
            "querystring": [{"name": k, "value": v} for k, v in querystring],
            "contentType": payload.content_type, "body": payload.body, "source": source, "context": context}


def raw_event_from_bad_row(raw: dict) -> dict:
    """A schema_violations / enrichment bad row's ``raw`` object -> Micro's RawEvent."""
    return {
        "api": {"vendor": raw.get("vendor"), "version": raw.get("version")},
        "parameters": {p.get("name"): p.get("value") for p in raw.get("parameters") or []},
        "contentType": raw.get("contentType"),
        "source": {"name": raw.get("loaderName"), "encoding": raw.get("encoding"), "hostname": raw.get("hostname")},
        "context": {"timestamp": raw.get("timestamp"), "ipAddress": raw.get("ipAddress"),
                    "useragent": raw.get("useragent"), "refererUri": raw.get("refererUri"),
                    "headers": raw.get("headers") or [], "userId": raw.get("userId")},
    }


def bad_row_errors(row: dict) -> list[str]:
    """A bad row's failure as a list of readable strings (Micro's ``errors``)."""
    schema = str(row.get("schema", ""))
    kind = schema.split("/")[1] if schema.count("/") >= 3 else schema
    failure = (row.get("data") or {}).get("failure") or {}
    if kind == "size_violation":
        return [(f"size_violation: {failure.get('actualSizeBytes')} bytes, more than the maximum of "
                 f"{failure.get('maximumAllowedSizeBytes')}: {failure.get('expectation')}")]
    if kind == "generic_error":
        return [f"generic_error: {e}" for e in failure.get("errors") or []]
    messages = failure.get("messages")
    if messages is None and "message" in failure:
        messages = [failure["message"]]
    out = []
    for m in messages or []:
        out.append(f"{kind}: {json.dumps(m, ensure_ascii=False, separators=(',', ':'))}")
    return out or [kind]


def _schema_uris(envelope: str) -> list[str]:
    if not envelope:
        return []
    try:
        data = json.loads(envelope).get("data")
    except (ValueError, AttributeError):
        return []
    return [c["schema"] for c in data or [] if isinstance(c, dict) and isinstance(c.get("schema"), str)]


def good_event(line: str, raw: dict | None) -> dict:
    """One enriched TSV line (and its raw event) -> Micro's ``GoodEvent``."""
    values = line.split("\t")
    event_type = values[FIELD_INDEX["event"]] or None
    schema = None
    if event_type == "unstruct":
        try:
            schema = json.loads(values[FIELD_INDEX["unstruct_event"]])["data"]["schema"]
        except (ValueError, KeyError, TypeError):
            schema = None
    elif values[FIELD_INDEX["event_vendor"]]:
        schema = "iglu:{}/{}/{}/{}".format(*(values[FIELD_INDEX[f]] for f in (
            "event_vendor", "event_name", "event_format", "event_version")))
    return {"event": parse_tsv(line), "eventType": event_type, "schema": schema,
            "contexts": _schema_uris(values[FIELD_INDEX["contexts"]]), "rawEvent": raw}



# --------------------------------------------------------------------------- memory


class BadEntry:
    """A bad row kept for ``/micro/bad``: its bytes and its request, shaped for the API when first read.

    Shaping (parsing the row) is left to a read of the API: a request of
    23,000 events that each become a bad row costs no parsing on the way in,
    and ``snowmelt up``'s stage process hands over bytes, not 23,000 documents
    (their unpickling held the serving process's interpreter 0.1 s).
    """

    __slots__ = ("row", "collector_payload", "_shaped")

    def __init__(self, row: bytes, collector_payload: dict | None) -> None:
        self.row, self.collector_payload, self._shaped = row, collector_payload, None

    def shaped(self) -> dict:
        if self._shaped is None:
            try:
                row = orjson.loads(self.row)
            except ValueError:
                row = {}
            if not isinstance(row, dict):
                row = {}
            payload = (row.get("data") or {}).get("payload")
            raw = None
            if isinstance(payload, dict) and isinstance(payload.get("raw"), dict):
                raw = raw_event_from_bad_row(payload["raw"])
            self._shaped = {"collectorPayload": self.collector_payload, "rawEvent": raw,
                            "errors": bad_row_errors(row)}
        return self._shaped


class MicroStore:
    """The most recent good events and bad rows, and counts since the last reset."""

    def __init__(self, max_events: int = 10_000):
        self.max_events = max_events
        self.good: collections.deque = collections.deque(maxlen=max_events)
        self.bad: collections.deque = collections.deque(maxlen=max_events)
        # bad rows not yet read: (rows as lines, each row's collector payload), the latest max_events kept
        self._pending: collections.deque = collections.deque()
        self._pending_rows = 0
        self.good_count = 0
        self.bad_count = 0

    def add(self, good: list[dict], bad_data, bad_sources: Sequence[dict | None]) -> None:
        """Keep ``good`` events and bad rows (``bad_data``: bytes of one row a line, or the region of a file that
        holds them, read only when asked for; each row's collector payload or None).

        The bad rows are kept as they came, split into rows and made
        :class:`BadEntry` only when read: a request of 23,000 bad rows costs
        nothing here, on the event loop."""
        self.good.extend(good)
        self.good_count += len(good)
        if not bad_sources:
            return
        self.bad_count += len(bad_sources)
        self._pending.append((bad_data, bad_sources))
        self._pending_rows += len(bad_sources)
        while self._pending_rows - len(self._pending[0][1]) >= self.max_events:  # older rows would not be shown
            self._pending_rows -= len(self._pending.popleft()[1])

    def _read_pending(self) -> None:
        while self._pending:
            data, sources = self._pending.popleft()
            keep = min(self.max_events, len(sources))
            if isinstance(data, bytes):
                rows = data.split(b"\n", len(sources))[:len(sources)][-keep:]
            else:  # where the rows went in a file (snowmelt.up_files.Region): only the last ones are read
                rows = data.last_lines(keep)
            self.bad.extend(map(BadEntry, rows, sources[len(sources) - len(rows):]))
        self._pending_rows = 0

    def summary(self) -> dict:
        return {"total": self.good_count + self.bad_count, "good": self.good_count, "bad": self.bad_count}

    def reset(self) -> dict:
        self.good.clear()
        self.bad.clear()
        self._pending.clear()
        self._pending_rows = 0
        self.good_count = self.bad_count = 0
        return self.summary()

    def query_good(self, event_type=None, schema=None, contexts=None, limit=None) -> list[dict]:
        wanted = set(contexts or ())
        out = [e for e in list(self.good)
               if (event_type is None or e["eventType"] == event_type)
               and (schema is None or e["schema"] == schema)
               and (not wanted or wanted.issubset(e["contexts"]))]
        return _last(out, limit)

    def query_bad(self, vendor=None, version=None, limit=None) -> list[dict]:
        def api(e):
            return (e.get("collectorPayload") or {}).get("api") or (e.get("rawEvent") or {}).get("api") or {}
        self._read_pending()
        out = [e for e in (entry.shaped() for entry in list(self.bad))
               if (vendor is None or api(e).get("vendor") == vendor)
               and (version is None or api(e).get("version") == version)]
        return _last(out, limit)


def _last(items: list, limit) -> list:
    if limit is None:
        return items
    return items[-limit:] if limit > 0 else []


# --------------------------------------------------------------------------- privacy


#: Tracker parameter -> the atomic field it fills, for the fields the PII enrichment may pseudonymise.
_PARAM_FIELDS = {"uid": "user_id", "ip": "user_ipaddress", "fp": "user_fingerprint", "duid": "domain_userid",
                 "nuid": "network_userid", "tnuid": "network_userid", "tr_id": "tr_orderid", "ti_id": "ti_orderid",
                 "se_ca": "se_category", "se_ac": "se_action", "se_la": "se_label", "se_pr": "se_property",
                 "sid": "domain_sessionid"}
#: Fields the enrichment derives from the page URL or referrer (utm_term, click ids, ``_sp``).
_URL_FIELDS = frozenset({"mkt_term", "mkt_content", "mkt_clickid", "refr_domain_userid"})
_URL_PARAMS = ("url", "refr")
_JSON_PARAMS = ("ue_pr", "ue_px", "co", "cx")
#: Request headers that carry who the user is (addresses, cookies, credentials).
_IDENTITY_HEADERS = ("cookie", "x-forwarded-for", "forwarded", "x-real-ip", "true-client-ip",
                     "cf-connecting-ip", "x-client-ip", "authorization")


@dataclass(frozen=True)
class PrivacyView:
    """What ``rawEvent`` may show when privacy enrichments run: never more than the enriched event shows.

    * a parameter whose atomic field the PII enrichment pseudonymises
      (``uid`` -> ``user_id``, ``ip``, ``fp``, ``duid``, ``nuid``/``tnuid``,
      ``sid``, ``tr_id``, ``ti_id``, ``se_*``) shows the enriched value;
    * ``url`` and ``refr`` (and the request's ``refererUri``) are dropped when
      a field derived from them (``mkt_term``, ``mkt_content``,
      ``mkt_clickid``, ``refr_domain_userid``) is pseudonymised;
    * ``ue_pr``/``ue_px``/``co``/``cx`` are dropped when the enrichment
      pseudonymises JSON fields (the enriched event's ``unstruct_event`` and
      ``contexts`` hold their pseudonymised form);
    * with the PII or the IP anonymisation enrichment on, ``context.ipAddress``
      is the enriched ``user_ipaddress``, ``context.userId`` the enriched
      ``network_userid``, and the headers that identify the user (``Cookie``,
      ``X-Forwarded-For``, ``Forwarded``, ``X-Real-IP``, ``Authorization``...)
      are dropped.
    """

    pii_fields: frozenset[str] = frozenset()
    pii_json: bool = False
    anon_ip: bool = False

    @classmethod
    def of(cls, enrichments) -> "PrivacyView":
        from processor.enrichments.anon_ip import AnonIp
        from processor.enrichments.pii import PiiPseudonymizer

        fields, json_rules, anon = set(), False, False
        for enrichment in enrichments:
            if isinstance(enrichment, PiiPseudonymizer):
                fields.update(enrichment.pojo_fields)
                json_rules = json_rules or bool(enrichment.json_rules)
            elif isinstance(enrichment, AnonIp):
                anon = True
        return cls(frozenset(fields), json_rules, anon)

    @property
    def active(self) -> bool:
        return bool(self.pii_fields or self.pii_json or self.anon_ip)

    def apply(self, raw: dict, event: dict) -> dict:
        """``raw`` (a RawEvent) as this view shows it, given the enriched ``event`` (SDK JSON)."""
        if not self.active:
            return raw
        params = dict(raw.get("parameters") or {})
        for param, name in _PARAM_FIELDS.items():
            if param in params and name in self.pii_fields:
                params[param] = event.get(name)
        if self.pii_fields & _URL_FIELDS:
            for param in _URL_PARAMS:
                params.pop(param, None)
        if self.pii_json:
            for param in _JSON_PARAMS:
                params.pop(param, None)
        context = dict(raw.get("context") or {})
        context["ipAddress"] = event.get("user_ipaddress")
        context["userId"] = event.get("network_userid")
        context["headers"] = [h for h in context.get("headers") or []
                              if h.split(":", 1)[0].strip().lower() not in _IDENTITY_HEADERS]
        if self.pii_fields & _URL_FIELDS:
            context["refererUri"] = None
        return {**raw, "parameters": params, "context": context}



# --------------------------------------------------------------------------- HTTP


def _dumps(item) -> bytes:
    try:
        return orjson.dumps(item)
    except TypeError:  # text that is not UTF-8 (a lone surrogate): escaped, not refused
        return json.dumps(item, ensure_ascii=True).encode()


class MicroApi:
    """The ``/micro`` routes over a :class:`MicroStore` (see the module docstring)."""

    def __init__(self, store: MicroStore) -> None:
        self.store = store

    def add_routes(self, app: web.Application) -> None:
        """Add the routes; call before any catch-all route."""
        for path, handler in (("/micro/all", self.handle_all), ("/micro/good", self.handle_good),
                              ("/micro/bad", self.handle_bad)):
            app.router.add_route("GET", path, handler)
            app.router.add_route("POST", path, handler)
        app.router.add_route("POST", "/micro/reset", self.handle_reset)
        app.router.add_route("GET", "/micro/reset", self.refuse_get_reset)

    @staticmethod
    async def refuse_get_reset(_request: web.Request) -> web.Response:
        return web.json_response({"error": "method_not_allowed",
                                  "message": "reset with POST and Content-Type: application/json"},
                                 status=405, headers={"Allow": "POST"})

    @staticmethod
    async def _filters(request: web.Request, allowed: dict[str, type]) -> dict:
        if request.method != "POST" or not request.can_read_body:
            return {}
        data = await read_bounded(request, MAX_FILTER_BYTES)
        if data is None:
            raise web.HTTPBadRequest(text=f"the filter body is larger than {MAX_FILTER_BYTES} bytes")
        if not data.strip():
            return {}
        try:
            body = orjson.loads(data)
        except (ValueError, RecursionError):
            raise web.HTTPBadRequest(text="the body must be a JSON object of filters")
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="the body must be a JSON object of filters")
        out = {}
        for name, value in body.items():
            if name not in allowed:
                raise web.HTTPBadRequest(text=f"unknown filter {name[:40]!r} (known: {', '.join(allowed)})")
            if value is None:
                continue
            kind = allowed[name]
            ok = (isinstance(value, int) and not isinstance(value, bool)) if kind is int else \
                (isinstance(value, list) and all(isinstance(v, str) for v in value)) if kind is list else \
                isinstance(value, kind)
            if not ok:
                raise web.HTTPBadRequest(text=f"filter {name!r} must be a {kind.__name__}")
            out[name] = value
        return out

    @staticmethod
    async def _stream(request: web.Request, items: list) -> web.StreamResponse:
        """``items`` as one JSON array, written one item at a time (the writer waits for the socket to drain)."""
        response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        await response.write(b"[")
        for i, item in enumerate(items):
            await response.write((b"," if i else b"") + _dumps(item))
        await response.write(b"]")
        await response.write_eof()
        return response

    async def handle_all(self, _request: web.Request) -> web.Response:
        return web.json_response(self.store.summary(), headers={"Cache-Control": "no-store"})

    async def handle_good(self, request: web.Request) -> web.StreamResponse:
        filters = await self._filters(request, {"event_type": str, "schema": str, "contexts": list, "limit": int})
        return await self._stream(request, self.store.query_good(**filters))

    async def handle_bad(self, request: web.Request) -> web.StreamResponse:
        filters = await self._filters(request, {"vendor": str, "version": str, "limit": int})
        return await self._stream(request, self.store.query_bad(**filters))

    async def handle_reset(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json" and not (
                "Authorization" in request.headers or "X-Snowmelt-Token" in request.headers):
            return web.json_response({"error": "json_required",
                                      "message": "reset with Content-Type: application/json (or a token header)"},
                                     status=415)
        return web.json_response(self.store.reset(), headers={"Cache-Control": "no-store"})
