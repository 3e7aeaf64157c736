"""A URL ``java.net.URI`` refuses, read and written back as Snowplow's enrich 3.9.0 does.

3.9.0's ``ConversionUtils.stringToUri`` hands such a URL to scala-uri 1.5.1 (``Uri.parseTry`` with a
``PercentDecoder`` that ignores invalid percent-encoding and the default ``PercentEncoder`` without ``+``)
and takes the ``java.net.URI`` of what scala-uri writes back.  What that does, as scala-uri 1.5.1's sources
(Apache-2.0) describe it:

- The URL is split as scala-uri's grammar splits it: ``scheme:``, then ``//authority``, the path up to ``?``
  or ``#`` in segments between ``/``, the query up to ``#`` in parameters between ``&`` (``key=value``, the
  value up to the next ``&``, or a key alone), and the fragment after the first ``#``.
- The authority is ``[user [":" password] "@"] host [":" port]``: the user runs up to one of ``:/?[]@``, a
  password up to the first ``@`` (a ``/``, ``?`` or ``#`` too); the host is an IPv4 address (four octets up to
  255, followed by ``:/?#`` or the end), else an IPv6 reference (eight pieces, or pieces around ``::``), else
  any text up to ``:/?#``; the port is one to ten digits.  When what follows is not a path, query, fragment
  or the end (``https://[::1]x/``, ``https://a.example:8x/``), or the port is beyond an ``Int``, or an IPv6
  reference with ``::`` has more than six pieces, scala-uri refuses the URL: :func:`scala_uri_url` gives
  ``None`` (:mod:`processor.scala_uri_parse` says why, in scala-uri's words).
- Each path segment, query key and value, the fragment, the user and the password are percent-decoded:
  ``%`` and two characters Java's ``Integer.parseInt(hex, 16)`` reads (a sign included) make a byte, any other
  ``%`` stays, every other character is its UTF-8 bytes (a character beyond the BMP is two UTF-16 halves, each
  written ``?``); the bytes are read as UTF-8, what is not UTF-8 becoming U+FFFD.
- Each is encoded back byte by byte of its UTF-8: a byte below 32 or above 126, and the characters
  ``:/?#[]@!$&'()*,;= %<>{}^`|\\"``, as ``%XX`` (upper case); ``+`` and every other ASCII character as it is.
- Written back ``scheme:`` + ``//`` + user info + host + ``:port`` + ``/``-joined segments +
  ``?``-and-``&``-joined parameters + ``#fragment``: an IPv4 address and the port as numbers (``001.2.3.4:080``
  is ``1.2.3.4:80``), an IPv6 address as scala-uri's ``IpV6.value`` writes it (lower-case pieces without
  leading zeros, the first longest run of two or more zero pieces as ``::``), any other host as written
  (spaces too, which java.net.URI then refuses).

So ``/%E0%A4%A`` (bytes that are not UTF-8 and a ``%`` starting no escape) is ``/%EF%BF%BD%25A``, a query
value holding a URL, ``u=https://b.example/|x``, is ``u=https%3A%2F%2Fb.example%2F%7Cx``, and
``https://u s:p/w@a.example/`` is ``https://u%20s:p%2Fw@a.example/``.  A URL without a scheme
(``//host/path``, ``path?query``) is read the same way from its authority or path on.

Only a URL ``java.net.URI`` refuses comes here.  Its cost is linear: a megabyte URL of 170,000 query
parameters costs about 0.7 s (each part decoded and encoded on its own), one of 500,000 path segments 0.4 s.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

__all__ = ["scala_uri_url"]

_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_INT_MAX = 2**31 - 1
_ENCODED = frozenset(b":/?#[]@!$&'()*,;= %<>{}^`|\\\"")
#: each byte (as the latin-1 character of that number) as scala-uri's encoder writes it
_BYTE_TEXT = {b: f"%{b:02X}" for b in range(256) if b < 32 or b > 126 or b in _ENCODED}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.DOTALL)
_PCHAR = "A-Za-z0-9\\-._~%!$&'()*+,;=:@"
_URN = re.compile(f"urn:([A-Za-z0-9-]*):([{_PCHAR}][{_PCHAR}/]*)")
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


def _run(text: str, p: int, allowed: frozenset, most: int) -> int:
    """The end of the run of at most ``most`` ``allowed`` characters from ``p`` (a PEG repetition: greedy)."""
    end = min(len(text), p + most)
    while p < end and text[p] in allowed:
        p += 1
    return p


def _ipv4(text: str, p: int) -> tuple[str, int] | None:
    """scala-uri's ``_ip_v4`` at ``p``, followed by ``:/?#`` or the end: (the address written, its end)."""
    octets = []
    for i in range(4):
        if i:
            if not text.startswith(".", p):
                return None
            p += 1
        q = _run(text, p, _DIGITS, 3)
        if q == p or int(text[p:q]) > 255:
            return None
        octets.append(int(text[p:q]))
        p = q
    if p < len(text) and text[p] not in ":/?#":
        return None
    return ".".join(map(str, octets)), p


