"""URL parts for the enriched ``page_url*`` and ``refr_url*`` fields, pure Python.

The twin of ``ext/_url.pyx``.  ``split_url(url)`` returns
``(scheme, host, port, path, query, fragment)`` as Snowplow's enrich 3.9.0 sets
them (``ConversionUtils.explodeUri`` of a ``java.net.URI``), or ``None`` when
``java.net.URI`` refuses the URL:

- spaces are read as ``%20`` (as Snowplow's ``stringToUri`` does before parsing);
- the URL is parsed by ``java.net.URI``'s grammar (RFC 2396 with Java's
  deviations): a relative reference (``not%20a%20url``) has no scheme and no
  host, an opaque one (``mailto:x@y``) no host and no path; an authority that
  is not a valid server (``my_host``, a port beyond an int, a non-ASCII name)
  is registry-based: no host, no port;
- the scheme and the host are kept as written (no lower-casing); an IPv6 host
  keeps its brackets (``[::1]``);
- the port is the URL's (any int: ``99999`` is kept), else 443 when the scheme
  is exactly ``https``, else 80 (``android-app://x`` and relative URLs too);
- the path, query and fragment are the raw (still percent-encoded) text; an
  empty one is ``None``.

This module is the specification: the compiled twin reads the common shape
(``scheme://name[:port][/path][?query][#fragment]`` in printable ASCII, a host
name Java takes as a server name) itself and hands everything else to this
function.
"""
from __future__ import annotations

import re
import unicodedata

__all__ = ["split_url", "DEFAULT_PORTS"]

DEFAULT_PORTS = {"https": 443}

_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGIT = frozenset("0123456789")
_ALPHANUM = _ALPHA | _DIGIT
_HEX = frozenset("0123456789abcdefABCDEF")
_MARK = frozenset("-_.!~*'()")
_UNRESERVED = _ALPHANUM | _MARK
_RESERVED = frozenset(";/?:@&=+$,[]")
_URIC = _RESERVED | _UNRESERVED  # and escapes, and visible non-ASCII ("other")
_PCHAR = _UNRESERVED | frozenset(":@&=+$,")
_PATH = _PCHAR | frozenset(";/")
_USERINFO = _UNRESERVED | frozenset(";:&=+$,")
_REG_NAME = _UNRESERVED | frozenset("$,;:@&=+")
_SERVER = _USERINFO | _ALPHANUM | frozenset("-.:@[]")
_SCHEME = _ALPHANUM | frozenset("+-.")
_SCOPE_ID = _ALPHANUM | frozenset("_.")
_IPV4 = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})")


class _Refused(Exception):
    """java.net.URISyntaxException."""


def _other(c: str) -> bool:
    """java.net.URI's "other" characters, accepted wherever an escape may stand: above U+0080, neither a
    space (``Character.isSpaceChar``) nor an ISO control."""
    return c > "\x9f" and unicodedata.category(c) not in ("Zs", "Zl", "Zp")


def _scan(s: str, p: int, n: int, allowed: frozenset, escapes: bool) -> int:
    """The end of the run from ``p`` of allowed characters (and escapes / other characters when allowed)."""
    while p < n:
        c = s[p]
        if c in allowed:
            p += 1
        elif escapes and c == "%" and p + 2 < n and s[p + 1] in _HEX and s[p + 2] in _HEX:
            p += 3
        elif escapes and _other(c):
            p += 1
        else:
            break
    return p


def _check(s: str, p: int, n: int, allowed: frozenset, escapes: bool = True) -> None:
    if _scan(s, p, n, allowed, escapes) < n:
        raise _Refused


def _find(s: str, p: int, n: int, stop: str, target: str) -> int:
    """Java's ``scan(start, end, err, stop)``: the index of the first ``target`` character before any ``stop``
    character, else -1."""
    for i in range(p, n):
        c = s[i]
        if c in stop:
            return -1
        if c in target:
            return i
    return -1


def _ipv4(s: str, p: int, n: int) -> int:
    """The end of an IPv4 address at ``p`` followed by the end or ``:``, else -1."""
    q = p
    while q < n and (s[q] in _DIGIT or s[q] == "."):
        q += 1
    m = _IPV4.fullmatch(s, p, q)
    if m is None or any(int(octet) > 255 for octet in m.groups()):
        return -1
    if q < n and s[q] != ":":
        return -1
    return q


def _hostname(s: str, p: int, n: int) -> int:
    start, last = p, -1
    while p < n:
        q = p
        while q < n and s[q] in _ALPHANUM:
            q += 1
        if q <= p:
            break
        last = p
        p = q
        while q < n and (s[q] in _ALPHANUM or s[q] == "-"):
            q += 1
        if q > p:
            if s[q - 1] == "-":
                raise _Refused
            p = q
        if p < n and s[p] == ".":
            p += 1
        else:
            break
    if p < n and s[p] != ":":
        raise _Refused
    if last < 0:
        raise _Refused
    if last > start and s[last] not in _ALPHA:
        raise _Refused
    return p


