"""Scans of long text that bound what a hostile input costs, pure Python.

The twin of ``ext/_scan.pyx``: same functions and results.

- ``has_numbers_to_keep(text)``: whether JSON ``text`` (``str`` or
  ``bytes``, parsed already) holds a number outside its strings that a
  shortest-form printer (orjson) would not write back as it is: an integer
  of 19 digits or more (beyond 64 bits, or near it) or ``-0``; a number with
  an exponent (``1.0e0``, ``1E+2``); a fraction ending in a zero (``0.10``;
  ``1.0`` is written back); one with more than 15 significant digits, or
  more than 15 before the point; or one below 1e-5 written without an
  exponent (``0.000001``).  Every number of any other form is written back
  as it is (15 significant digits always are), so a text it says False of
  needs no number text kept; some it says True of would be written back too
  (``1e+21``).  JSON parsing keeps the text of such numbers, as Snowplow's
  enrich (circe) does.  The compiled twin reads the text in place and jumps
  over strings with ``memchr``.
- ``brackets_over(text, limit)``: whether ``text`` (``str`` or ``bytes``)
  holds more than ``limit`` opening brackets (``{`` and ``[`` together), so
  JSON parsed from it may nest deeper than that.  The compiled twin reads the
  text once and stops at the bracket past the limit.
- ``iglu_uris(data)``: the distinct Iglu URIs that ``data`` (bytes-like, JSON
  text) holds as a ``"schema":"iglu:..."`` member, as a set of bytes: what the
  ClickHouse loader looks for in a batch's JSON columns, megabytes at a time.
  A URI is ``iglu:vendor/name/jsonschema/M-R-A`` (vendor of letters, digits,
  ``_ . -``; name of letters, digits, ``_ -``; decimal version numbers)
  followed by the closing quote; the scan goes on after that quote.  The
  compiled twin finds the members with ``memmem`` and makes a bytes object
  only for a URI unlike the last few found.
"""
from __future__ import annotations

import re

__all__ = ["brackets_over", "has_numbers_to_keep", "iglu_uris"]


# a string (skipped; one that never ends runs to the end), or a number: sign, whole part, fraction, exponent
_TOKENS = r'"(?:[^"\\]|\\.)*\\?(?:"|$)|(-?)([0-9]+)(?:\.([0-9]*))?([eE])?'
_NUMBER_TOKENS = re.compile(_TOKENS, re.DOTALL)


def _kept(sign: str, whole: str, fraction: str | None, exponent: str | None) -> bool:
    if exponent:
        return True
    if fraction is None:
        return len(whole) >= 19 or (sign == "-" and whole == "0")
    if fraction == "0":
        return len(whole) > 15
    if not fraction or fraction.endswith("0") or len(whole) > 15:
        return True
    if whole == "0":
        digits = fraction.lstrip("0")
        return len(fraction) - len(digits) > 4 or len(digits) > 15
    return len(whole) + len(fraction) > 15


def has_numbers_to_keep(text) -> bool:
    """Whether JSON ``text`` holds a number a shortest-form printer would not write back as it is."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("latin-1")  # a character a byte: quotes, backslashes and digits where they were
    elif not isinstance(text, str):
        raise TypeError(f"has_numbers_to_keep() needs str or bytes, not {type(text).__name__}")
    for found in _NUMBER_TOKENS.finditer(text):
        whole = found.group(2)
        if whole is not None and _kept(found.group(1), whole, found.group(3), found.group(4)):
            return True
    return False


def brackets_over(text, limit: int) -> bool:
    """Whether ``text`` holds more than ``limit`` of ``{`` and ``[`` together."""
    if isinstance(text, str):
        return text.count("{") + text.count("[") > int(limit)
    if isinstance(text, (bytes, bytearray)):
        return text.count(b"{") + text.count(b"[") > int(limit)
    raise TypeError(f"brackets_over() needs str or bytes, not {type(text).__name__}")


_IGLU_MEMBER = re.compile(rb'"schema":"(iglu:[a-zA-Z0-9_.-]+/[a-zA-Z0-9_-]+/jsonschema/[0-9]+-[0-9]+-[0-9]+)"')


def iglu_uris(data) -> set[bytes]:
    """The distinct URIs of the ``"schema":"iglu:..."`` members in ``data`` (any contiguous bytes-like object)."""
    if isinstance(data, str):
        raise TypeError("iglu_uris() needs bytes, not str")
    return set(_IGLU_MEMBER.findall(memoryview(data).cast("B")))
