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

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Callable

import ext

EVENT_TYPES = {
    "pv": "page_view",
    "pp": "page_ping",
    "se": "struct",
    "ue": "unstruct",
    "tr": "transaction",
    "ti": "transaction_item",
    "ad": "ad_impression",
}
PLATFORMS = frozenset({"web", "mob", "pc", "srv", "app", "tv", "cnsl", "iot", "headset"})
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_INT = re.compile(r"^-?\d+$")
_DIMENSIONS = re.compile(r"^(\d+)[xX](\d+)$")
INT32_MAX = 2**31 - 1
# Timestamps later than this (ms) are refused: 9999-12-31.
MAX_TSTAMP_MS = 253_402_300_799_999


class Violation(ValueError):
    """A parameter value the protocol does not allow; ``expectation`` says what was expected."""

    def __init__(self, expectation: str):
        super().__init__(expectation)
        self.expectation = expectation


# ---------------------------------------------------------------- converters


def to_string(value: str) -> str:
    return value


def to_event(value: str) -> str:
    try:
        return EVENT_TYPES[value]
    except KeyError:
        raise Violation("not recognised as an event type") from None


def to_platform(value: str) -> str:
    if value not in PLATFORMS:
        raise Violation(f"not a supported tracking platform (one of {', '.join(sorted(PLATFORMS))})")
    return value


def to_uuid(value: str) -> str:
    if not _UUID.match(value):
        raise Violation("not a valid UUID")
    return value.lower()


def to_int(value: str) -> int:
    if not _INT.match(value):
        raise Violation("not a valid integer")
    number = int(value)
    if not -INT32_MAX - 1 <= number <= INT32_MAX:
        raise Violation("an integer out of range")
    return number


