"""IP anonymisation (``anon_ip``): the end of ``user_ipaddress`` becomes ``x``, as Snowplow's enrich 3.9.0 does it.

``anonOctets`` (1-4) and ``anonSegments`` (1-8; config 1-0-0 has none and
``anonOctets`` is used for IPv6 too).  The value is first read as an address
the way Guava's ``InetAddresses.forString`` (28.1) reads one, then:

- an IPv4 address, or an IPv4-mapped IPv6 address (``::ffff:1.2.3.4``, which
  Java turns into an IPv4 address): the value as written is split on dots, its
  first ``4 - anonOctets`` parts kept and the rest replaced by ``x``; a value
  starting with exactly ``::FFFF:`` keeps that prefix and the rest is masked;
- any other IPv6 address: it is written out in full (eight groups, lower-case,
  no leading zeros, ``::192.168.0.1`` is ``0:0:0:0:0:0:c0a8:1``), then its first
  ``8 - anonSegments`` groups kept and the rest ``x``;
- not an address: a value holding a dot (or empty) is masked as IPv4 is
  (``777.2.23`` with 4 octets is ``x.x.x``), else one holding a colon as IPv6
  is, without expanding it and padded with ``x`` to eight groups
  (``2700:zzzz::gggg`` with 6 segments is ``2700:zzzz:x:x:x:x:x:x``), else the
  value is left as it is.

Splitting drops empty parts at the end, as Java's ``String.split`` does.

Runs after every IP-based enrichment (see ``processor.enrichments.ORDER``).

The masked form of the last :data:`CACHE_SIZE` addresses is kept (a visitor
sends every event from the same address); a value longer than
:data:`CACHED_CHARS`, which no address is, is masked without being kept.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from processor.enrichments.base import Enrichment, EventContext, LoadContext

MASK = "x"
#: addresses whose masked form is kept, and the longest value kept (an IPv6 address with an IPv4 tail is 45)
CACHE_SIZE = 4096
CACHED_CHARS = 64
MAPPED_PREFIX = "::FFFF:"  # compared case-sensitively, as Snowplow does
# a plain dotted quad of ASCII digits: the common case, read without the general parser
_PLAIN_IPV4 = re.compile(r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}")
_ASCII_HEX = {c: int(c, 16) for c in "0123456789abcdefABCDEF"}


def _java_digit(c: str, radix: int) -> int:
    """``Character.digit(c, radix)`` for radix 10 or 16: Unicode decimal digits and (full-width) Latin letters."""
    value = _ASCII_HEX.get(c)
    if value is None:
        code = ord(c)
        if 0xFF21 <= code <= 0xFF26 or 0xFF41 <= code <= 0xFF46:
            value = (code & 0x1F) + 9  # full-width A-F / a-f
        else:
            value = unicodedata.decimal(c, -1)
    return value if value < radix else -1


def _java_int(text: str, radix: int) -> int | None:
    """The value of a text of digits (at most 3 decimal or 4 hex digits, as Guava reads them), or None."""
    if not text or len(text) > (3 if radix == 10 else 4):
        return None
    value = 0
    for c in text:
        digit = _java_digit(c, radix)
        if digit < 0:
            return None
        value = value * radix + digit
    return value


def _ipv4_bytes(text: str) -> bytes | None:
    parts = text.split(".")
    if len(parts) != 4:
        return None
    out = bytearray()
    for part in parts:
        octet = _java_int(part, 10)
        if octet is None or octet > 255 or (part[0] == "0" and len(part) > 1):
            return None
        out.append(octet)
    return bytes(out)


def _ipv6_bytes(text: str) -> bytes | None:
    parts = text.split(":", 9)
    if not 3 <= len(parts) <= 9:
        return None
    skip = -1
    for i in range(1, len(parts) - 1):
        if not parts[i]:
            if skip >= 0:
                return None  # a second "::"
            skip = i
    if skip >= 0:
        high, low = skip, len(parts) - skip - 1
        if not parts[0]:
            high -= 1
            if high:
                return None  # a leading ":" needs "::"
        if not parts[-1]:
            low -= 1
            if low:
                return None  # a trailing ":" needs "::"
    else:
        high, low = len(parts), 0
    skipped = 8 - high - low
    if not (skipped >= 1 if skip >= 0 else skipped == 0):
        return None
    hextets = []
    for part in parts[:high]:
        hextets.append(_java_int(part, 16))
    hextets.extend([0] * skipped)
    for part in parts[len(parts) - low:] if low else ():
        hextets.append(_java_int(part, 16))
    if None in hextets:
        return None
    return b"".join(h.to_bytes(2, "big") for h in hextets)


def parse_address(text: str) -> bytes | None:
    """The 4 or 16 bytes Guava's ``InetAddresses.forString`` reads in ``text``, or None when it refuses it."""
    has_colon = has_dot = False
    for c in text:
        if c == ".":
            has_dot = True
        elif c == ":":
            if has_dot:
                return None  # no colon after a dot
            has_colon = True
        elif _java_digit(c, 16) < 0:
            return None
    if has_colon:
        if has_dot:
            last = text.rfind(":")
            quad = _ipv4_bytes(text[last + 1:])
            if quad is None:
                return None
            text = f"{text[:last + 1]}{quad[0] << 8 | quad[1]:x}:{quad[2] << 8 | quad[3]:x}"
        return _ipv6_bytes(text)
    if has_dot:
        return _ipv4_bytes(text)
    return None


