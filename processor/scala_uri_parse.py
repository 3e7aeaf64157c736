"""Why scala-uri 1.5.1 refuses a URL: the message of ``Url.parseTry``'s failure, as Snowplow's enrich 3.9.0
writes it into an ``enrichment_failures`` row.

3.9.0's ``ConversionUtils.stringToUri`` hands a URL ``java.net.URI`` refuses to scala-uri (``Uri.parseTry``)
and, when that fails too, writes the failure's message after Java's. scala-uri parses with parboiled2, a
PEG parser: the URL grammar (``UrlParser``, facts from scala-uri 1.5.1's Apache-2.0 sources) is run here as
parboiled2 runs it, to the same result and the same message:

- The alternatives of a rule are tried in order and the first that matches is kept (``_abs_url`` then
  ``_url_without_authority``): a URL ``scheme://authority`` is read as an absolute URL, whose authority
  always matches (its host may be any text up to ``:/?#``), so it fails when what follows the host and
  port is not a path, query, fragment or the end: ``http://exa|mple.com:8a/``, ``http://[::1]x/``.
- The error is placed where parsing got furthest, and lists what each alternative expected there, named as
  parboiled2 names it: the rule that starts there (``_port``, ``_path_for_authority``), else the character
  or class it tried (``':'``, ``HexDigit``, ``[^@]``): ``Invalid URL could not be parsed. Invalid input
  'a', expected Digit, _path_for_authority, _maybe_query_string, _fragment or 'EOI' (line 1, column 14):``
  then the line and a caret under the column (``Unexpected end of input`` at the end).
- Values are made as rules match, and some refuse: a port of ten digits beyond an ``Int`` is Java's
  ``NumberFormatException`` (``For input string: "9999999999"``), an IPv6 address with ``::`` and more than
  six pieces scala-uri's own message. Such a failure ends the parse where it happens.

Only a URL java.net.URI refuses comes here (:mod:`ext.java_uri`); the message is all that is read. A text
scala-uri reads as a URN (which it tries first: :func:`processor.lenient_url.urn_parts`) is no failure.
"""
from __future__ import annotations

import re

from processor.lenient_url import urn_parts

__all__ = ["scala_uri_refusal"]

_DIGITS = frozenset("0123456789")
_HEX = _DIGITS | frozenset("abcdefABCDEF")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALPHANUM = _ALPHA | _DIGITS
_HOST_END = ":/?#"
_INT_MAX = 2**31 - 1
#: the pieces of ``zeroOrMore(_ip_v6_hex_piece).separatedBy(':')`` as the PEG takes them (each repetition greedy)
_PIECES = re.compile(r"(?:[0-9A-Fa-f]{1,4}+(?::[0-9A-Fa-f]{1,4}+)*+)?")
_STOPS: dict[str, re.Pattern] = {}  # the characters a run stops at -> a pattern finding the first
_IPV6_TOO_MANY = ("IPv6 has too many pieces. Must be either exactly eight hex pieces or fewer than six hex "
                  "pieces with a '::'")


class _Refused(Exception):
    """A value scala-uri's actions refuse: the parse ends with this message."""