def to_double(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise Violation("not a valid number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise Violation("a finite number")
    return number


def to_decimal(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise Violation("not a valid decimal number") from None
    if not number.is_finite():
        raise Violation("a finite decimal number")
    return number


def to_bool_flag(value: str) -> int:
    if value == "1":
        return 1
    if value == "0":
        return 0
    raise Violation("0 or 1")


def to_tstamp_ms(value: str) -> int:
    if not _INT.match(value):
        raise Violation("a timestamp in milliseconds since the epoch")
    ms = int(value)
    if not 0 <= ms <= MAX_TSTAMP_MS:
        raise Violation("a timestamp in milliseconds between 1970 and 9999")
    return ms


def to_json(value: str):
    try:
        return json.loads(value)
    except ValueError as exc:
        raise Violation(f"valid JSON ({exc})") from None


def to_base64_json(value: str):
    try:
        decoded = ext.decode_base64url(value)
    except ext.Base64Error as exc:
        raise Violation(f"valid base64url ({exc})") from None
    try:
        return json.loads(decoded)
    except ValueError as exc:
        raise Violation(f"base64url-encoded JSON ({exc})") from None


# parameter -> (field, converter)
SIMPLE: dict[str, tuple[str, Callable]] = {
    "e": ("event", to_event),
    "eid": ("event_id", to_uuid),
    "aid": ("app_id", to_string),
    "p": ("platform", to_platform),
    "tv": ("v_tracker", to_string),
    "tna": ("name_tracker", to_string),
    "tid": ("txn_id", to_int),
    "dtm": ("dvce_created_tstamp", to_tstamp_ms),
    "stm": ("dvce_sent_tstamp", to_tstamp_ms),
    "ttm": ("true_tstamp", to_tstamp_ms),
    "uid": ("user_id", to_string),
    "duid": ("domain_userid", to_string),
    "tnuid": ("network_userid", to_string),
    "vid": ("domain_sessionidx", to_int),
    "sid": ("domain_sessionid", to_string),
    "fp": ("user_fingerprint", to_string),
    "ip": ("user_ipaddress", to_string),
    "ua": ("useragent", to_string),
    "cd": ("br_colordepth", to_string),
    "cs": ("doc_charset", to_string),
    "lang": ("br_lang", to_string),
    "tz": ("os_timezone", to_string),
    "url": ("page_url", to_string),
    "page": ("page_title", to_string),
    "refr": ("page_referrer", to_string),
    "cookie": ("br_cookies", to_bool_flag),
    "f_pdf": ("br_features_pdf", to_bool_flag),
    "f_qt": ("br_features_quicktime", to_bool_flag),
    "f_realp": ("br_features_realplayer", to_bool_flag),
    "f_wma": ("br_features_windowsmedia", to_bool_flag),
    "f_dir": ("br_features_director", to_bool_flag),
    "f_fla": ("br_features_flash", to_bool_flag),
    "f_java": ("br_features_java", to_bool_flag),
    "f_gears": ("br_features_gears", to_bool_flag),
    "f_ag": ("br_features_silverlight", to_bool_flag),
    "se_ca": ("se_category", to_string),
    "se_ac": ("se_action", to_string),
    "se_la": ("se_label", to_string),
    "se_pr": ("se_property", to_string),
    "se_va": ("se_value", to_double),
    "tr_id": ("tr_orderid", to_string),
    "tr_af": ("tr_affiliation", to_string),
    "tr_tt": ("tr_total", to_decimal),
    "tr_tx": ("tr_tax", to_decimal),
    "tr_sh": ("tr_shipping", to_decimal),
    "tr_ci": ("tr_city", to_string),
    "tr_st": ("tr_state", to_string),
    "tr_co": ("tr_country", to_string),
    "tr_cu": ("tr_currency", to_string),
    "ti_id": ("ti_orderid", to_string),
    "ti_sk": ("ti_sku", to_string),
    "ti_nm": ("ti_name", to_string),
    "ti_na": ("ti_name", to_string),
    "ti_ca": ("ti_category", to_string),
    "ti_pr": ("ti_price", to_decimal),
    "ti_qu": ("ti_quantity", to_int),
    "ti_cu": ("ti_currency", to_string),
    "pp_mix": ("pp_xoffset_min", to_int),
    "pp_max": ("pp_xoffset_max", to_int),
    "pp_miy": ("pp_yoffset_min", to_int),
    "pp_may": ("pp_yoffset_max", to_int),
}
# "WxH" parameters -> (width field, height field)
DIMENSIONS = {
    "res": ("dvce_screenwidth", "dvce_screenheight"),
    "vp": ("br_viewwidth", "br_viewheight"),
    "ds": ("doc_width", "doc_height"),
}
# self-describing JSON parameters: (plain, base64url) -> field
JSON_PAIRS = (("co", "cx", "contexts"), ("ue_pr", "ue_px", "unstruct_event"))


def map_parameters(params: dict[str, str], event) -> list[dict]:
    """Set ``event``'s atomic fields from ``params``; return the violations as InputData messages."""
    errors: list[dict] = []

    def fail(name: str, value, expectation: str) -> None:
        errors.append({"field": name, "value": value, "expectation": expectation[:256]})

    for name, value in params.items():
        if value == "" and name != "e":
            continue  # an empty parameter is an absent one
        simple = SIMPLE.get(name)
        if simple is not None:
            field, convert = simple
            try:
                setattr(event, field, convert(value))
            except Violation as exc:
                fail(name, value, exc.expectation)
            continue
        dims = DIMENSIONS.get(name)
        if dims is not None:
            match = _DIMENSIONS.match(value)
            if match is None or int(match.group(1)) > INT32_MAX or int(match.group(2)) > INT32_MAX:
                fail(name, value, "dimensions as WIDTHxHEIGHT")
            else:
                setattr(event, dims[0], int(match.group(1)))
                setattr(event, dims[1], int(match.group(2)))
    for plain, encoded, field in JSON_PAIRS:
        # the base64 form wins when a tracker sends both
        name = encoded if params.get(encoded) else plain if params.get(plain) else None
        if name is None:
            continue
        try:
            doc = (to_base64_json if name == encoded else to_json)(params[name])
        except Violation as exc:
            fail(name, params[name][:1024], exc.expectation)
            continue
        setattr(event, field, doc)
    if "e" not in params:
        fail("e", None, "the event type e must be present")
    return errors
