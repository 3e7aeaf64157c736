"""The Snowplow tracker protocol: event parameters to atomic enriched fields.

``map_parameters(params, event)`` sets the fields of an enriched event from one
event's parameters (``{"e": "pv", "url": ..., "res": "1920x1080", ...}``) and
returns the protocol violations it met, as Snowplow's ``InputData`` messages
(``{"field", "value", "expectation"}``).  A bad value never raises: it becomes a
message, and the event goes to an ``enrichment_failures`` bad row.

As in Snowplow's enrich 3.9.0 (``Transform.scala``), every parameter present is converted, an
empty one too: an empty string parameter (``ip=``, ``cv=``, ``ua=``) sets its field to no value,
overriding what the request had set; an empty ``eid``, ``tid``, ``dtm``, ``e`` ... is refused.
The parameters are walked in the order of Scala 2.12's immutable ``Map`` that holds them
(:func:`scala_map_order`): that order decides the order of the messages and which of two
parameters filling one field (``ev_ca``/``se_ca``, ``co``/``cx``) wins.

The mapping is a table (parameter -> field, converter) so that every parameter
is handled in one place and the converters can move to ``ext/`` unchanged.
Parameters the protocol does not map to an atomic field (``ctype``, ``mac``,
unknown ones) are ignored, as Snowplow's enrich ignores them.
"""
from __future__ import annotations

import re
from decimal import Decimal

import ext
from processor import jsontext
from ext.javanum import JavaNumberFormat, java_big_decimal
from processor.iglu import MAX_JSON_DEPTH, nests_deeper
from processor.scala_order import hash_path as _hash_path, scala_map_order

EVENT_TYPES = {
    "pv": "page_view",
    "pp": "page_ping",
    "se": "struct",
    "ev": "struct",  # legacy trackers' structured event
    "ue": "unstruct",
    "tr": "transaction",
    "ti": "transaction_item",
    "ad": "ad_impression",
}
PLATFORMS = frozenset({"web", "mob", "pc", "srv", "app", "tv", "cnsl", "iot", "headset"})


class Violation(ValueError):
    """A parameter value the protocol does not allow; ``expectation`` says what was expected."""

    def __init__(self, expectation: str):
        super().__init__(expectation)
        self.expectation = expectation


def to_decimal(value: str) -> Decimal | None:
    """A decimal parameter as Snowplow's ``stringToJBigDecimal`` reads it: the literal ``null`` (a JavaScript
    tracker's) is no value; a negative scale (``1E+3``) is made 0 (``1000``), so that it prints without an
    exponent; the value is written as Java's ``BigDecimal.toString`` writes it (``str`` of a Decimal)."""
    if value.lower() == "null":
        return None
    try:
        number = java_big_decimal(value)
    except JavaNumberFormat as exc:
        # ConversionUtils.stringToJBigDecimal's expectation, Java's message included ("null" when none)
        message = "null" if exc.message is None else exc.message  # Scala's string interpolation of a null
        raise Violation(f"cannot be converted to java.math.BigDecimal. Error : {message}") from None
    exponent = number.as_tuple().exponent
    if exponent > 0:
        if exponent + len(number.as_tuple().digits) > MAX_DECIMAL_DIGITS:  # 1E+999999999 would be a gigabyte
            raise Violation(f"a decimal number of at most {MAX_DECIMAL_DIGITS} digits")
        number = Decimal(int(number))
    if number.is_zero() and number.is_signed():
        number = number.copy_abs()  # Java's BigDecimal has no negative zero
    return number


#: the most digits a decimal parameter may have once written without an exponent
MAX_DECIMAL_DIGITS = 1000
_IP_SEPARATORS = re.compile("[,| ]")


def first_ip(value: str) -> str | None:
    """The first of a list of addresses (``ip=a, b``), as Snowplow's ``extractIp`` splits it on a comma,
    a pipe or a space; nothing before the first separator (``ip=`` included) is no value."""
    return ext.tsv_safe(_IP_SEPARATORS.split(value, 1)[0]) or None


def _parsed_or_text(text: str | bytes):
    """The parsed JSON, or the text itself when it nests deeper than Iglu allows.

    The stage validates a parsed document without walking it again; a text
    left here is parsed by the resolver, which reports the nesting as NotJSON.
    Nesting is bounded by the number of brackets, so most documents need no walk.
    """
    doc = jsontext.loads(text)
    if doc is None:  # JSON's null is a value, not an absent one: the resolver refuses it, as Snowplow's enrich does
        return "null"
    if nests_deeper(text, doc):
        return text if type(text) is str else text.decode("utf-8", "replace")
    return doc


def _not_json(text: str, fallback: str) -> Violation:
    """JsonUtils.extractJson's expectation: ``invalid json: `` and circe's message (``exhausted input``,
    ``expected " got 'not js...' (line 1, column 2)``); ``fallback`` should circe find no error."""
    message = jsontext.circe_parse_error(text)
    return Violation(fallback if message is None else f"invalid json: {message}")


