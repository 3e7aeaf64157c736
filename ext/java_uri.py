"""``java.net.URI``'s parse of a text, as JDK 17 parses it: its raw parts, or why it refuses the text.

Snowplow's enrich 3.9.0 reads page URLs and referrers with ``java.net.URI`` (``ConversionUtils.stringToUri``
and ``explodeUri``). :func:`parse_uri` gives the parts it reads (scheme, host, port, raw path, query and
fragment), and ``ext.split_url`` (``ext/url_py.py`` and its compiled twin) gives them as 3.9.0 writes them.
When it refuses a text, 3.9.0 writes its ``URISyntaxException``'s message into the event's
``enrichment_failures`` row (``Illegal character in authority at index 7: http://exa|mple.com/``):
:func:`uri_syntax_error` gives it (``"<reason> at index <i>: <text>"``, or ``"<reason>: <text>"`` when the
parser names no place), ``None`` for a text it takes.

The parse follows ``java.net.URI``'s RFC 2396 grammar with Java's deviations (an empty authority before a
path, IPv6 references with a scope id, a registry-based authority, with no host or port, when a server-based
one does not parse), and fails where and as Java's parser fails: the first check that does not hold, in the
order Java makes its checks. Places are counted in UTF-16 code units, as Java's ``String`` counts (a
character beyond U+FFFF is two).
"""
from __future__ import annotations

import re

__all__ = ["parse_uri", "uri_syntax_error", "URISyntaxError"]

_DIGIT = frozenset("0123456789")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALPHANUM = _ALPHA | _DIGIT
_HEX = _DIGIT | frozenset("abcdefABCDEF")
_UNRESERVED = _ALPHANUM | frozenset("-_.!~*'()")
_RESERVED = frozenset(";/?:@&=+$,[]")
# sets with escapes (and visible characters beyond ASCII) allowed, as Java's masks with L_ESCAPED
_URIC = _RESERVED | _UNRESERVED
_PCHAR = _UNRESERVED | frozenset(":@&=+$,")
_PATH = _PCHAR | frozenset(";/")
_USERINFO = _UNRESERVED | frozenset(";:&=+$,")
_REG_NAME = _UNRESERVED | frozenset("$,;:@&=+")
_SERVER = _USERINFO | _ALPHANUM | frozenset("-.:@[]")
_SERVER_PERCENT = _SERVER | frozenset("%")
# sets without escapes
_SCHEME = _ALPHANUM | frozenset("+-.")
_SCOPE_ID = _ALPHANUM | frozenset("_.")
_ALPHANUM_DASH = _ALPHANUM | frozenset("-")
_DIGIT_DOT = _DIGIT | frozenset(".")
_INT_MAX = 2**31 - 1


class URISyntaxError(Exception):
    """``java.net.URISyntaxException``: a reason and the place (-1: none named)."""

    def __init__(self, reason: str, index: int = -1):
        super().__init__(reason, index)
        self.reason, self.index = reason, index


#: Java's ``Character.isSpaceChar`` (Zs, Zl, Zp) above U+009F: what ``scanEscape`` does not take unescaped
_SPACES_BEYOND_ASCII = "\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_PATTERNS: dict = {}


def _first_of(chars: str) -> re.Pattern:
    """A pattern finding the first of ``chars``."""
    pattern = _PATTERNS.get(chars)
    if pattern is None:
        pattern = _PATTERNS[chars] = re.compile("[" + re.escape(chars) + "]")
    return pattern


def _run_of(allowed: frozenset, escapes: bool) -> re.Pattern:
    """A pattern matching a run of ``allowed`` characters (and with ``escapes``, of ``%`` and two hex digits and
    of characters above U+009F that are no space), as Java's ``scan`` with a mask takes them."""
    key = (allowed, escapes)
    pattern = _PATTERNS.get(key)
    if pattern is None:
        run = "[" + "".join(re.escape(c) for c in sorted(allowed)) + "]"
        if escapes:
            run = f"(?:{run}|%[0-9A-Fa-f]{{2}}|[^\\x00-\\x9f{_SPACES_BEYOND_ASCII}])"
        pattern = _PATTERNS[key] = re.compile(run + "*+")
    return pattern


