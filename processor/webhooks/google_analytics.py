"""Google Analytics Measurement Protocol (Universal Analytics): ``/com.google.analytics/v1``.

What arrives
    What ``analytics.js`` (with Snowplow's GA plugin) or any Measurement Protocol
    client sends to ``/collect`` or ``/batch``: a POST body of one hit per line,
    each hit form-encoded (``v=1&tid=UA-1-1&cid=555&t=pageview&dp=%2Fhome``).
    ``t`` is the hit type: ``pageview``, ``screenview``, ``event``,
    ``transaction``, ``item``, ``social``, ``exception`` or ``timing``.

What Snowplow's enrich 3.9.0 does (and this module)
    Every line of the body (split on LF or FF, a CR before the LF dropped)
    becomes one self-describing event (``e=ue``, ``p=srv``,
    ``tv=com.google.analytics.measurement-protocol-v1``):

    * the line is read as the query of ``java.net.URI`` and Apache's
      ``URLEncodedUtils`` (a space is refused with ``URI``'s message);
    * the event is the hit type's schema of
      ``iglu:com.google.analytics.measurement-protocol/*`` filled from that hit
      type's parameters (:data:`HIT_TYPES`);
    * each group of parameters the hit carries becomes a context
      (:data:`CONTEXTS`, ``page_view`` too for hits other than page views), and
      each indexed family (``pr1id``, ``pr1cd2``, ``il1pi2nm``, ``promo1id``,
      ``cd1``, ``cm1``, ``cg1``) contexts of its own, one per index, the hit's
      ``cu`` copied into ``product`` and ``product_impression``;
    * values are converted to the schema's types: ``1``/``0`` flags to
      booleans, counts and indexes to ``Integer.parseInt`` integers, prices to
      doubles rounded half-even to two places (``12.228`` is ``12.23``),
      ``cm<i>`` to an unrounded double; a double is written as Java writes it
      (``1.0``);
    * some parameters also fill Snowplow's own fields (:func:`direct_fields`).

    The contexts go in ``co`` with the ``contexts/jsonschema/1-0-1`` envelope.
    Objects and lists come out in the order of the Scala ``Map`` 3.9.0 builds
    them in (:mod:`processor.webhooks._scala`).

    Bad input is an ``adapter_failures`` bad row with 3.9.0's messages: an empty
    body (``empty body``), a hit without ``t`` (``no t parameter provided``, the
    line as the value), an unknown hit type (``no matching hit type`` then the
    SchemaMapping message), a value that does not convert (named by its schema
    field: ``cannot be converted to java.lang.Integer``, ``cannot be converted
    to Double``, ``cannot be converted to boolean, only 1 or 0 are
    supported``), a parameter with a digit that is not an indexed family name.
    The messages of every line are reported; one bad hit fails the request.

Differences
    A ``null`` integer (``ev=null``) makes 3.9.0 throw (an unboxed null); here it
    is refused as not an integer.  Java's ``Double.toString`` of JDK 17 is not
    always the shortest text; this writes the shortest.
"""
from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Callable

from ext import CollectorPayload
from ext.javanum import JavaNumberFormat, java_big_decimal, java_integer
from processor.adapters import Adapted, register
from processor.webhooks._common import (
    JavaDouble as Double,
    failed,
    iglu_uri,
    input_error,
    java_form_params,
    json_text as _text,
    schema_mapping,
)
from processor.webhooks._scala import group_by_order, immutable_order, schema_key_hash

PATH_VENDOR = "com.google.analytics"  # the collector path's vendor (3.9.0's AdapterRegistry): /com.google.analytics/v1
VENDOR = "com.google.analytics.measurement-protocol"  # the schemas' vendor
VERSION = "v1"
TRACKER_VERSION = "com.google.analytics.measurement-protocol-v1"
CONTEXTS_101 = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
UNSTRUCT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
IF = "IF"  # marks an index taken from a parameter's name (pr12id -> IFpr: 12)