def to_json(value: str):
    try:
        return _parsed_or_text(value)
    except RecursionError:
        return value
    except ValueError as exc:
        raise _not_json(value, f"valid JSON ({exc})") from None


_BASE64_ALPHABET = re.compile(r"[^A-Za-z0-9+/_-]")


def lenient_base64(value: str) -> bytes:
    """What Apache commons-codec's ``Base64.decode`` (Snowplow's ``decodeBase64Url``) makes of any text: both
    alphabets, characters outside them skipped, the first ``=`` ends the data, a last lone character is
    dropped."""
    text = _BASE64_ALPHABET.sub("", value.split("=", 1)[0]).replace("+", "-").replace("/", "_")
    if len(text) % 4 == 1:
        text = text[:-1]
    return ext.decode_base64url(text)


def to_base64_json(value: str):
    try:
        decoded = ext.decode_base64url(value)
    except ext.Base64Error:
        decoded = lenient_base64(value)
    try:
        return _parsed_or_text(decoded)
    except RecursionError:
        return decoded
    except ValueError as exc:
        # Snowplow decodes the bytes as UTF-8 (malformed sequences replaced), then parses the text
        raise _not_json(decoded.decode("utf-8", "replace"), f"base64url-encoded JSON ({exc})") from None


# the expectations are Snowplow enrich 3.9.0's (EventEnrichments.extractEventType, MiscEnrichments.extractPlatform)
_EVENT = (ext.PARAM_LOOKUP, (EVENT_TYPES, "not recognized as an event type"))
_PLATFORM = (ext.PARAM_LOOKUP, ({p: p for p in PLATFORMS}, "not recognized as a tracking platform"))
_STRING = (ext.PARAM_STRING, None)
_UUID = (ext.PARAM_UUID, None)
_INT = (ext.PARAM_INT, None)
_TSTAMP = (ext.PARAM_TSTAMP, None)
_FLAG = (ext.PARAM_FLAG, None)
_DOUBLE = (ext.PARAM_DOUBLE, None)
_DECIMAL = (ext.PARAM_CALL, to_decimal)

# parameter -> (field, how its value is checked and converted)
SIMPLE: dict[str, tuple[str, tuple]] = {
    "e": ("event", _EVENT),
    "eid": ("event_id", _UUID),
    "aid": ("app_id", _STRING),
    "p": ("platform", _PLATFORM),
    "tv": ("v_tracker", _STRING),
    "tna": ("name_tracker", _STRING),
    "tid": ("txn_id", _INT),
    "dtm": ("dvce_created_tstamp", _TSTAMP),
    "stm": ("dvce_sent_tstamp", _TSTAMP),
    "ttm": ("true_tstamp", _TSTAMP),
    "uid": ("user_id", _STRING),
    "duid": ("domain_userid", _STRING),
    "nuid": ("network_userid", _STRING),
    "vid": ("domain_sessionidx", _INT),
    "sid": ("domain_sessionid", _UUID),
    "fp": ("user_fingerprint", _STRING),
    "ip": ("user_ipaddress", (ext.PARAM_CALL, first_ip)),
    "cv": ("v_collector", _STRING),
    "ua": ("useragent", _STRING),
    "cd": ("br_colordepth", _STRING),
    "cs": ("doc_charset", _STRING),
    "lang": ("br_lang", _STRING),
    "tz": ("os_timezone", _STRING),
    "url": ("page_url", _STRING),
    "page": ("page_title", _STRING),
    "refr": ("page_referrer", _STRING),
    "cookie": ("br_cookies", _FLAG),
    "f_pdf": ("br_features_pdf", _FLAG),
    "f_qt": ("br_features_quicktime", _FLAG),
    "f_realp": ("br_features_realplayer", _FLAG),
    "f_wma": ("br_features_windowsmedia", _FLAG),
    "f_dir": ("br_features_director", _FLAG),
    "f_fla": ("br_features_flash", _FLAG),
    "f_java": ("br_features_java", _FLAG),
    "f_gears": ("br_features_gears", _FLAG),
    "f_ag": ("br_features_silverlight", _FLAG),
    "se_ca": ("se_category", _STRING),
    "se_ac": ("se_action", _STRING),
    "se_la": ("se_label", _STRING),
    "se_pr": ("se_property", _STRING),
    "se_va": ("se_value", _DECIMAL),
    # the legacy trackers' structured event parameters
    "ev_ca": ("se_category", _STRING),
    "ev_ac": ("se_action", _STRING),
    "ev_la": ("se_label", _STRING),
    "ev_pr": ("se_property", _STRING),
    "ev_va": ("se_value", _DECIMAL),
    "tr_id": ("tr_orderid", _STRING),
    "tr_af": ("tr_affiliation", _STRING),
    "tr_tt": ("tr_total", _DECIMAL),
    "tr_tx": ("tr_tax", _DECIMAL),
    "tr_sh": ("tr_shipping", _DECIMAL),
    "tr_ci": ("tr_city", _STRING),
    "tr_st": ("tr_state", _STRING),
    "tr_co": ("tr_country", _STRING),
    "tr_cu": ("tr_currency", _STRING),
    "ti_id": ("ti_orderid", _STRING),
    "ti_sk": ("ti_sku", _STRING),
    "ti_nm": ("ti_name", _STRING),
    "ti_na": ("ti_name", _STRING),
    "ti_ca": ("ti_category", _STRING),
    "ti_pr": ("ti_price", _DECIMAL),
    "ti_qu": ("ti_quantity", _INT),
    "ti_cu": ("ti_currency", _STRING),
    "pp_mix": ("pp_xoffset_min", _INT),
    "pp_max": ("pp_xoffset_max", _INT),
    "pp_miy": ("pp_yoffset_min", _INT),
    "pp_may": ("pp_yoffset_max", _INT),
}
# "WxH" parameters -> (width field, height field)
DIMENSIONS = {
    "res": ("dvce_screenwidth", "dvce_screenheight"),
    "vp": ("br_viewwidth", "br_viewheight"),
    "ds": ("doc_width", "doc_height"),
}
# the table ext.map_params walks: parameter -> (kind, field, extra)
_TABLE: dict[str, tuple] = {
    **{name: (how[0], field, how[1]) for name, (field, how) in SIMPLE.items()},
    **{name: (ext.PARAM_DIMENSIONS, width, height) for name, (width, height) in DIMENSIONS.items()},
}
# self-describing JSON parameters: (plain, base64url) -> field
JSON_PAIRS = (("co", "cx", "contexts"), ("ue_pr", "ue_px", "unstruct_event"))
JSON_PARAMETERS = frozenset(name for plain, encoded, _ in JSON_PAIRS for name in (plain, encoded))
for _plain, _encoded, _field in JSON_PAIRS:
    # converted by to_json and to_base64_json, which give the parsed document for ordinary JSON: the compiled
    # map_params parses that itself (ext.PARAM_JSON)
    _TABLE[_plain] = (ext.PARAM_JSON, _field, (False, MAX_JSON_DEPTH, jsontext.first_loads, to_json))
    _TABLE[_encoded] = (ext.PARAM_JSON, _field, (True, MAX_JSON_DEPTH, jsontext.first_loads, to_base64_json))
