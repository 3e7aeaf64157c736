"""The Snowplow tracker protocol: event parameters to atomic enriched fields.

``map_parameters(params, event)`` sets the fields of an enriched event from one
event's parameters (``{"e": "pv", "url": ..., "res": "1920x1080", ...}``) and
returns the protocol violations it met, as Snowplow's ``InputData`` messages
(``{"field", "value", "expectation"}``).  A bad value never raises: it becomes a
message, and the event goes to a ``tracker_protocol_violations`` bad row.

The mapping is a table (parameter -> field, converter) so that every parameter
is handled in one place and the converters can move to ``ext/`` unchanged.
Parameters the protocol does not map to an atomic field (``ctype``, ``mac``,
unknown ones) are ignored, as Snowplow's enrich ignores them.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import ext
from processor import jsontext
from processor.iglu import MAX_JSON_DEPTH, too_deep

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
        number = Decimal(value)
    except InvalidOperation:
        raise Violation("not a valid decimal number") from None
    if not number.is_finite():
        raise Violation("a finite decimal number")
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
    a pipe or a space; nothing before the first separator is no value."""
    return ext.tsv_safe(_IP_SEPARATORS.split(value, 1)[0]) or None


def _parsed_or_text(text: str | bytes):
    """The parsed JSON, or the text itself when it nests deeper than Iglu allows.

    The stage validates a parsed document without walking it again; a text
    left here is parsed by the resolver, which reports the nesting as NotJSON.
    Nesting is bounded by the number of brackets, so most documents need no walk.
    """
    doc = jsontext.loads(text)
    brackets = text.count("{") + text.count("[") if type(text) is str else text.count(b"{") + text.count(b"[")
    if brackets > MAX_JSON_DEPTH and too_deep(doc):
        return text if type(text) is str else text.decode("utf-8", "replace")
    return doc


def to_json(value: str):
    try:
        return _parsed_or_text(value)
    except RecursionError:
        return value
    except ValueError as exc:
        raise Violation(f"valid JSON ({exc})") from None


def to_base64_json(value: str):
    try:
        decoded = ext.decode_base64url(value)
    except ext.Base64Error as exc:
        raise Violation(f"valid base64url ({exc})") from None
    try:
        return _parsed_or_text(decoded)
    except RecursionError:
        return decoded
    except ValueError as exc:
        raise Violation(f"base64url-encoded JSON ({exc})") from None


_EVENT = (ext.PARAM_LOOKUP, (EVENT_TYPES, "not recognised as an event type"))
_PLATFORM = (ext.PARAM_LOOKUP, ({p: p for p in PLATFORMS},
                                f"not a supported tracking platform (one of {', '.join(sorted(PLATFORMS))})"))
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
    "tnuid": ("network_userid", _STRING),
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


def map_parameters(params: dict[str, str], event) -> list[dict]:
    """Set ``event``'s atomic fields from ``params``; return the violations as InputData messages."""
    errors = [{"field": name, "value": value, "expectation": expectation[:256]}
              for name, value, expectation in _map_params(params, event, _TABLE)]
    for plain, encoded, field in JSON_PAIRS:
        # the base64 form wins when a tracker sends both
        name = encoded if params.get(encoded) else plain if params.get(plain) else None
        if name is None:
            continue
        try:
            doc = (to_base64_json if name == encoded else to_json)(params[name])
        except Violation as exc:
            errors.append({"field": name, "value": params[name][:1024], "expectation": exc.expectation[:256]})
            continue
        setattr(event, field, doc)
    if "e" not in params:
        errors.append({"field": "e", "value": None, "expectation": "the event type e must be present"})
    return errors


_map_params = ext.map_params