# -- values ---------------------------------------------------------------------------

class Refused(ValueError):
    """A value a translation does not take; ``expectation`` is 3.9.0's."""


def _string(value: str):
    return value


def _integer(value: str):
    number = java_integer(value, 32)
    if number is None:
        raise Refused("cannot be converted to java.lang.Integer")
    return number


def _scala_big_decimal(value: str) -> Decimal:
    try:
        return java_big_decimal(value)
    except JavaNumberFormat:
        raise Refused("cannot be converted to Double") from None


def _two_decimals(value: str):
    number = _scala_big_decimal(value)
    if number.adjusted() > 400:  # beyond any double: Infinity, written null
        return Double("inf")
    return Double(float(number.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)))


def _double(value: str):
    return Double(float(_scala_big_decimal(value)))


def _boolean(value: str):
    if value == "1":
        return True
    if value == "0":
        return False
    raise Refused("cannot be converted to boolean, only 1 or 0 are supported")


S, I, D2, D, B = _string, _integer, _two_decimals, _double, _boolean
Table = dict[str, tuple[str, Callable]]

#: hit type -> (schema name, parameter -> (field, translation))
HIT_TYPES: dict[str, tuple[str, Table]] = {
    "pageview": ("page_view", {"dl": ("documentLocationUrl", S), "dh": ("documentHostName", S),
                               "dp": ("documentPath", S), "dt": ("documentTitle", S)}),
    "screenview": ("screen_view", {"cd": ("screenName", S)}),
    "event": ("event", {"ec": ("category", S), "ea": ("action", S), "el": ("label", S), "ev": ("value", I)}),
    "transaction": ("transaction", {"ti": ("id", S), "ta": ("affiliation", S), "tr": ("revenue", D2),
                                    "ts": ("shipping", D2), "tt": ("tax", D2), "tcc": ("couponCode", S),
                                    "cu": ("currencyCode", S)}),
    "item": ("item", {"ti": ("transactionId", S), "in": ("name", S), "ip": ("price", D2), "iq": ("quantity", I),
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
# 3.9.0 reports the known hit types as a Scala Map of eight: in its hash order
EXPECTED_MAPPING = {t: iglu_uri(VENDOR, HIT_TYPES[t][0]) for t in immutable_order(list(HIT_TYPES))}

#: (vendor, schema name) -> parameter -> (field, translation), for contexts of one entity each
CONTEXTS: dict[tuple[str, str], Table] = {
    (VENDOR, "page_view"): HIT_TYPES["pageview"][1],
    ("com.google.analytics", "undocumented"): {"a": ("a", S), "jid": ("jid", S), "gjid": ("gjid", S)},
    ("com.google.analytics", "private"): {"_v": ("v", S), "_u": ("u", S), "_gid": ("gid", S), "_s": ("s", I),
                                          "_r": ("r", I)},
    (VENDOR, "general"): {"v": ("protocolVersion", S), "tid": ("trackingId", S), "aip": ("anonymizeIp", B),
                          "ds": ("dataSource", S), "qt": ("queueTime", I), "z": ("cacheBuster", S)},
    (VENDOR, "user"): {"cid": ("clientId", S), "uid": ("userId", S)},
    (VENDOR, "session"): {"sc": ("sessionControl", S), "uip": ("ipOverride", S), "ua": ("userAgentOverride", S),
                          "geoid": ("geographicalOverride", S)},
    (VENDOR, "traffic_source"): {"dr": ("documentReferrer", S), "cn": ("campaignName", S),
                                 "cs": ("campaignSource", S), "cm": ("campaignMedium", S),
                                 "ck": ("campaignKeyword", S), "cc": ("campaignContent", S),
                                 "ci": ("campaignId", S), "gclid": ("googleAdwordsId", S),
                                 "dclid": ("googleDisplayAdsId", S)},
    (VENDOR, "system_info"): {"sr": ("screenResolution", S), "vp": ("viewportSize", S),
                              "de": ("documentEncoding", S), "sd": ("screenColors", S),
                              "ul": ("userLanguage", S), "je": ("javaEnabled", B), "fl": ("flashVersion", S)},
    (VENDOR, "link"): {"linkid": ("id", S)},
    (VENDOR, "app"): {"an": ("name", S), "aid": ("id", S), "av": ("version", S), "aiid": ("installerId", S)},
    (VENDOR, "product_action"): {"pa": ("productAction", S), "pal": ("productActionList", S),
                                 "cos": ("checkoutStep", I), "col": ("checkoutStepOption", S)},
    (VENDOR, "content_experiment"): {"xid": ("id", S), "xvar": ("variant", S)},
    (VENDOR, "hit"): {"t": ("type", S), "ni": ("nonInteractionHit", B)},
    (VENDOR, "promotion_action"): {"promoa": ("promotionAction", S)},
}
_CONTEXT_OF = {param: key for key, table in CONTEXTS.items() for param in table}

#: schema name -> name part (IF-marked for indexes) -> (field, translation), in 3.9.0's list order
COMPOSITE: dict[str, Table] = {
    "product": {"IFpr": ("index", I), "prid": ("sku", S), "prnm": ("name", S), "prbr": ("brand", S),
                "prca": ("category", S), "prva": ("variant", S), "prpr": ("price", D2), "prqt": ("quantity", I),
                "prcc": ("couponCode", S), "prps": ("position", I), "cu": ("currencyCode", S)},
    "product_custom_dimension": {"IFprcd": ("productIndex", I), "IFcd": ("dimensionIndex", I),
                                 "prcd": ("value", S)},
    "product_custom_metric": {"IFprcm": ("productIndex", I), "IFcm": ("metricIndex", I), "prcm": ("value", I)},
    "product_impression_list": {"IFil": ("index", I), "ilnm": ("name", S)},
    "product_impression": {"IFilpi": ("listIndex", I), "IFpi": ("productIndex", I), "ilpiid": ("sku", S),
                           "ilpinm": ("name", S), "ilpibr": ("brand", S), "ilpica": ("category", S),
                           "ilpiva": ("variant", S), "ilpips": ("position", I), "ilpipr": ("price", D2),
                           "cu": ("currencyCode", S)},
    "product_impression_custom_dimension": {"IFilpicd": ("listIndex", I), "IFpicd": ("productIndex", I),
                                            "IFcd": ("customDimensionIndex", I), "ilpicd": ("value", S)},
    "product_impression_custom_metric": {"IFilpicm": ("listIndex", I), "IFpicm": ("productIndex", I),
                                         "IFcm": ("customMetricIndex", I), "ilpicm": ("value", I)},
    "promotion": {"IFpromo": ("index", I), "promoid": ("id", S), "promonm": ("name", S),
                  "promocr": ("creative", S), "promops": ("position", S)},
    "custom_dimension": {"IFcd": ("index", I), "cd": ("value", S)},
    "custom_metric": {"IFcm": ("index", I), "cm": ("value", D)},
    "content_group": {"IFcg": ("index", I), "cg": ("value", S)},
}
_WITH_CURRENCY = {name for name, table in COMPOSITE.items() if "cu" in table}
_INDEX_FIELDS = {name: sum(1 for part in table if part.startswith(IF)) for name, table in COMPOSITE.items()}
_COMPOSITE_NAME = re.compile(r"(pr|promo|il|cd|cm|cg)(\d+)([a-zA-Z]*)(\d*)([a-zA-Z]*)(\d*)", re.ASCII)
_COMPOSITE_REGEX_TEXT = r"(pr|promo|il|cd|cm|cg)(\d+)([a-zA-Z]*)(\d*)([a-zA-Z]*)(\d*)$"


def _key_hash(key: tuple[str, str]) -> int:
    return schema_key_hash(key[0], key[1])


def direct_fields(hit_type: str) -> dict[str, str]:
    """GA parameter -> Snowplow tracker parameter, for the fields Snowplow fills directly."""
    transaction = hit_type == "transaction"
    return {"uip": "ip", "dr": "refr", "de": "cs", "sd": "cd", "ul": "lang", "je": "f_java", "dl": "url",
            "dt": "page", "ti": "tr_id" if transaction else "ti_id", "ta": "tr_af", "tr": "tr_tt", "ts": "tr_sh",
            "tt": "tr_tx", "in": "ti_nm", "ip": "ti_pr", "iq": "ti_qu", "ic": "ti_sk", "iv": "ti_ca",
            "cu": "tr_cu" if transaction else "ti_cu", "ua": "ua"}


def _translate(translation: Callable, field: str, value: str):
    """``(value, None)`` or ``(None, message)`` naming the schema field."""
    try:
        return translation(value), None
    except Refused as exc:
        return None, input_error(field, value, str(exc))


def _simple_contexts(params: dict[str, str | None]) -> tuple[list[tuple[tuple[str, str], dict]], list[dict]]:
    found: dict[tuple[str, str], dict[str, tuple]] = {}
    for param, value in params.items():
        if value is None or param not in _CONTEXT_OF:
            continue
        key = _CONTEXT_OF[param]
        field, translation = CONTEXTS[key][param]
        found.setdefault(key, {})[field] = _translate(translation, field, value)
    contexts, errors = [], []
    for key in immutable_order(list(found), _key_hash):
        fields = found[key]
        data = {}
        for field in immutable_order(list(fields)):
            value, error = fields[field]
            if error:
                errors.append(error)
            data[field] = value
        contexts.append((key, data))
    return contexts, errors


def _break_down(name: str, value: str) -> tuple[dict[str, str] | None, dict | None]:
    """``pr12id`` -> ``{IFpr: 12, prid: value}``; ``pr12cm42`` -> ``{IFprcm: 12, IFcm: 42, prcm: value}``."""
    match = _COMPOSITE_NAME.fullmatch(name)
    if not match:
        return None, input_error(name, None, f"composite field name has to conform to regex {_COMPOSITE_REGEX_TEXT}")
    groups = [g for g in match.groups() if g]
    parts, indexes = groups[0::2], groups[1::2]
    named = parts if len(parts) == len(indexes) else parts[:-1]
    out = {IF + "".join(named[i:]): index for i, index in enumerate(indexes)}
    out["".join(parts)] = value
    return out, None


def _composite_contexts(params: dict[str, str | None]) -> tuple[list[tuple[tuple[str, str], dict]], list[dict]]:
    composite = sorted((k, v) for k, v in params.items() if v is not None and any(c.isdecimal() for c in k))
    broken = []
    for name, value in composite:
        parts, error = _break_down(name, value)
        if error:
            return [], [error]
        broken.append(parts)
    values = [{k: v for k, v in m.items() if not k.startswith(IF)} for m in broken]
    indexes = [{k: v for k, v in m.items() if k.startswith(IF)} for m in broken]
    deduped = [m for i, m in enumerate(indexes) if i == 0 or m != indexes[i - 1]]
    grouped: dict[str, list[str]] = {}
    for m in values + deduped:
        for k, v in m.items():
            grouped.setdefault(k, []).append(v)
    # schema -> field -> values, built in the groupBy map's order
    translated: dict[str, dict[str, list]] = {}
    for part in group_by_order(list(grouped)):
        for schema, table in COMPOSITE.items():
            if part in table:
                field, translation = table[part]
                translated.setdefault(schema, {})[field] = [_translate(translation, field, v) for v in grouped[part]]
    schema_order = immutable_order(list(translated), lambda s: schema_key_hash(VENDOR, s))
    for schema in schema_order:  # Either: the first refusal, in map order
        fields = translated[schema]
        for field in immutable_order(list(fields)):
            for _, error in fields[field]:
                if error:
                    return [], [error]
    currency = params.get("cu")
    out = []
    for schema in schema_order:
        fields = translated[schema]
        names = immutable_order(list(fields))
        columns = [[v for v, _ in fields[n]] for n in names]
        rows = []
        depth = 0
        while True:  # a transpose that tolerates ragged columns, zipped with the names as 3.9.0 does
            row = [column[depth] for column in columns if len(column) > depth]
            if not row:
                break
            pairs = list(zip(names, row))
            if currency is not None and schema in _WITH_CURRENCY:
                pairs = [("currencyCode", currency)] + pairs
            entity = dict(pairs)
            entity = {k: entity[k] for k in immutable_order(list(entity))}
            minimum = _INDEX_FIELDS[schema] + (1 if "currencyCode" in entity else 0)
            if len(entity) > minimum:
                rows.append(entity)
            depth += 1
        out.extend(((VENDOR, schema), row) for row in rows)
    return out, []


def adapt_hit(line: str) -> tuple[dict[str, str] | None, list[dict]]:
    """The tracker parameters of one hit line, or the messages saying why there are none."""
    params, error = java_form_params(line)
    if error is not None:
        return None, [input_error("body", line, error)]
    params = {k: params[k] for k in immutable_order(list(params))}
    hit_type = params.get("t")
    if hit_type is None:
        return None, [input_error("body", line, "no t parameter provided: cannot determine hit type")]
    mappings = direct_fields(hit_type)
    direct = {}
    for param, value in params.items():
        if param in mappings and value is not None:
            direct[mappings[param]] = value
    errors: list[dict] = []
    if hit_type not in HIT_TYPES:
        errors.append(input_error("t", hit_type, "no matching hit type"))
        expectation = ("cannot determine event type: type parameter empty" if hit_type == ""
                       else "no schema associated with the provided type parameter")
        errors.append(schema_mapping(hit_type, EXPECTED_MAPPING, expectation))
    simple, simple_errors = _simple_contexts(params)
    composite, composite_errors = _composite_contexts(params)
    errors += simple_errors + composite_errors
    if errors:
        return None, errors
    schema_name, table = HIT_TYPES[hit_type]
    fields: dict[str, tuple] = {}
    for param, value in params.items():
        if value is not None and param in table:
            field, translation = table[param]
            fields[field] = _translate(translation, field, value)
    data = {}
    for field in immutable_order(list(fields)):
        value, error = fields[field]
        if error:
            return None, [error]
        data[field] = value
    contexts = [{"schema": iglu_uri(*key), "data": entity} for key, entity in simple + composite
                if hit_type != "pageview" or key != (VENDOR, "page_view")]
    event: dict[str, str] = {}
    if contexts:
        event["co"] = _text({"schema": CONTEXTS_101, "data": contexts})
    event.update(direct)
    event.update({"e": "ue", "ue_pr": _text({"schema": UNSTRUCT_SCHEMA, "data": {
        "schema": iglu_uri(VENDOR, schema_name), "data": data}}), "tv": TRACKER_VERSION, "p": "srv"})
    return event, []


def body_lines(body: str) -> list[str]:
    """Scala 2.12's ``linesIterator``: split after each LF or FF, the break (and a CR before an LF) dropped."""
    lines = []
    for piece in re.findall(r"[^\n\f]*[\n\f]?", body):
        if not piece:
            continue
        if piece.endswith("\r\n"):
            piece = piece[:-2]
        elif piece[-1] in "\n\f":
            piece = piece[:-1]
        lines.append(piece)
    return lines


@register(PATH_VENDOR, VERSION)
def adapt_measurement_protocol(payload: CollectorPayload, querystring: list) -> Adapted:
    """One event per line of the body; the messages of every bad line, if any."""
    lines = body_lines(payload.body) if payload.body is not None else []
    if not lines:
        return failed(input_error("body", None, "empty body"))
    events, errors = [], []
    for line in lines:
        event, hit_errors = adapt_hit(line)
        errors.extend(hit_errors)
        if event is not None:
            events.append(event)
    if errors:
        return failed(*errors)
    return Adapted(events=events)