def _ipv6(text: str) -> bool:
    """An IPv6 reference as java.net.URI checks it (hex groups, one ``::``, an IPv4 tail)."""
    if text.count("::") > 1 or not text:
        return False
    groups = text.split(":")
    tail4 = _IPV4.fullmatch(groups[-1]) is not None
    if tail4 and any(int(o) > 255 for o in groups[-1].split(".")):
        return False
    words = groups[:-1] if tail4 else groups
    if "::" in text:
        head, _, rest = text.partition("::")
        parts = [g for g in head.split(":") if g] + [g for g in rest.split(":") if g]
        if tail4:
            parts = parts[:-1]
        if any(not (1 <= len(g) <= 4 and all(c in _HEX for c in g)) for g in parts):
            return False
        return len(parts) + (2 if tail4 else 0) <= 7
    if any(not (1 <= len(g) <= 4 and all(c in _HEX for c in g)) for g in words):
        return False
    return len(words) + (2 if tail4 else 0) == 8


def _server(s: str, p: int, n: int):
    """(host, port) of a server authority s[p:n]; raises _Refused when it is not one."""
    at = _find(s, p, n, "/?#", "@")
    if at >= 0:
        _check(s, p, at, _USERINFO)
        p = at + 1
    if p < n and s[p] == "[":
        close = _find(s, p + 1, n, "/?#", "]")
        if close <= p + 1:
            raise _Refused
        inner = s[p + 1:close]
        address, percent, scope = inner.partition("%")
        if not _ipv6(address) or (percent and (not scope or _scan(scope, 0, len(scope), _SCOPE_ID, False)
                                               < len(scope))):
            raise _Refused
        host = s[p:close + 1]
        p = close + 1
    else:
        q = _ipv4(s, p, n)
        if q <= p:
            q = _hostname(s, p, n)
        host = s[p:q]
        p = q
    port = -1
    if p < n and s[p] == ":":
        p += 1
        q = p
        while q < n and s[q] in _DIGIT:
            q += 1
        if q > p:
            port = int(s[p:q])
            if port > 2**31 - 1:
                raise _Refused  # Integer.parseInt: "Malformed port number"
            p = q
    if p < n:
        raise _Refused
    return host, port


def _authority(s: str, p: int, n: int):
    """(host, port) of the authority s[p:n]: (None, -1) when registry-based; raises _Refused when neither."""
    server_chars = _scan(s, p, n, _SERVER, True) == n
    reg_chars = _scan(s, p, n, _REG_NAME, True) == n
    if reg_chars and not server_chars:
        return None, -1
    if server_chars:
        try:
            return _server(s, p, n)
        except _Refused:
            pass
    if reg_chars:
        return None, -1
    raise _Refused


def _parse(s: str):
    """java.net.URI's parse: (scheme, host, port, raw path, raw query, raw fragment); raises _Refused."""
    n = len(s)
    scheme = host = path = query = fragment = None
    port = -1
    colon = _find(s, 0, n, "/?#", ":")
    p = 0
    if colon >= 0:
        if colon == 0 or s[0] not in _ALPHA:
            raise _Refused
        _check(s, 1, colon, _SCHEME, False)
        scheme = s[:colon]
        p = colon + 1
        if p < n and s[p] == "/":
            p, host, port, path, query = _hierarchical(s, p, n)
        else:
            q = s.find("#", p)
            q = n if q < 0 else q
            if q <= p:
                raise _Refused
            _check(s, p, q, _URIC)
            p = q
    else:
        p, host, port, path, query = _hierarchical(s, 0, n)
    if p < n and s[p] == "#":
        _check(s, p + 1, n, _URIC)
        fragment = s[p + 1:]
        p = n
    if p < n:
        raise _Refused
    return scheme, host, port, path, query, fragment


def _hierarchical(s: str, p: int, n: int):
    host, port = None, -1
    if s.startswith("//", p):
        p += 2
        q = p
        while q < n and s[q] not in "/?#":
            q += 1
        if q > p:
            host, port = _authority(s, p, q)
        elif q >= n:
            raise _Refused  # "Expected authority"
        p = q
    q = p
    while q < n and s[q] not in "?#":
        q += 1
    _check(s, p, q, _PATH)
    path = s[p:q]
    p = q
    query = None
    if p < n and s[p] == "?":
        p += 1
        q = s.find("#", p)
        q = n if q < 0 else q
        _check(s, p, q, _URIC)
        query = s[p:q]
        p = q
    return p, host, port, path, query


def split_url(url: str):
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    try:
        scheme, host, port, path, query, fragment = _parse(url.replace(" ", "%20"))
    except _Refused:
        return None
    if port == -1:
        port = 443 if scheme == "https" else 80
    # ConversionUtils.fixTabsNewlines: a tab is four spaces, control characters go, nothing left is null
    return (scheme, host, port, _fix(path), _fix(query), _fix(fragment))


def _fix(text: str | None) -> str | None:
    return text or None  # java.net.URI admits no tab or control character: nothing to replace