# Transform's second pass: a tracker's tnuid overrides the collector's nuid and a nuid parameter
_SECOND_PASS = {"tnuid": (ext.PARAM_STRING, "network_userid", None)}
# parameters filling one field: which is kept depends on the order they are visited in
_SAME_FIELD = (("se_ca", "ev_ca"), ("se_ac", "ev_ac"), ("se_la", "ev_la"), ("se_pr", "ev_pr"), ("se_va", "ev_va"),
               ("ti_nm", "ti_na"), ("co", "cx"), ("ue_pr", "ue_px"))


def _fills_a_field_twice(params: dict) -> bool:
    """Whether both parameters of a pair in :data:`_SAME_FIELD` are present."""
    for first, second in _SAME_FIELD:
        if first in params and second in params:
            return True
    return False


def map_parameters(params: dict[str, str | None], event) -> list[dict]:
    """Set ``event``'s atomic fields from ``params``; return the violations as InputData messages.

    A parameter without a value (None: ``&name`` without ``=``) is left out, as 3.9.0's ``Transform`` maps
    only the parameters that have one, in the order of the event's ``Map``."""
    if ext.holds_none(params):
        some = {name: value for name, value in params.items() if value is not None}
        if len(params) > 4 >= len(some):  # a Map of up to 4 keeps the order of the larger Map it came from
            some = {name: some[name] for name in scala_map_order(list(params)) if name in some}
        params = some
    if len(params) > 4 and _fills_a_field_twice(params):
        params_in_order = {name: params[name] for name in scala_map_order(list(params))}
        refused = _map_params(params_in_order, event, _TABLE)
    else:
        # the order matters only to the messages: walk as given, sort the few refused (the common case)
        refused = _map_params(params, event, _TABLE)
        if len(refused) > 1 and len(params) > 4:
            refused.sort(key=lambda triple: _hash_path(triple[0]))
    if "tnuid" in params:
        refused += _map_params({"tnuid": params["tnuid"]}, event, _SECOND_PASS)
    errors = [{"field": name, "value": value[:1024] if name in JSON_PARAMETERS else value,
               "expectation": expectation[:256]} for name, value, expectation in refused]
    # no "e" is no failure here: as in Snowplow's enrich 3.9.0, the event type stays empty and the event fails
    # later, once the enrichments have run, when its schema is extracted (processor.stage)
    return errors


_map_params = ext.map_params
