"""The shapes of Snowplow Micro's API (``snowmelt.micro``) and what they may show: made where an event is
enriched (``snowmelt up``'s stage process, :mod:`snowmelt.up_stage`) and where a bad row is read for the API.

No HTTP here: the stage process imports this module, and aiohttp (15 MB resident) only where it serves.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable

import orjson

from processor import badrows
from processor.adapters import read_querystring, vendor_version
from processor.analytics import parse_tsv
from processor.enriched import FIELD_INDEX

__all__ = ["GoodEntry", "PrivacyView", "raw_event", "collector_payload", "bad_row_errors",
           "raw_event_from_bad_row", "json_bytes"]


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


def _event_schema(values: list[str], event_type: str | None) -> str | None:
    if event_type == "unstruct":
        try:
            return json.loads(values[FIELD_INDEX["unstruct_event"]])["data"]["schema"]
        except (ValueError, KeyError, TypeError):
            return None
    if values[FIELD_INDEX["event_vendor"]]:
        return "iglu:{}/{}/{}/{}".format(*(values[FIELD_INDEX[f]] for f in (
            "event_vendor", "event_name", "event_format", "event_version")))
    return None


def json_bytes(item) -> bytes:
    """``item`` as JSON; text that is not UTF-8 (a lone surrogate) escaped, not refused."""
    try:
        return orjson.dumps(item)
    except TypeError:
        return json.dumps(item, ensure_ascii=True).encode()


class GoodEntry:
    """A good event kept for ``/micro/good``: its enriched line, its raw event (as JSON) and what the filters
    read; Micro's ``GoodEvent`` is made from them each time it is read (:meth:`shaped`).

    Made where the event is enriched (:meth:`of`, in ``snowmelt up``'s stage process): what crosses to the
    serving process is the line (sent for the files anyway, and pickled once for both), about 1.5 KB of raw
    event and three short fields, not the ``GoodEvent``'s nested dicts.  Those cost the stage process more
    than enriching the event (the SDK's parsing of the line, then pickling), the serving process about 24 us an
    event to unpickle on its event loop, and 8 KB of memory an event kept, against about 4 KB this way
    (``bench/RESULTS.md``, "good events kept for the Micro API as their line").
    """

    __slots__ = ("line", "raw", "event_type", "schema", "contexts")

    def __init__(self, line: str, raw: bytes, event_type: str | None, schema: str | None,
                 contexts: tuple[str, ...]) -> None:
        self.line, self.raw, self.event_type, self.schema, self.contexts = line, raw, event_type, schema, contexts

    @classmethod
    def of(cls, line: str, raw: dict | None, privacy: "PrivacyView") -> "GoodEntry":
        """The entry of an enriched ``line`` and its raw event, which ``privacy`` may show only in part."""
        values = line.split("\t")
        if raw is not None:
            raw = privacy.apply(raw, _LineFields(values))
        event_type = values[FIELD_INDEX["event"]] or None
        # a copy of orjson's output, which keeps the whole buffer it wrote into (16 KB for 2 KB of JSON)
        return cls(line, bytes(memoryview(json_bytes(raw))), event_type, _event_schema(values, event_type),
                   tuple(_schema_uris(values[FIELD_INDEX["contexts"]])))

    def shaped(self) -> dict:
        """Micro's ``GoodEvent``; :class:`processor.analytics.ParseError` if the line cannot be read as the SDK
        reads it."""
        try:
            raw = orjson.loads(self.raw)
        except ValueError:  # an escaped lone surrogate, which orjson refuses
            raw = json.loads(self.raw)
        return {"event": parse_tsv(self.line), "eventType": self.event_type, "schema": self.schema,
                "contexts": list(self.contexts), "rawEvent": raw}


class _LineFields:
    """The atomic fields of an enriched line as the SDK's JSON has them, for :meth:`PrivacyView.apply` (it reads
    text fields only: the text, None when empty)."""

    __slots__ = ("values",)

    def __init__(self, values: list[str]) -> None:
        self.values = values

    def get(self, name: str):
        return self.values[FIELD_INDEX[name]] or None


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