class _Run:
    """One run of the grammar over ``text``: the furthest place reached, and (when ``error_index`` is set)
    what each rule expected there, in the order they were tried."""

    def __init__(self, text: str, error_index: int | None = None):
        self.s, self.n = text, len(text)
        self.at = 0
        self.furthest = 0
        self.error_index = error_index
        self.expected: list[str] = []
        self.frames: list[tuple[str | None, int]] = []  # (rule name or None, where it started)
        self.quiet = 0  # inside a negative look-ahead: nothing reached or expected there counts

    # -- what parboiled2 records

    def _advance(self) -> None:
        self.at += 1
        if not self.quiet and self.at > self.furthest:
            self.furthest = self.at

    def _expect(self, terminal: str) -> None:
        if self.quiet or self.error_index is None or self.at != self.error_index:
            return
        # the outermost named rule of the innermost run of frames that started here, else the terminal
        named = None
        for name, start in self.frames:
            if name is not None:
                if named is None:
                    named = name
            elif start >= self.error_index and named is not None:
                break
            else:
                named = None
        text = named if named is not None else terminal
        if text not in self.expected:
            self.expected.append(text)

    # -- terminals

    def char(self, c: str) -> bool:
        if self.at < self.n and self.s[self.at] == c:
            self._advance()
            return True
        self._expect(f"'{c}'")
        return False

    def klass(self, allowed: frozenset, name: str) -> bool:
        if self.at < self.n and self.s[self.at] in allowed:
            self._advance()
            return True
        self._expect(name)
        return False

    def none_of(self, chars: str) -> bool:
        if self.at < self.n and self.s[self.at] not in chars:
            self._advance()
            return True
        self._expect(f"[^{chars}]")
        return False

    def span_none_of(self, chars: str) -> bool:
        """``zeroOrMore(noneOf(chars))`` in one step: the run, then the mismatch where it stops."""
        def body():
            found = _STOPS.setdefault(chars, re.compile("[" + re.escape(chars) + "]")).search(self.s, self.at)
            end = found.start() if found is not None else self.n
            if end > self.at:
                self.at = end
                if not self.quiet and end > self.furthest:
                    self.furthest = end
            self.none_of(chars)  # fails here: records what it expected
            return True
        return self.frame(None, body)

    def any_char(self) -> bool:
        if self.at < self.n:
            self._advance()
            return True
        self._expect("ANY")
        return False

    def eoi(self) -> bool:
        if self.at == self.n:
            return True
        self._expect("'EOI'")
        return False

    # -- rules: each leaves the place after what it matched, or where it was when it fails

    def frame(self, name: str | None, body) -> bool:
        start = self.at
        self.frames.append((name, start))
        try:
            matched = body()
        finally:
            self.frames.pop()
        if not matched:
            self.at = start
        return matched

    def seq(self, *parts) -> bool:
        return self.frame(None, lambda: all(part() for part in parts))

    def first_of(self, *alternatives) -> bool:
        return self.frame(None, lambda: any(self.frame(None, alternative) for alternative in alternatives))

    def optional(self, body) -> bool:
        self.frame(None, body)
        return True

    def times(self, low: int, high: int | None, body, sep=None) -> bool:
        """``low`` to ``high`` (None: any number of) repetitions of ``body``, ``sep`` between them."""
        def loop():
            count = 0
            while high is None or count < high:
                mark = self.at
                if not (self.frame(None, lambda: (sep is None or sep()) and body()) if count else body()):
                    self.at = mark
                    break
                count += 1
                if self.at == mark and sep is None:  # an empty match repeats for ever: stop
                    break
            return count >= low
        return self.frame(None, loop)

    def zero_or_more(self, body, sep=None) -> bool:
        return self.times(0, None, body, sep)

    def followed_by(self, body) -> bool:
        mark = self.at
        matched = self.frame(None, body)
        self.at = mark
        return matched

    def not_followed_by(self, body) -> bool:
        mark = self.at
        self.quiet += 1
        try:
            matched = self.frame(None, body)
        finally:
            self.quiet -= 1
        self.at = mark
        return not matched

    # -- scala-uri 1.5.1's UrlParser

    def _int(self, max_length: int) -> bool:
        def body():
            start = self.at
            if not self.frame(None, lambda: self.times(1, max_length, lambda: self.klass(_DIGITS, "Digit"))):
                return False  # (the frame is capture()'s)
            digits = self.s[start:self.at]
            if int(digits) > _INT_MAX:  # String.toInt in the rule's action
                raise _Refused(f'For input string: "{digits}"')
            return True
        return self.frame("_int", body)

    def _octet(self) -> bool:
        def body():
            start = self.at
            if not self._int(3):
                return False
            if int(self.s[start:self.at]) > 255:
                self._expect("test")
                return False
            return True
        return self.frame("_octet", body)

    def _scheme(self) -> bool:
        return self.frame("_scheme", lambda: self.seq(
            lambda: self.klass(_ALPHA, "Alpha"),
            lambda: self.zero_or_more(lambda: self.first_of(lambda: self.klass(_ALPHANUM, "AlphaNum"),
                                                            lambda: self.klass(frozenset("+-."), "[+-.]")))))

    def _ip_v4(self) -> bool:
        return self.frame("_ip_v4", lambda: self.seq(
            self._octet, lambda: self.char("."), self._octet, lambda: self.char("."), self._octet,
            lambda: self.char("."), self._octet))

    def _hex_piece(self) -> bool:
        return self.frame("_ip_v6_hex_piece", lambda: self.frame(  # (the inner frame is capture()'s)
            None, lambda: self.times(1, 4, lambda: self.klass(_HEX, "HexDigit"))))

    def _full_ip_v6(self) -> bool:
        return self.frame("_full_ip_v6", lambda: self.seq(
            lambda: self.char("["), lambda: self.times(8, 8, self._hex_piece, lambda: self.char(":")),
            lambda: self.char("]")))

    def _hex_pieces(self, counts: list) -> bool:
        """``zeroOrMore(_ip_v6_hex_piece).separatedBy(':')``, stepping over every piece but the last at once:
        what was reached and expected before the last piece is behind the run's end, so it cannot be the
        furthest place."""
        def loop():
            found = _PIECES.match(self.s, self.at)
            count = 0
            if found.end() > self.at:
                last = self.s.rfind(":", self.at, found.end()) + 1 or self.at
                count = self.s.count(":", self.at, last)
                if last > self.at:
                    self.at = last
                    if not self.quiet and last > self.furthest:
                        self.furthest = last
                self._hex_piece()
                count += 1
            while True:
                mark = self.at
                if not (self.frame(None, lambda: self.char(":") and self._hex_piece()) if count
                        else self._hex_piece()):
                    self.at = mark
                    counts.append(count)
                    return True
                count += 1
        return self.frame("_ip_v6_hex_pieces", lambda: self.frame(None, loop))

    def _ip_v6_with_eluded(self) -> bool:
        def body():
            counts: list[int] = []
            matched = self.seq(lambda: self.char("["), lambda: self._hex_pieces(counts),
                               lambda: self.char(":") and self.char(":"), lambda: self._hex_pieces(counts),
                               lambda: self.char("]"))
            if matched and 8 - sum(counts) < 2:  # the rule's action
                raise _Refused(_IPV6_TOO_MANY)
            return matched
        return self.frame("_ip_v6_with_eluded", body)

    def _ip_v6(self) -> bool:
        return self.frame("_ip_v6", lambda: self.first_of(self._full_ip_v6, self._ip_v6_with_eluded))

    def _domain_name(self) -> bool:
        return self.frame("_domain_name", lambda: self.span_none_of(_HOST_END))

    def _ip_in_url_end(self) -> bool:
        return self.frame("_ip_in_url_end", lambda: self.followed_by(
            lambda: self.first_of(lambda: self.klass(frozenset(_HOST_END), f"[{_HOST_END}]"), self.eoi)))

    def _host_in_authority(self) -> bool:
        return self.frame("_host_in_authority", lambda: self.first_of(
            lambda: self.seq(self._ip_v4, self._ip_in_url_end), self._ip_v6, self._domain_name))

    def _user_info(self) -> bool:
        return self.frame("_user_info", lambda: self.seq(
            lambda: self.span_none_of(":/?[]@"),
            lambda: self.optional(lambda: self.seq(lambda: self.char(":"), lambda: self.span_none_of("@"))),
            lambda: self.char("@")))

    def _port(self) -> bool:
        return self.frame("_port", lambda: self.seq(lambda: self.char(":"), lambda: self._int(10)))

    def _authority(self) -> bool:
        return self.frame("_authority", lambda: self.seq(
            lambda: self.char("/") and self.char("/"), lambda: self.optional(self._user_info),
            self._host_in_authority, lambda: self.optional(self._port)))

    def _path_segment(self) -> bool:
        return self.frame("_path_segment", lambda: self.zero_or_more(lambda: self.seq(
            lambda: self.not_followed_by(lambda: self.klass(frozenset("/?#"), "[/?#]")), self.any_char)))

    def _path_for_authority(self) -> bool:
        return self.frame("_path_for_authority", lambda: self.zero_or_more(
            lambda: self.seq(lambda: self.char("/"), self._path_segment)))

    def _path(self) -> bool:
        return self.frame("_path", lambda: self.seq(
            lambda: self.optional(lambda: self.char("/")),
            lambda: self.zero_or_more(self._path_segment, lambda: self.char("/"))))

    def _query_part(self, stop: str) -> bool:
        return self.zero_or_more(lambda: self.seq(
            lambda: self.not_followed_by(lambda: self.klass(frozenset(stop), f"[{stop}]")), self.any_char))

    def _query_param_or_tok(self) -> bool:
        return self.frame("_query_param_or_tok", lambda: self.first_of(
            lambda: self.frame("_query_param", lambda: self.seq(
                lambda: self._query_part("=&#"), lambda: self.char("="), lambda: self._query_part("&#"))),
            lambda: self.frame("_query_tok", lambda: self._query_part("=&#"))))

    def _maybe_query_string(self) -> bool:
        return self.frame("_maybe_query_string", lambda: self.optional(
            lambda: self.frame("_query_string", lambda: self.seq(
                lambda: self.char("?"),
                lambda: self.zero_or_more(self._query_param_or_tok, lambda: self.char("&"))))))

    def _fragment(self) -> bool:
        return self.frame("_fragment", lambda: self.seq(
            lambda: self.char("#"), lambda: self.zero_or_more(self.any_char)))

    def _rest(self) -> bool:
        return (self._maybe_query_string() and self.optional(self._fragment))

    def _url(self) -> bool:
        return self.frame("_url", lambda: self.first_of(
            lambda: self.frame("_abs_url", lambda: self.seq(
                self._scheme, lambda: self.char(":"), self._authority, self._path_for_authority, self._rest)),
            lambda: self.frame("_protocol_rel_url", lambda: self.seq(
                self._authority, self._path_for_authority, self._rest)),
            lambda: self.frame("_url_without_authority", lambda: self.seq(
                self._scheme, lambda: self.char(":"), self._path, self._rest)),
            lambda: self.frame("_rel_url", lambda: self.seq(self._path, self._rest))))

    def run(self) -> bool:
        return self.seq(self._url, self.eoi)


