"""Scans of long text that bound what a hostile input costs, pure Python.

The twin of ``ext/_scan.pyx``: same functions and results.

- ``has_digit_run(text, length)``: whether ``text`` (``str`` or ``bytes``)
  holds ``length`` or more ASCII digits (``0``-``9``) in a row.  JSON parsing
  uses it to find integers too long for a 64-bit parser to hold exactly; the
  compiled twin reads the text once, in place, without encoding or copying it.
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

__all__ = ["brackets_over", "has_digit_run", "iglu_uris"]


def has_digit_run(text, length: int) -> bool:
    """Whether ``text`` holds ``length`` (at least 1) ASCII digits in a row."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise TypeError(f"has_digit_run() needs str or bytes, not {type(text).__name__}")
    length = max(1, int(length))
    if isinstance(text, str):
        return re.search(f"[0-9]{{{length}}}", text) is not None
    return re.search(f"[0-9]{{{length}}}".encode(), text) is not None


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
