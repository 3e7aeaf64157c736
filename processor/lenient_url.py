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

Only a URL ``java.net.URI`` refuses comes here.  Its cost is linear: a megabyte URL of 170,000 query
parameters costs about 0.7 s (each part decoded and encoded on its own), one of 500,000 path segments 0.4 s.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

__all__ = ["scala_uri_url"]

_ENCODED = frozenset(b":/?#[]@!$&'()*,;= %<>{}^`|\\\"")
#: each byte (as the latin-1 character of that number) as scala-uri's encoder writes it
_BYTE_TEXT = {b: f"%{b:02X}" for b in range(256) if b < 32 or b > 126 or b in _ENCODED}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.DOTALL)
_SIGNED_ESCAPE = re.compile(r"%([+-])([0-9A-Fa-f])")
_BEYOND_BMP = re.compile("[^\u0000-\ud7ff\ue000-\uffff]")
_CHANGED_BY_DECODING = re.compile("%(?:[0-9A-Fa-f]{2}|[+-][0-9A-Fa-f])|[^\u0000-\ud7ff\ue000-\uffff]")


def _signed_escape(found: re.Match) -> str:
    # %-1 and %+F as Java's Integer.parseInt(hex, 16).toByte reads them: the bytes 0xFF and 0x0F
    value = int(found.group(2), 16)
    return f"%{(-value if found.group(1) == '-' else value) & 0xFF:02X}"


def _decode(text: str) -> str:
    if _CHANGED_BY_DECODING.search(text) is None:  # no escape to read, nothing beyond the BMP: as it is
        return text
    text = _SIGNED_ESCAPE.sub(_signed_escape, text)
    # each UTF-16 half of a character beyond the BMP, and a lone one, is '?'
    text = _BEYOND_BMP.sub(lambda found: "??" if found.group() > "\uffff" else "?", text)
    return unquote_to_bytes(text).decode("utf-8", "replace")


def _encode(text: str) -> str:
    # the UTF-8 bytes as latin-1 characters, each written as its table says, in one pass in C (a lone
    # surrogate is Java's '?')
    return text.encode("utf-8", "replace").decode("latin-1").translate(_BYTE_TEXT)


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
