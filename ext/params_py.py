"""Tracker-protocol parameter checks and conversion, pure Python.

The twin of ``ext/_params.pyx``: same functions, same results, same messages.

``map_params(params, target, table)`` walks one event's parameters
(``{"e": "pv", "res": "1920x1080", ...}``) and, for each one named in
``table``, converts its value and stores it as an attribute of ``target``
(``setattr(target, field, value)``).  It returns the values it refused, as
``(parameter, value, expectation)`` triples, in parameter order.

``table`` maps a parameter name to ``(kind, field, extra)``:

``PARAM_STRING``
    the value made TSV-safe (:func:`tsv_safe`); nothing left (an empty value included) is None,
    which is stored too: an empty ``ua`` or ``ip`` clears what the request set.
``PARAM_LOOKUP``
    ``extra`` is ``(mapping, expectation)``: the value is replaced by
    ``mapping[value]``; a value not in it is refused with ``expectation``.
``PARAM_UUID``
    8-4-4-4-12 hexadecimal digits, stored lower-cased.
``PARAM_INT``
    Java's ``Integer.parseInt``: an optional sign, then decimal digits (of any script) within a
    signed 32-bit int; the literal ``null`` (any case) is None.
``PARAM_TSTAMP``
    Java's ``Long.parseLong`` of milliseconds since the epoch, which Joda-Time must print with a
    year from 0 to 9999 (``stm=-1`` is 1969-12-31 23:59:59.999, accepted).
``PARAM_FLAG``
    ``"1"`` or ``"0"``, stored as 1 or 0.
``PARAM_DOUBLE``
    what Python's ``float()`` reads, finite.
``PARAM_DIMENSIONS``
    ``WIDTHxHEIGHT`` matching ``(\\d+)x(\\d+)`` (ASCII digits, a lower-case ``x``), each within
    a signed 32-bit int; ``field`` is the width's field and ``extra`` the height's.
``PARAM_CALL``
    ``extra`` is a converter called with the value; it raises an exception
    with an ``expectation`` attribute to refuse it.
``PARAM_JSON``
    ``PARAM_CALL`` of a converter of JSON text: ``extra`` is ``(base64, limit, loads, converter)``
    and the value is what ``converter`` makes of it.  The compiled module may answer without
    calling it, with what it would answer: ``loads`` of the value (base64url-decoded first when
    ``base64``) when that parses, is not ``null``, has no number whose text the parsed number
    loses (``has_numbers_to_keep``) and at most ``limit`` brackets (``brackets_over``); so the
    converter must give that document for such a value.  Here it is always called.

Every parameter named in ``table`` is converted, an empty value too (as Snowplow's enrich 3.9.0
does: ``eid=`` is not a UUID, ``tid=`` not an integer); whatever a converter returns is stored,
None included.  The expectations are Snowplow's own wordings (``cannot be converted to
java.lang.Integer``, ...).  Parameters not in ``table`` are skipped.
"""
from __future__ import annotations

import re
from typing import Any

from .javanum import YEAR_0_MS, YEAR_9999_END_MS, java_integer, joda_timestamp

__all__ = [
    "PARAM_STRING",
    "PARAM_LOOKUP",
    "PARAM_UUID",
    "PARAM_INT",
    "PARAM_TSTAMP",
    "PARAM_FLAG",
    "PARAM_DOUBLE",
    "PARAM_DIMENSIONS",
    "PARAM_CALL",
    "PARAM_JSON",
    "holds_none",
    "map_params",
    "separated_pairs",
    "string_objects",
    "known_entities",
    "tsv_safe",
]

PARAM_STRING = 0
PARAM_LOOKUP = 1
PARAM_UUID = 2
PARAM_INT = 3
PARAM_TSTAMP = 4
PARAM_FLAG = 5
PARAM_DOUBLE = 6
PARAM_DIMENSIONS = 7
PARAM_CALL = 8
PARAM_JSON = 9

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
MAX_TSTAMP_MS = YEAR_9999_END_MS

