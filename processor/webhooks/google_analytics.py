"""Google Analytics Measurement Protocol (Universal Analytics): ``/com.google.analytics.measurement-protocol/v1``.

What arrives
    What ``analytics.js`` (with Snowplow's GA plugin) or any Measurement Protocol
    client sends to ``/collect`` or ``/batch``: a POST body of one hit per line,
    each hit form-encoded (``v=1&tid=UA-1-1&cid=555&t=pageview&dp=%2Fhome``).
    ``t`` is the hit type: ``pageview``, ``screenview``, ``event``,
    ``transaction``, ``item``, ``social``, ``exception`` or ``timing``.

What Snowplow does (and this module)
    Every hit becomes one self-describing event (``e=ue``, ``p=srv``,
    ``tv=com.google.analytics.measurement-protocol-v1``):

    * the event is the hit type's schema of
      ``iglu:com.google.analytics.measurement-protocol/*`` (``pageview`` ->
      ``page_view``, ``screenview`` -> ``screen_view``, the others by name)
      filled from that hit type's parameters (:data:`HIT_TYPES`);
    * every other group of parameters the hit carries becomes a context
      (:data:`CONTEXTS`: ``hit`` from ``t``/``ni``, ``general``, ``user``,
      ``session``, ``traffic_source``, ``system_info``, ``link``, ``app``,
      ``product_action``, ``content_experiment``, ``promotion_action``, and
      ``page_view`` for hits other than page views), plus one context per
      indexed parameter family: ``cd<i>`` custom_dimension, ``cm<i>``
      custom_metric, ``cg<i>`` content_group, ``pr<i>..`` product,
      ``pr<i>cd<j>`` / ``pr<i>cm<j>`` product custom dimension / metric,
      ``il<i>nm`` product_impression_list, ``il<i>pi<j>..`` product_impression
      and its ``cd``/``cm``, ``promo<i>..`` promotion;
    * values are converted to the schema's types: ``1``/``0`` flags to
      booleans, counts and times to integers, prices to numbers;
    * some parameters also fill Snowplow's own fields (:func:`direct_fields`):
      ``uip`` -> ``ip``, ``ua`` -> ``ua``, ``dl`` -> ``url``, ``dt`` -> ``page``,
      ``dr`` -> ``refr``, ``de`` -> ``cs``, ``sd`` -> ``cd``, ``ul`` -> ``lang``,
      ``je`` -> ``f_java`` and the e-commerce ``ti ta tr ts tt in ip iq ic iv
      cu`` -> ``tr_*`` / ``ti_*``.

    Bad input is an ``adapter_failures`` bad row: an empty body, a hit without
    ``t`` (field ``t``), an unknown hit type (the SchemaMapping message naming
    it and the known types), a value that does not convert (the parameter
    named), a line that cannot be form-decoded.  One bad hit fails the request.

Differences
    Parameters of no known group are dropped (as Snowplow does).  The query
    string is not read (Snowplow reads only the body).  The hit-level currency
    ``cu`` is also copied into each product and product impression context.
"""
from __future__ import annotations

import re
from typing import Callable

from ext import CollectorPayload
from processor import jsontext
from processor.adapters import CONTEXTS_SCHEMA, Adapted, register
from processor.webhooks._common import (
    decode_form,
    events_or_failure,
    failed,
    iglu_uri,
    input_error,
    require_body,
    schema_mapping,
    ue_event,
)

VENDOR = "com.google.analytics.measurement-protocol"
VERSION = "v1"
TRACKER_VERSION = "com.google.analytics.measurement-protocol-v1"


# -- value conversions (each raises ValueError with the expectation) -----------------

def _string(value: str):
    return value


def _integer(value: str):
    try:
        return int(value)
    except ValueError:
        raise ValueError("an integer") from None