def _java_split(text: str, sep: str) -> list[str]:
    """``String.split`` on a one-character separator: empty parts at the end dropped."""
    if sep not in text:
        return [text]
    parts = text.split(sep)
    while parts and not parts[-1]:
        parts.pop()
    return parts


def _mask_parts(parts: list[str], octets: int) -> str:
    """The dotted parts joined again, the first ``4 - octets`` kept and every other one ``x``."""
    kept = parts[:4 - octets]
    return ".".join(kept + [MASK] * (len(parts) - len(kept)))


def _mask_ipv4(text: str, octets: int) -> str:
    if text.startswith(MAPPED_PREFIX):
        return MAPPED_PREFIX + _mask_parts(_java_split(text.replace(MAPPED_PREFIX, ""), "."), octets)
    return _mask_parts(_java_split(text, "."), octets)


def _mask_ipv6(text: str, segments: int) -> str:
    kept = _java_split(text, ":")[:8 - segments]
    return ":".join(kept + [MASK] * (8 - len(kept)))


def anonymise_ip(ip: str, octets: int, segments: int) -> str:
    """``ip`` with its last ``octets`` (IPv4) or ``segments`` (IPv6) masked, as Snowplow's ``anonymizeIp``."""
    if _PLAIN_IPV4.fullmatch(ip):  # most values: four parts, none empty, no prefix
        return _mask_parts(ip.split("."), octets)
    return _anonymise_read(ip, octets, segments)


def _anonymise_read(ip: str, octets: int, segments: int) -> str:
    """:func:`anonymise_ip` of any value: read as Guava reads an address, then masked by what it is."""
    address = parse_address(ip)
    if address is None:
        if "." in ip or not ip:
            return _mask_ipv4(ip, octets)
        if ":" in ip:
            return _mask_ipv6(ip, segments)
        return ip
    if len(address) == 4 or address[:12] == b"\0" * 10 + b"\xff\xff":
        return _mask_ipv4(ip, octets)
    full = ":".join(f"{int.from_bytes(address[i:i + 2], 'big'):x}" for i in range(0, 16, 2))
    return _mask_ipv6(full, segments)


@dataclass(frozen=True)
class AnonIp(Enrichment):
    name = "anon_ip"
    criteria = ("1-0-*",)

    octets: int
    segments: int

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "AnonIp":
        octets = int(parameters["anonOctets"])
        return cls(octets=octets, segments=int(parameters.get("anonSegments", octets)))

    def anonymise(self, ip: str) -> str:
        return anonymise_ip(ip, self.octets, self.segments)

    @functools.cached_property
    def _kept(self):
        """:meth:`anonymise`, its last :data:`CACHE_SIZE` answers kept."""
        return functools.lru_cache(maxsize=CACHE_SIZE)(self.anonymise)

    def enrich(self, event: Any, ctx: EventContext) -> None:
        ip = event.user_ipaddress
        if ip is None:
            return
        event.user_ipaddress = self._kept(ip) if len(ip) <= CACHED_CHARS else self.anonymise(ip)
