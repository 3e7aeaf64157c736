"""The client's address of a request, read from its forwarding headers as Snowplow's enrich 3.9.0 reads them.

Snowplow's enrich does not trust the collector's ``ipAddress`` alone: when it
loads a ``CollectorPayload`` it looks through the recorded headers
(``"Name: value"`` lines, in the order recorded) and takes the address from
them, the collector's ``ipAddress`` being the fallback.  The rule, reproduced
here:

- each header line is lower-cased and read as ``x-forwarded-for: ADDR...`` or
  ``forwarded: for=ADDR...`` (exactly one space after the colon, nothing
  between ``forwarded:`` and ``for=``);
- ``ADDR`` may start with a double quote and an opening bracket; it is the first
  dotted quad of one to three digits each when there is one there, else the
  longest run of hex digits, dots and colons (so a port after a dotted quad is
  dropped, ``[v6]:port`` gives ``v6``, and a name such as ``localhost`` that
  does not start with a hex digit gives nothing); what follows does not matter,
  but a line break anywhere in the line makes it unreadable;
- the first readable ``X-Forwarded-For`` wins at once; a readable
  ``Forwarded`` is kept, replaced by a later one, and forgotten again at the
  next header that is neither; what is kept at the end is used, else the
  fallback.

The address is returned lower-cased (the line is lower-cased before it is read).
"""
from __future__ import annotations

import re
from typing import Iterable

_ADDRESS = r'"?\[?(?:([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})|((?:[0-9a-f]|\.|:+)+))'
_X_FORWARDED_FOR = re.compile("x-forwarded-for: " + _ADDRESS)
_FORWARDED_FOR = re.compile("forwarded: for=" + _ADDRESS)
_ADDRESS_ONLY = re.compile(_ADDRESS)
# Java's "." stops at these, and each pattern must match the whole line
_LINE_BREAK = re.compile("[\n\r\u0085\u2028\u2029]")


def _read(pattern: re.Pattern, text: str) -> str | None:
    match = pattern.match(text)
    if match is None or _LINE_BREAK.search(text) is not None:
        return None
    return match.group(1) or match.group(2)


def extract_ip_address(headers: Iterable[str] | None, fallback: str | None) -> str | None:
    """The client address a request's headers give, else ``fallback`` (the collector's ``ipAddress``)."""
    if not headers:
        return fallback
    forwarded = None
    for line in headers:
        first = line[:1]
        if first == "x" or first == "X":
            address = _read(_X_FORWARDED_FOR, line.lower())
            if address is not None:
                return address
        elif first == "f" or first == "F":
            address = _read(_FORWARDED_FOR, line.lower())
            if address is not None:
                forwarded = address
                continue
        forwarded = None
    return fallback if forwarded is None else forwarded


def forwarded_for_address(value: str) -> str | None:
    """The address an ``X-Forwarded-For`` header's value gives by the same rule, or None (for the collector)."""
    return _read(_ADDRESS_ONLY, value.lower())