_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
_UUID_DASHES = (8, 13, 18, 23)

MIN_TSTAMP_MS = YEAR_0_MS  # Joda prints earlier years with a minus sign

# Snowplow enrich 3.9.0's expectations (ConversionUtils, EventEnrichments, ClientEnrichments)
NOT_UUID = "not a valid UUID"
NOT_INT = "cannot be converted to java.lang.Integer"
NOT_TSTAMP = "not in the expected format: ms since epoch"
TSTAMP_RANGE = "formatting as {} is not Redshift-compatible"
NOT_FLAG = "cannot be converted to Boolean-like java.lang.Byte"
NOT_NUMBER = "not a valid number"
NOT_FINITE = "a finite number"
NOT_DIMENSIONS = "does not conform to regex (\\d+)x(\\d+)"
DIMENSIONS_RANGE = "could not be converted to java.lang.Integer s"


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def tsv_safe(value: str) -> str | None:
    """Snowplow's ``makeTsvSafe``: a tab becomes four spaces, other control characters (U+0000-U+001F,
    U+007F) are removed; nothing left is no value (None)."""
    if _CONTROL.search(value) is None:
        return value or None
    return _CONTROL.sub("", value.replace("\t", "    ")) or None


def _is_uuid(value: str) -> bool:
    if len(value) != 36:
        return False
    for i, c in enumerate(value):
        if i in _UUID_DASHES:
            if c != "-":
                return False
        elif c not in _HEX:
            return False
    return True


def _integer(value: str, bits: int) -> int | None:
    """Java's ``Integer.parseInt`` (32 bits) / ``Long.parseLong`` (64) as an int, else None."""
    digits = value[1:] if value.startswith("-") else value
    if not digits or not all(c in _DIGITS for c in digits):
        return java_integer(value, bits)  # a + sign, digits of other scripts, or not a number
    number = int(value)
    return number if -(1 << (bits - 1)) <= number < (1 << (bits - 1)) else None


def _convert(kind: int, value: str, extra: Any) -> Any:
    """The converted value; raises ValueError(expectation) to refuse it."""
    if kind == PARAM_STRING:
        return tsv_safe(value)
    if kind == PARAM_LOOKUP:
        mapping, expectation = extra
        try:
            return mapping[value]
        except KeyError:
            raise ValueError(expectation) from None
    if kind == PARAM_UUID:
        if not _is_uuid(value):
            raise ValueError(NOT_UUID)
        return value.lower()
    if kind == PARAM_INT:
        if value.lower() == "null":  # a JavaScript tracker's literal null: no value
            return None
        number = _integer(value, 32)
        if number is None:
            raise ValueError(NOT_INT)
        return number
    if kind == PARAM_TSTAMP:
        number = _integer(value, 64)
        if number is None:
            raise ValueError(NOT_TSTAMP)
        if not MIN_TSTAMP_MS <= number <= MAX_TSTAMP_MS:
            raise ValueError(TSTAMP_RANGE.format(joda_timestamp(number)))
        return number
    if kind == PARAM_FLAG:
        if value == "1":
            return 1
        if value == "0":
            return 0
        raise ValueError(NOT_FLAG)
    if kind == PARAM_DOUBLE:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(NOT_NUMBER) from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(NOT_FINITE)
        return number
    if kind == PARAM_JSON:
        if type(extra) is not tuple or len(extra) != 4:
            raise TypeError("a PARAM_JSON parameter's extra must be (base64, limit, loads, converter)")
        kind, extra = PARAM_CALL, extra[3]
    if kind == PARAM_CALL:
        try:
            return extra(value)
        except Exception as exc:
            expectation = getattr(exc, "expectation", None)
            if expectation is None:
                raise
            raise ValueError(expectation) from None
    raise TypeError(f"unknown parameter kind {kind!r}")