def _number(value: str):
    try:
        number = float(value)
    except ValueError:
        raise ValueError("a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("a finite number")
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def _boolean(value: str):
    if value == "1":
        return True
    if value == "0":
        return False
    raise ValueError("a boolean: 1 or 0")


S, I, N, B = _string, _integer, _number, _boolean
Table = dict[str, tuple[str, Callable]]

#: hit type -> (schema name, parameter -> (field, conversion))
HIT_TYPES: dict[str, tuple[str, Table]] = {
    "pageview": ("page_view", {"dl": ("documentLocationUrl", S), "dh": ("documentHostName", S),
                               "dp": ("documentPath", S), "dt": ("documentTitle", S)}),
    "screenview": ("screen_view", {"cd": ("screenName", S)}),
    "event": ("event", {"ec": ("category", S), "ea": ("action", S), "el": ("label", S), "ev": ("value", I)}),
    "transaction": ("transaction", {"ti": ("id", S), "ta": ("affiliation", S), "tr": ("revenue", N),
                                    "ts": ("shipping", N), "tt": ("tax", N), "tcc": ("couponCode", S),
                                    "cu": ("currencyCode", S)}),
    "item": ("item", {"ti": ("transactionId", S), "in": ("name", S), "ip": ("price", N), "iq": ("quantity", I),
                      "ic": ("code", S), "iv": ("category", S), "cu": ("currencyCode", S)}),
    "social": ("social", {"sn": ("network", S), "sa": ("action", S), "st": ("actionTarget", S)}),
    "exception": ("exception", {"exd": ("description", S), "exf": ("isFatal", B)}),
    "timing": ("timing", {"utc": ("userTimingCategory", S), "utv": ("userTimingVariableName", S),
                          "utt": ("userTimingTime", I), "utl": ("userTimingLabel", S),
                          "plt": ("pageLoadTime", I), "dns": ("dnsTime", I), "pdt": ("pageDownloadTime", I),
                          "rrt": ("redirectResponseTime", I), "tcp": ("tcpConnectTime", I),
                          "srt": ("serverResponseTime", I), "dit": ("domInteractiveTime", I),
                          "clt": ("contentLoadTime", I)}),
}
EXPECTED_MAPPING = {t: iglu_uri(VENDOR, name) for t, (name, _) in HIT_TYPES.items()}

#: context schema name -> parameter -> (field, conversion); in output order.
CONTEXTS: dict[str, Table] = {
    "hit": {"t": ("type", S), "ni": ("nonInteractionHit", B)},
    "general": {"v": ("protocolVersion", S), "tid": ("trackingId", S), "aip": ("anonymizeIp", B),
                "ds": ("dataSource", S), "qt": ("queueTime", I), "z": ("cacheBuster", S)},
    "user": {"cid": ("clientId", S), "uid": ("userId", S)},
    "session": {"sc": ("sessionControl", S), "uip": ("ipOverride", S), "ua": ("userAgentOverride", S),
                "geoid": ("geographicalOverride", S)},
    "traffic_source": {"dr": ("documentReferrer", S), "cn": ("campaignName", S), "cs": ("campaignSource", S),
                       "cm": ("campaignMedium", S), "ck": ("campaignKeyword", S), "cc": ("campaignContent", S),
                       "ci": ("campaignId", S), "gclid": ("googleAdwordsId", S), "dclid": ("googleDisplayAdsId", S)},
    "system_info": {"sr": ("screenResolution", S), "vp": ("viewportSize", S), "de": ("documentEncoding", S),
                    "sd": ("screenColors", S), "ul": ("userLanguage", S), "je": ("javaEnabled", B),
                    "fl": ("flashVersion", S)},
    "link": {"linkid": ("id", S)},
    "app": {"an": ("name", S), "aid": ("id", S), "av": ("version", S), "aiid": ("installerId", S)},
    "product_action": {"pa": ("productAction", S), "pal": ("productActionList", S), "cos": ("checkoutStep", I),
                       "col": ("checkoutStepOption", S)},
    "content_experiment": {"xid": ("id", S), "xvar": ("variant", S)},
    "promotion_action": {"promoa": ("promotionAction", S)},
    "page_view": HIT_TYPES["pageview"][1],
}

_PRODUCT = {"id": ("sku", S), "nm": ("name", S), "br": ("brand", S), "ca": ("category", S), "va": ("variant", S),
            "pr": ("price", N), "qt": ("quantity", I), "cc": ("couponCode", S), "ps": ("position", I)}
_IMPRESSION = {k: v for k, v in _PRODUCT.items() if k in ("id", "nm", "br", "ca", "va", "ps", "pr")}
_PROMOTION = {"id": ("id", S), "nm": ("name", S), "cr": ("creative", S), "ps": ("position", S)}

# Indexed families: (schema name, pattern, index field names, value field table or (field, conversion)).
_INDEXED: list[tuple[str, re.Pattern, tuple[str, ...], Table | tuple[str, Callable]]] = [
    ("custom_dimension", re.compile(r"cd(\d+)"), ("index",), ("value", S)),
    ("custom_metric", re.compile(r"cm(\d+)"), ("index",), ("value", N)),
    ("content_group", re.compile(r"cg(\d+)"), ("index",), ("value", S)),
    ("product_custom_dimension", re.compile(r"pr(\d+)cd(\d+)"), ("productIndex", "dimensionIndex"), ("value", S)),
    ("product_custom_metric", re.compile(r"pr(\d+)cm(\d+)"), ("productIndex", "metricIndex"), ("value", I)),
    ("product", re.compile(r"pr(\d+)(id|nm|br|ca|va|pr|qt|cc|ps)"), ("index",), _PRODUCT),
    ("product_impression_list", re.compile(r"il(\d+)nm"), ("index",), ("name", S)),
    ("product_impression_custom_dimension", re.compile(r"il(\d+)pi(\d+)cd(\d+)"),
     ("listIndex", "productIndex", "customDimensionIndex"), ("value", S)),
    ("product_impression_custom_metric", re.compile(r"il(\d+)pi(\d+)cm(\d+)"),
     ("listIndex", "productIndex", "customMetricIndex"), ("value", I)),
    ("product_impression", re.compile(r"il(\d+)pi(\d+)(id|nm|br|ca|va|ps|pr)"), ("listIndex", "productIndex"),
     _IMPRESSION),
    ("promotion", re.compile(r"promo(\d+)(id|nm|cr|ps)"), ("index",), _PROMOTION),
]


def direct_fields(hit_type: str) -> dict[str, str]:
    """GA parameter -> Snowplow tracker parameter, for the fields Snowplow fills directly."""
    transaction = hit_type == "transaction"
    return {"uip": "ip", "ua": "ua", "dl": "url", "dt": "page", "dr": "refr", "de": "cs", "sd": "cd",
            "ul": "lang", "je": "f_java", "ti": "tr_id" if transaction else "ti_id", "ta": "tr_af",
            "tr": "tr_tt", "ts": "tr_sh", "tt": "tr_tx", "in": "ti_nm", "ip": "ti_pr", "iq": "ti_qu",
            "ic": "ti_sk", "iv": "ti_ca", "cu": "tr_cu" if transaction else "ti_cu"}


def _fill(table: Table, hit: dict[str, str], errors: list[dict]) -> dict:
    out = {}
    for param, (name, convert) in table.items():
        if param in hit:
            out[name] = _convert(param, hit[param], convert, errors)
    return out


def _convert(param: str, value: str, convert: Callable, errors: list[dict]):
    try:
        return convert(value)
    except ValueError as exc:
        errors.append(input_error(param, value, f"{param} must be {exc}"))
        return None


def _indexed_contexts(hit: dict[str, str], errors: list[dict]) -> list[dict]:
    found: dict[tuple[str, tuple[int, ...]], dict] = {}
    for param, value in hit.items():
        for name, pattern, index_fields, values in _INDEXED:
            match = pattern.fullmatch(param)
            if not match:
                continue
            indexes = tuple(int(g) for g in match.groups()[:len(index_fields)])
            entity = found.setdefault((name, indexes), dict(zip(index_fields, indexes)))
            field, convert = values[match.group(len(index_fields) + 1)] if isinstance(values, dict) else values
            entity[field] = _convert(param, value, convert, errors)
            break
    if "cu" in hit:
        for (name, _), entity in found.items():
            if name in ("product", "product_impression"):
                entity["currencyCode"] = hit["cu"]
    order = {name: i for i, (name, *_rest) in enumerate(_INDEXED)}
    return [{"schema": iglu_uri(VENDOR, name), "data": data}
            for (name, _), data in sorted(found.items(), key=lambda item: (order[item[0][0]], item[0][1]))]


def adapt_hit(hit: dict[str, str]) -> tuple[dict[str, str] | None, list[dict]]:
    """The tracker parameters of one hit, or the messages saying why there are none."""
    hit_type = hit.get("t")
    if not hit_type:
        return None, [input_error("t", hit_type, "the hit type t must be present: cannot determine the hit's schema")]
    if hit_type not in HIT_TYPES:
        return None, [schema_mapping(hit_type, EXPECTED_MAPPING, "no schema associated with the provided hit type t")]
    errors: list[dict] = []
    schema_name, table = HIT_TYPES[hit_type]
    data = _fill(table, hit, errors)
    contexts = []
    for name, context_table in CONTEXTS.items():
        if name == schema_name:
            continue  # the hit's own fields are the event, not a context
        fields = _fill(context_table, hit, errors)
        if fields:
            contexts.append({"schema": iglu_uri(VENDOR, name), "data": fields})
    contexts.extend(_indexed_contexts(hit, errors))
    if errors:
        return None, errors
    extra = {target: hit[param] for param, target in direct_fields(hit_type).items() if param in hit}
    if contexts:
        extra["co"] = jsontext.dumps({"schema": CONTEXTS_SCHEMA, "data": contexts})
    return ue_event(iglu_uri(VENDOR, schema_name), data, TRACKER_VERSION, (), extra=extra), []


@register(VENDOR, VERSION)
def adapt_measurement_protocol(payload: CollectorPayload, querystring: list) -> Adapted:
    """One event per hit line of the body."""
    missing = require_body(payload.body, "Google Analytics")
    if missing:
        return failed(missing)
    events, errors = [], []
    for line in payload.body.splitlines():
        if not line.strip():
            continue
        pairs, error = decode_form(line.strip())
        if error:
            errors.append(error)
            continue
        event, hit_errors = adapt_hit(dict(pairs))
        errors.extend(hit_errors)
        if event is not None:
            events.append(event)
    return events_or_failure(events, errors, empty=input_error("body", payload.body[:1024], "at least one hit"))