def _utf16_units(text: str) -> str:
    """``text`` with each character beyond U+FFFF as its two UTF-16 halves, so that places count as Java's."""
    if not text or max(text) <= "\uffff":
        return text
    return "".join(c if c <= "\uffff" else chr(0xD7C0 + (ord(c) >> 10)) + chr(0xDC00 + (ord(c) & 0x3FF))
                   for c in text)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.s = _utf16_units(text)
        self.ipv6_bytes = 0
        # the parts read, as java.net.URI keeps them (raw, None when absent)
        self.scheme = self.host = self.path = self.query = self.fragment = None
        self.port = -1

    def part(self, p: int, q: int) -> str:
        """The text of the UTF-16 units [p, q) (pairs of halves joined again)."""
        part = self.s[p:q]
        if self.s is not self.text:
            part = part.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        return part

    # -- scanning: each returns the place after what it took

    def at(self, p: int, n: int, c: str) -> bool:
        return p < n and self.s[p] == c

    def find(self, p: int, n: int, err: str, stop: str) -> int:
        """The first ``stop`` character from ``p`` (else ``n``); -1 when an ``err`` character comes first."""
        found = _first_of(err + stop).search(self.s, p, n)
        if found is None:
            return n
        return -1 if found.group() in err else found.start()

    def until(self, p: int, n: int, stop: str) -> int:
        found = _first_of(stop).search(self.s, p, n)
        return n if found is None else found.start()

    def scan(self, p: int, n: int, allowed: frozenset, escapes: bool) -> int:
        """The end of the run from ``p`` of ``allowed`` characters, and (with ``escapes``) of escapes and visible
        characters beyond ASCII; a '%' there that starts no escape fails, as Java's ``scanEscape`` does."""
        if p >= n:
            return p
        q = _run_of(allowed, escapes).match(self.s, p, n).end()
        if escapes and q < n and self.s[q] == "%" and "%" not in allowed:
            raise URISyntaxError("Malformed escape pair", q)
        return q

    def check(self, p: int, n: int, allowed: frozenset, escapes: bool, what: str) -> None:
        q = self.scan(p, n, allowed, escapes)
        if q < n:
            raise URISyntaxError("Illegal character in " + what, q)

    # -- the grammar

    def parse(self) -> None:
        n = len(self.s)
        p = self.find(0, n, "/?#", ":")
        if p >= 0 and self.at(p, n, ":"):
            if p == 0:
                raise URISyntaxError("Expected scheme name", 0)
            self.check(0, 1, _ALPHA, False, "scheme name")
            self.check(1, p, _SCHEME, False, "scheme name")
            self.scheme = self.part(0, p)
            p += 1
            if self.at(p, n, "/"):
                p = self.hierarchical(p, n)
            else:
                q = self.until(p, n, "#")
                if q <= p:
                    raise URISyntaxError("Expected scheme-specific part", p)
                self.check(p, q, _URIC, True, "opaque part")
                p = q
        else:
            p = self.hierarchical(0, n)
        if self.at(p, n, "#"):
            self.check(p + 1, n, _URIC, True, "fragment")
            self.fragment = self.part(p + 1, n)
            p = n
        if p < n:
            raise URISyntaxError("end of URI", p)

    def hierarchical(self, p: int, n: int) -> int:
        if self.at(p, n, "/") and self.at(p + 1, n, "/"):
            p += 2
            q = self.until(p, n, "/?#")
            if q > p:
                p = self.authority(p, q)
            elif q >= n:
                raise URISyntaxError("Expected authority", p)
        q = self.until(p, n, "?#")
        self.check(p, q, _PATH, True, "path")
        self.path = self.part(p, q)
        p = q
        if self.at(p, n, "?"):
            p += 1
            q = self.until(p, n, "#")
            self.check(p, q, _URIC, True, "query")
            self.query = self.part(p, q)
            p = q
        return p

    def authority(self, p: int, n: int) -> int:
        # an IPv6 literal may hold a scope id after '%', so '%' is a server character unless ']' comes first
        server_set = _SERVER_PERCENT if self.until(p, n, "]") > p else _SERVER
        server_chars = self.scan(p, n, server_set, True) == n
        reg_chars = self.scan(p, n, _REG_NAME, True) == n
        if reg_chars and not server_chars:
            return n  # registry-based
        q, failure = p, None
        if server_chars:
            try:
                q = self.server(p, n)
                if q < n:
                    raise URISyntaxError("Expected end of authority", q)
            except URISyntaxError as exc:  # kept in case the authority is no registry name either
                failure, q = exc, p
                self.host, self.port = None, -1
        if q < n:
            if reg_chars:
                return n
            if failure is not None:
                raise failure
            raise URISyntaxError("Illegal character in authority", q)  # JDK 17 names the authority's start
        return n

    def server(self, p: int, n: int) -> int:
        q = self.find(p, n, "/?#", "@")
        if q >= p and self.at(q, n, "@"):
            self.check(p, q, _USERINFO, True, "user info")
            p = q + 1
        if self.at(p, n, "["):
            p += 1
            q = self.find(p, n, "/?#", "]")
            if not (q > p and self.at(q, n, "]")):
                raise URISyntaxError("Expected closing bracket for IPv6 address", q)
            start = p - 1
            r = self.until(p, q, "%")
            if r > p:
                self.ipv6_reference(p, r)
                if r + 1 == q:
                    raise URISyntaxError("scope id expected")
                self.check(r + 1, q, _SCOPE_ID, False, "scope id")
            else:
                self.ipv6_reference(p, q)
            self.host = self.part(start, q + 1)
            p = q + 1
        else:
            q = self.ipv4_address(p, n)
            if q <= p:
                q = self.hostname(p, n)
            self.host = self.part(p, q)
            p = q
        if self.at(p, n, ":"):
            p += 1
            q = self.until(p, n, "/")
            if q > p:
                self.check(p, q, _DIGIT, False, "port number")
                self.port = int(self.s[p:q])
                if self.port > _INT_MAX:  # Integer.parseInt
                    raise URISyntaxError("Malformed port number", p)
                p = q
        if p < n:
            raise URISyntaxError("Expected port number", p)
        return p

    def byte(self, p: int, n: int) -> int:
        """Digits of a value up to 255 from ``p``, at most three of them after any leading zeros: the place after
        them, else ``p``."""
        q = self.scan(p, n, _DIGIT, False)
        if q <= p:
            return q
        significant = self.s[p:q].lstrip("0")
        if len(significant) > 3 or (len(significant) == 3 and int(significant) > 255):
            return p
        return q

    def ipv4(self, start: int, n: int, strict: bool) -> int:
        """The end of the IPv4 address at ``start`` (all of ``[start, n)`` when ``strict``), else -1; a strict
        run of digits and dots that is no address fails."""
        p = start
        m = self.scan(p, n, _DIGIT_DOT, False)
        if m <= p or (strict and m != n):
            return -1
        q = p
        for step in range(7):  # byte . byte . byte . byte
            q = self.byte(p, m) if step % 2 == 0 else (p + 1 if self.at(p, m, ".") else p)
            if q <= p:
                break
            p = q
        else:
            if q >= m:
                return q
        if strict:
            raise URISyntaxError("Malformed IPv4 address", q)
        return -1

    def take_ipv4(self, start: int, n: int, expected: str) -> int:
        p = self.ipv4(start, n, True)
        if p <= start:
            raise URISyntaxError("Expected " + expected, start)
        return p

    def ipv4_address(self, start: int, n: int) -> int:
        try:
            p = self.ipv4(start, n, False)
        except URISyntaxError:
            return -1
        if p > start and p < n and self.s[p] != ":":
            return -1
        return p

    def hostname(self, start: int, n: int) -> int:
        s, p, last = self.s, start, -1
        while True:
            q = self.scan(p, n, _ALPHANUM, False)
            if q <= p:
                break
            last, p = p, q
            q = self.scan(p, n, _ALPHANUM_DASH, False)
            if q > p:
                if s[q - 1] == "-":
                    raise URISyntaxError("Illegal character in hostname", q - 1)
                p = q
            if not self.at(p, n, "."):
                break
            p += 1
            if p >= n:
                break
        if p < n and not self.at(p, n, ":"):
            raise URISyntaxError("Illegal character in hostname", p)
        if last < 0:
            raise URISyntaxError("Expected hostname", start)
        if last > start and s[last] not in _ALPHA:
            raise URISyntaxError("Illegal character in hostname", last)
        return p

    def ipv6_reference(self, start: int, n: int) -> None:
        p, compressed = start, False
        q = self.hex_seq(p, n)
        if q > p:
            p = q
            if self.at(p, n, ":") and self.at(p + 1, n, ":"):
                compressed = True
                p = self.hex_post(p + 2, n)
            elif self.at(p, n, ":"):
                p = self.take_ipv4(p + 1, n, "IPv4 address")
                self.ipv6_bytes += 4
        elif self.at(p, n, ":") and self.at(p + 1, n, ":"):
            compressed = True
            p = self.hex_post(p + 2, n)
        if p < n:
            raise URISyntaxError("Malformed IPv6 address", start)
        if self.ipv6_bytes > 16:
            raise URISyntaxError("IPv6 address too long", start)
        if not compressed and self.ipv6_bytes < 16:
            raise URISyntaxError("IPv6 address too short", start)
        if compressed and self.ipv6_bytes == 16:
            raise URISyntaxError("Malformed IPv6 address", start)

    def hex_post(self, p: int, n: int) -> int:
        if p == n:
            return p
        q = self.hex_seq(p, n)
        if q > p:
            p = q
            if self.at(p, n, ":"):
                p = self.take_ipv4(p + 1, n, "hex digits or IPv4 address")
                self.ipv6_bytes += 4
        else:
            p = self.take_ipv4(p, n, "hex digits or IPv4 address")
            self.ipv6_bytes += 4
        return p

    def hex_seq(self, p: int, n: int) -> int:
        """The end of ``hex4 *(":" hex4)`` at ``p`` (not into ``::`` or an IPv4 tail), else -1."""
        q = self.scan(p, n, _HEX, False)
        if q <= p or self.at(q, n, "."):
            return -1
        if q > p + 4:
            raise URISyntaxError("IPv6 hexadecimal digit sequence too long", p)
        self.ipv6_bytes += 2
        p = q
        while p < n:
            if not self.at(p, n, ":") or self.at(p + 1, n, ":"):
                break
            p += 1
            q = self.scan(p, n, _HEX, False)
            if q <= p:
                raise URISyntaxError("Expected digits for an IPv6 address", p)
            if self.at(q, n, "."):
                p -= 1
                break
            if q > p + 4:
                raise URISyntaxError("IPv6 hexadecimal digit sequence too long", p)
            self.ipv6_bytes += 2
            p = q
        return p


def parse_uri(text: str) -> tuple[str | None, str | None, int, str | None, str | None, str | None]:
    """``(scheme, host, port, raw path, raw query, raw fragment)`` of ``new java.net.URI(text)`` (``getScheme``,
    ``getHost``, ``getPort``, ``getRawPath`` ...: None, or -1 for the port, when absent; no host and no port for
    a registry-based authority, no path for an opaque URI); raises :class:`URISyntaxError` where Java throws."""
    parser = _Parser(text)
    parser.parse()
    return parser.scheme, parser.host, parser.port, parser.path, parser.query, parser.fragment


def uri_syntax_error(text: str) -> str | None:
    """The message of the ``URISyntaxException`` ``new java.net.URI(text)`` throws; ``None`` when it takes
    ``text``."""
    try:
        _Parser(text).parse()
    except URISyntaxError as exc:
        if exc.index > -1:
            return f"{exc.reason} at index {exc.index}: {text}"
        return f"{exc.reason}: {text}"
    return None
