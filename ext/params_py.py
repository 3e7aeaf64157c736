"""Tracker-protocol parameter checks and conversion, pure Python.

The twin of ``ext/_params.pyx``: same functions, same results, same messages.

``map_params(params, target, table)`` walks one event's parameters
(``{"e": "pv", "res": "1920x1080", ...}``) and, for each one named in
``table``, converts its value and stores it as an attribute of ``target``
(``setattr(target, field, value)``).  It returns the values it refused, as
``(parameter, value, expectation)`` triples, in parameter order.

``table`` maps a parameter name to ``(kind, field, extra)``:

``PARAM_STRING``
    the value as is.
``PARAM_LOOKUP``
    ``extra`` is ``(mapping, expectation)``: the value is replaced by
    ``mapping[value]``; a value not in it is refused with ``expectation``.
``PARAM_UUID``
    8-4-4-4-12 hexadecimal digits, stored lower-cased.
``PARAM_INT``
    ``-?[0-9]+`` (ASCII digits, nothing around them) within a signed 32-bit int.
``PARAM_TSTAMP``
    ``-?[0-9]+`` milliseconds between 0 and 9999-12-31T23:59:59.999Z.
``PARAM_FLAG``
    ``"1"`` or ``"0"``, stored as 1 or 0.
``PARAM_DOUBLE``
    what Python's ``float()`` reads, finite.
``PARAM_DIMENSIONS``
    ``WIDTHxHEIGHT`` (``x`` or ``X``), each ``[0-9]+`` within a signed 32-bit
    int; ``field`` is the width's field and ``extra`` the height's.
``PARAM_CALL``
    ``extra`` is a converter called with the value; it raises an exception
    with an ``expectation`` attribute to refuse it.

An empty value is an absent parameter (skipped), except for ``e``, which is
always checked.  Parameters not in ``table`` are skipped.
"""
from __future__ import annotations

import re
from typing import Any

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
    "map_params",
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

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
MAX_TSTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
_UUID_DASHES = (8, 13, 18, 23)

NOT_UUID = "not a valid UUID"
NOT_INT = "not a valid integer"
INT_RANGE = "an integer out of range"
NOT_TSTAMP = "a timestamp in milliseconds since the epoch"
TSTAMP_RANGE = "a timestamp in milliseconds between 1970 and 9999"
NOT_FLAG = "0 or 1"
NOT_NUMBER = "not a valid number"
NOT_FINITE = "a finite number"
NOT_DIMENSIONS = "dimensions as WIDTHxHEIGHT"


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def tsv_safe(value: str) -> str | None:
    """Snowplow's ``makeTsvSafe``: a tab becomes four spaces, other control characters (U+0000-U+001F,
    U+007F) are removed; nothing left is no value (None)."""
    if _CONTROL.search(value) is None:
        return value
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


def _integer(value: str) -> int | None:
    """``-?[0-9]+`` as an int, else None."""
    digits = value[1:] if value.startswith("-") else value
    if not digits or not all(c in _DIGITS for c in digits):
        return None
    return int(value)


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
        number = _integer(value)
        if number is None:
            raise ValueError(NOT_INT)
        if not INT32_MIN <= number <= INT32_MAX:
            raise ValueError(INT_RANGE)
        return number
    if kind == PARAM_TSTAMP:
        number = _integer(value)
        if number is None:
            raise ValueError(NOT_TSTAMP)
        if not 0 <= number <= MAX_TSTAMP_MS:
            raise ValueError(TSTAMP_RANGE)
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
    if kind == PARAM_CALL:
        try:
            return extra(value)
        except Exception as exc:
            expectation = getattr(exc, "expectation", None)
            if expectation is None:
                raise
            raise ValueError(expectation) from None
    raise TypeError(f"unknown parameter kind {kind!r}")


def _dimensions(value: str) -> tuple[int, int] | None:
    width, sep, height = value.partition("x")
    if not sep:
        width, sep, height = value.partition("X")
    if not sep or not width or not height:
        return None
    if not all(c in _DIGITS for c in width) or not all(c in _DIGITS for c in height):
        return None
    w, h = int(width), int(height)
    if w > INT32_MAX or h > INT32_MAX:
        return None
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
        if value == "" and name != "e":
            continue  # an empty parameter is an absent one
        kind, field, extra = spec
        if kind == PARAM_DIMENSIONS:
            dims = _dimensions(value)
            if dims is None:
                refused.append((name, value, NOT_DIMENSIONS))
            else:
                setattr(target, field, dims[0])
                setattr(target, extra, dims[1])
            continue
        try:
            converted = _convert(kind, value, extra)
        except ValueError as exc:
            refused.append((name, value, str(exc)))
            continue
        if converted is not None:
            setattr(target, field, converted)
    return refused
