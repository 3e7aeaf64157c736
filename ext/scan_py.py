"""Scans of long text that bound what a hostile input costs, pure Python.

The twin of ``ext/_scan.pyx``: same functions and results.

- ``has_digit_run(text, length)``: whether ``text`` (``str`` or ``bytes``)
  holds ``length`` or more ASCII digits (``0``-``9``) in a row.  JSON parsing
  uses it to find integers too long for a 64-bit parser to hold exactly; the
  compiled twin reads the text once, in place, without encoding or copying it.
"""
from __future__ import annotations

import re

__all__ = ["has_digit_run"]


def has_digit_run(text, length: int) -> bool:
    """Whether ``text`` holds ``length`` (at least 1) ASCII digits in a row."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise TypeError(f"has_digit_run() needs str or bytes, not {type(text).__name__}")
    length = max(1, int(length))
    if isinstance(text, str):
        return re.search(f"[0-9]{{{length}}}", text) is not None
    return re.search(f"[0-9]{{{length}}}".encode(), text) is not None