def _hex_pieces(text: str, p: int) -> tuple[list[int], int]:
    """``zeroOrMore(_ip_v6_hex_piece).separatedBy(':')`` at ``p``."""
    pieces: list[int] = []
    while True:
        start = p + 1 if pieces else p
        if pieces and not text.startswith(":", p):
            return pieces, p
        q = _run(text, start, _HEX, 4)
        if q == start:
            return pieces, p
        pieces.append(int(text[start:q], 16))
        p = q


def _ipv6(text: str, p: int) -> tuple[str, int] | None:
    """scala-uri's ``_ip_v6`` at ``p`` (eight pieces, or pieces around ``::``): (the address as scala-uri writes
    it, its end); raises ValueError where scala-uri's parse fails outright (more than six pieces with ``::``)."""
    if not text.startswith("[", p):
        return None
    before, q = _hex_pieces(text, p + 1)
    if len(before) == 8 and text.startswith("]", q):  # 8.times(_ip_v6_hex_piece).separatedBy(':'), then ']'
        pieces, end = before, q + 1
    else:
        if not text.startswith("::", q):
            return None
        after, q = _hex_pieces(text, q + 2)
        if not text.startswith("]", q):
            return None
        if 8 - len(before) - len(after) < 2:
            raise ValueError("IPv6 has too many pieces")
        pieces, end = before + [0] * (8 - len(before) - len(after)) + after, q + 1
    # IpV6.value: the first longest run of two or more zero pieces written '::', each piece in lower-case hex
    best, start = (-1, -1), 0
    for i in range(9):
        if i == 8 or pieces[i]:
            if i - start > 1 and i - start > best[1] - best[0]:
                best = (start, i)
            start = i + 1
    hexes = [f"{piece:x}" for piece in pieces]
    if best == (-1, -1):
        return "[" + ":".join(hexes) + "]", end
    return "[" + ":".join(hexes[:best[0]]) + "::" + ":".join(hexes[best[1]:]) + "]", end


def _authority(text: str) -> tuple[str, int] | None:
    """scala-uri's ``_authority`` of ``text`` (which starts with ``//``): (the authority as scala-uri writes it,
    where it ends), or None when what follows it is no path, query, fragment or end (its parse fails)."""
    n, p = len(text), 2
    written = "//"
    # [user [":" password] "@"]: the user up to one of :/?[]@, the password up to the first '@' (whatever it holds)
    q = p
    while q < n and text[q] not in ":/?[]@":
        q += 1
    if q < n and text[q] == "@":
        written, p = written + _recode(text[p:q]) + "@", q + 1
    elif q < n and text[q] == ":":
        at = text.find("@", q + 1)
        if at >= 0:
            written, p = written + _recode(text[p:q]) + ":" + _recode(text[q + 1:at]) + "@", at + 1
    # the host: an IPv4 address, an IPv6 reference, else any text up to :/?#, kept as written
    try:
        host = _ipv4(text, p) or _ipv6(text, p)
    except ValueError:
        return None
    if host is None:
        q = p
        while q < n and text[q] not in ":/?#":
            q += 1
        host = text[p:q], q
    written, p = written + host[0], host[1]
    if text.startswith(":", p):
        q = _run(text, p + 1, _DIGITS, 10)
        if q > p + 1:
            if int(text[p + 1:q]) > _INT_MAX:  # String.toInt in the parser's action
                return None
            written, p = written + ":" + str(int(text[p + 1:q])), q
    if p < n and text[p] not in "/?#":
        return None
    return written, p


def urn_parts(url: str) -> tuple[str, str] | None:
    """(nid, nss) when scala-uri reads ``url`` as a URN, which it tries before a URL: ``urn:`` (in lower case),
    a namespace of two or more letters, digits and ``-`` (not at either end), ``:``, and a specific string of
    ``pchar`` (letters, digits, ``-._~%!$&'()*+,;=:@``, and ``/`` after the first)."""
    found = _URN.fullmatch(url)
    if found is None:
        return None
    nid, nss = found.groups()
    if len(nid) < 2 or nid.startswith("-") or nid.endswith("-"):  # the rule's action throws: a URL after all
        return None
    return nid, nss


def scala_uri_url(url: str) -> str | None:
    """``url`` as scala-uri 1.5.1 writes it back (see the module's docstring); None when scala-uri refuses it
    (:func:`processor.scala_uri_parse.scala_uri_refusal` says why)."""
    urn = urn_parts(url)
    if urn is not None:  # the specific string decoded and encoded as a path segment is
        return f"urn:{urn[0]}:{_recode(urn[1])}"
    found = _SCHEME.fullmatch(url)
    scheme, rest = (found.group(1) + ":", found.group(2)) if found is not None else ("", url)
    authority = ""
    if rest.startswith("//"):
        read = _authority(rest)
        if read is None:
            return None
        authority, rest = read[0], rest[read[1]:]
    rest, hash_, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    return (scheme + authority + _path(rest) + (question + _query(query) if question else "")
            + (hash_ + _recode(fragment) if hash_ else ""))
