"""A URL ``java.net.URI`` refuses, read and written back as Snowplow's enrich 3.9.0 does.

3.9.0's ``ConversionUtils.stringToUri`` hands such a URL to scala-uri 1.5.1 (``Uri.parseTry`` with a
``PercentDecoder`` that ignores invalid percent-encoding and the default ``PercentEncoder`` without ``+``)
and takes the ``java.net.URI`` of what scala-uri writes back.  What that does, as scala-uri 1.5.1's sources
(Apache-2.0) describe it:

- The URL is split as scala-uri's grammar splits it: ``scheme:``, then ``//authority`` (up to the first
  ``/``, ``?`` or ``#``), the path up to ``?`` or ``#`` in segments between ``/``, the query up to ``#`` in
  parameters between ``&`` (``key=value``, the value up to the next ``&``, or a key alone), and the fragment
  after the first ``#``.
- Each path segment, query key and value, and the fragment is percent-decoded: ``%`` and two characters
  Java's ``Integer.parseInt(hex, 16)`` reads (a sign included) make a byte, any other ``%`` stays, every
  other character is its UTF-8 bytes (a character beyond the BMP is two UTF-16 halves, each written ``?``);
  the bytes are read as UTF-8, what is not UTF-8 becoming U+FFFD.
- Each is encoded back byte by byte of its UTF-8: a byte below 32 or above 126, and the characters
  ``:/?#[]@!$&'()*,;= %<>{}^`|\\"``, as ``%XX`` (upper case); ``+`` and every other ASCII character as it is.
- Written back ``scheme:`` + ``//authority`` + ``/``-joined segments + ``?``-and-``&``-joined parameters +
  ``#fragment``; the authority as it was, but for a port of digits written as a number (``:080`` is ``:80``).

So ``/%E0%A4%A`` (bytes that are not UTF-8 and a ``%`` starting no escape) is ``/%EF%BF%BD%25A``, and a
query value holding a URL, ``u=https://b.example/|x``, is ``u=https%3A%2F%2Fb.example%2F%7Cx``.  A URL
without a scheme (``//host/path``, ``path?query``) is read the same way from its authority or path on.
"""
from __future__ import annotations

import re

__all__ = ["scala_uri_url"]

_ENCODED = frozenset(b":/?#[]@!$&'()*,;= %<>{}^`|\\\"")
_BYTE_TEXT = tuple(f"%{b:02X}" if b < 32 or b > 126 or b in _ENCODED else chr(b) for b in range(256))
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.DOTALL)
_HEX = frozenset("0123456789abcdefABCDEF")


def _java_hex_byte(text: str) -> int | None:
    """The byte of two characters as ``Integer.parseInt(text, 16).toByte`` makes it (``-1`` is 0xFF), or None."""
    if len(text) != 2:
        return None
    sign, digits = (text[0], text[1:]) if text[0] in "+-" else ("", text)
    if not digits or any(c not in _HEX for c in digits):
        return None
    value = int(digits, 16)
    return (-value if sign == "-" else value) & 0xFF


def _decode(text: str) -> str:
    if "%" not in text and text.isascii():
        return text
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "%":
            byte = _java_hex_byte(text[i + 1:i + 3])
            if byte is not None:
                out.append(byte)
                i += 3
                continue
            out.append(0x25)
        elif c <= "\x7f":
            out.append(ord(c))
        elif c > "\uffff" or "\ud800" <= c <= "\udfff":
            out += b"??" if c > "\uffff" else b"?"  # Java's getBytes of each UTF-16 half alone
        else:
            out += c.encode("utf-8")
        i += 1
    return out.decode("utf-8", "replace")


def _encode(text: str) -> str:
    data = text.encode("utf-8", "replace")  # a lone surrogate is Java's '?'
    return "".join([_BYTE_TEXT[b] for b in data])


def _recode(text: str) -> str:
    return _encode(_decode(text))


def _path(path: str) -> str:
    return "/".join(_recode(part) for part in path.split("/"))


def _query(query: str) -> str:
    params = []
    for param in query.split("&"):
        key, equals, value = param.partition("=")
        params.append(_recode(key) + equals + _recode(value) if equals else _recode(key))
    return "&".join(params)


def _authority(authority: str) -> str:
    host, colon, port = authority.rpartition(":")
    if colon and port.isdigit() and port.isascii() and "]" not in port:
        return f"{host}:{int(port)}"
    return authority


def scala_uri_url(url: str) -> str:
    """``url`` as scala-uri 1.5.1 writes it back (see the module's docstring)."""
    found = _SCHEME.fullmatch(url)
    scheme, rest = (found.group(1) + ":", found.group(2)) if found is not None else ("", url)
    rest, hash_, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    authority = ""
    if rest.startswith("//"):
        end = rest.find("/", 2)
        authority, rest = (rest, "") if end < 0 else (rest[:end], rest[end:])
        authority = "//" + _authority(authority[2:])
    return (scheme + authority + _path(rest) + (question + _query(query) if question else "")
            + (hash_ + _recode(fragment) if hash_ else ""))