def _position(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    column = index - start + 1
    shown = text[start:end if end >= 0 else len(text)]
    shown = shown.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")  # halves joined again
    return f"(line {line}, column {column}):\n{shown}\n{' ' * (column - 1)}^"


def _shown(c: str) -> str:
    """A character as parboiled2's ``CharUtils.escape`` shows it."""
    if c in "\t\r\n":
        return {"\t": "\\t", "\r": "\\r", "\n": "\\n"}[c]
    if c < " " or "\x7f" <= c <= "\x9f":  # Character.isISOControl
        return f"\\u{ord(c):04x}"
    return c


def scala_uri_refusal(url: str) -> str | None:
    """The message of scala-uri 1.5.1's failure to parse ``url`` as a URL (``Uri.parseTry``); ``None`` when it
    parses. The text is taken as the JVM holds it: a character beyond U+FFFF is two UTF-16 halves."""
    if urn_parts(url) is not None:
        return None
    if url and max(url) > "\uffff":
        url = "".join(c if c <= "\uffff" else chr(0xD7C0 + (ord(c) >> 10)) + chr(0xDC00 + (ord(c) & 0x3FF))
                      for c in url)
    first = _Run(url)
    try:
        if first.run():
            return None
    except _Refused as exc:
        return str(exc)
    index = first.furthest
    traced = _Run(url, index)
    try:
        traced.run()
    except _Refused as exc:  # (it ended the first run already, before any failure)
        return str(exc)
    found = (f"Invalid input '{_shown(url[index])}'" if index < len(url) else "Unexpected end of input")
    expected = traced.expected
    listed = expected[0] if len(expected) == 1 else ", ".join(expected[:-1]) + " or " + expected[-1]
    return f"Invalid URL could not be parsed. {found}, expected {listed} {_position(url, index)}"