def _dimensions(value: str) -> tuple[int, int] | str:
    """(width, height), else the expectation refusing it."""
    width, sep, height = value.partition("x")
    if not sep or not width or not height:
        return NOT_DIMENSIONS
    if not all(c in _DIGITS for c in width) or not all(c in _DIGITS for c in height):
        return NOT_DIMENSIONS
    w, h = int(width), int(height)
    if w > INT32_MAX or h > INT32_MAX:
        return DIMENSIONS_RANGE
    return w, h


def map_params(params: dict, target: Any, table: dict) -> list:
    """Convert and store the parameters named in ``table``; the refused ones as triples."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, not {type(params).__name__}")
    if not isinstance(table, dict):
        raise TypeError(f"table must be a dict, not {type(table).__name__}")
    refused = []
    for name, value in params.items():
        spec = table.get(name)
        if spec is None:
            continue
        if not isinstance(value, str):
            raise TypeError(f"parameter {name!r} must be a str, not {type(value).__name__}")
        kind, field, extra = spec
        if kind == PARAM_DIMENSIONS:
            dims = _dimensions(value)
            if type(dims) is str:
                refused.append((name, value, dims))
            else:
                setattr(target, field, dims[0])
                setattr(target, extra, dims[1])
            continue
        try:
            converted = _convert(kind, value, extra)
        except ValueError as exc:
            refused.append((name, value, str(exc)))
            continue
        setattr(target, field, converted)
    return refused


_US = "\x1f"


def separated_pairs(params: dict, names) -> bytes | None:
    """UTF-8 of ``name US value US`` for each of ``names`` in turn, ``value`` being ``params[name]`` (US is
    U+001F): the text the event fingerprint hashes.  None when a value is not a ``str`` or a name or value
    cannot be UTF-8 (a lone surrogate): the caller then builds the text its own way."""
    parts = []
    for name in names:
        value = params[name]
        if not isinstance(value, str) or not isinstance(name, str):
            return None
        parts.append(name)
        parts.append(value)
    if not parts:
        return b""
    parts.append("")
    try:
        return _US.join(parts).encode("utf-8")
    except UnicodeEncodeError:
        return None


def string_objects(items, allowed, required) -> bool:
    """Whether ``items`` is a list of objects as Snowplow's ``payload_data`` schema allows them: each a ``dict``
    holding each name of ``required``, with no key outside the set ``allowed`` and only ``str`` values (a
    subclass of either is not one).  An empty list is one."""
    if type(items) is not list:
        return False
    if not isinstance(allowed, (set, frozenset)):
        raise TypeError(f"allowed must be a set, not {type(allowed).__name__}")
    for item in items:
        if type(item) is not dict:
            return False
        for name in required:
            if name not in item:
                return False
        for key, value in item.items():
            if type(value) is not str or key not in allowed:
                return False
    return True


def known_entities(items, known) -> bool:
    """Whether ``items`` is a list of self-describing entities each naming a known schema: each a ``dict``
    holding exactly the keys ``"schema"`` and ``"data"`` (a subclass of either type is not one), its
    ``"schema"`` a ``str`` in the set ``known``.  An empty list is one.

    What Snowplow's envelope schemas (``contexts``, ``unstruct_event``) ask of an entity, but for the
    pattern of the schema URI, which ``known`` stands for: the URIs a validator of the envelope
    already accepted."""
    if type(items) is not list:
        return False
    if not isinstance(known, (set, frozenset)):
        raise TypeError(f"known must be a set, not {type(known).__name__}")
    for item in items:
        if type(item) is not dict or len(item) != 2 or "data" not in item:
            return False
        uri = item.get("schema")
        if type(uri) is not str or uri not in known:
            return False
    return True


def holds_none(params: dict) -> bool:
    """Whether a value of ``params`` is None: a query-string parameter without a value (``&name``)."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, not {type(params).__name__}")
    return any(value is None for value in params.values())
