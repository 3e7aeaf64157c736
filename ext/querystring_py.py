"""Query strings and percent-decoding (tracker protocol, GET ``/i`` and ``/tp1``), pure Python.

The twin of ``ext/_querystring.pyx``: same functions, results, exceptions and
messages.

Rules (those of Java's ``URLDecoder.decode(s, "UTF-8")`` as Snowplow uses it,
except that bad input is an error instead of U+FFFD or an exception escaping):

- ``parse_query_string(qs)`` splits ``qs`` on ``&`` and skips empty pieces
  (``a=1&&b=2``, a leading or trailing ``&``); each piece is split on its first
  ``=`` into name and value (no ``=``: the value is ``""``), and both are
  percent-decoded.  The result keeps the order and the duplicates of ``qs``:
  ``[(name, value), ...]``; choosing among duplicates is the caller's business.
- percent-decoding (also ``percent_decode(s)``): ``+`` becomes a space; ``%XX``
  (two hexadecimal digits, either case) becomes the byte 0xXX, and each run of
  consecutive escapes is decoded as UTF-8; every other character stands for
  itself (non-ASCII text is accepted as is).

- ``find_parameters(qs, names, last=True)`` finds, without decoding anything,
  the last (``last=False``: the first) piece of ``qs`` whose raw name (the
  text before its first ``=``) is each of ``names``: ``{name: piece}`` for the
  names present, in the order of those pieces in ``qs``.  It bounds what a query of tens of thousands of parameters costs a
  caller that wants only a few of them (one pass, no string made per piece).

- ``parse_uri_query(qs)`` reads a collector payload's query string as Snowplow's
  enrich 3.9.0 does (``java.net.URI``'s checks and messages, ``&`` and ``;``,
  None for a piece without ``=``, Java's decoding): see its docstring; it is
  not strict and has its own errors (``URI``'s messages).

Errors (of the functions above), all :class:`ext.QueryStringError` (a ``ValueError``) with the position
(index in the string given) and, from ``parse_query_string``, the raw name of
the parameter; the first problem in the string is the one reported:

- a ``%`` with fewer than two characters left (in the string, or before the
  ``&`` that ends the parameter): "truncated percent escape";
- a ``%`` not followed by two hexadecimal digits: "malformed percent escape";
- escaped bytes that are not UTF-8 (including encoded surrogates, overlong
  forms, code points above U+10FFFF, a sequence cut by a non-escape): "not
  valid UTF-8", positioned at the escape of the first byte of the bad sequence;
- a lone surrogate in the text itself: "lone surrogate".

So the result never holds a surrogate.  A non-``str`` argument is a
:class:`TypeError`.
"""

from __future__ import annotations

import re

from . import errors

__all__ = ["parse_query_string", "percent_decode", "find_parameters", "parse_uri_query"]

# A maximal run of well-formed escapes; re.split with the group keeps the runs
# at the odd indexes and the literal text between them at the even ones.
_RUNS = re.compile(r"((?:%[0-9A-Fa-f]{2})+)")


def _raise_for_literal(s: str, lo: int, hi: int, base: int, parameter):
    """Raise for the first bad '%' or surrogate in the literal text ``s[lo:hi]``.

    ``s`` starts at index ``base`` of what the caller got.  A '%' in literal
    text is never a well-formed escape (those are all in runs); whether it is
    truncated or malformed depends on what follows it in ``s``, run or not.
    """
    text = s[lo:hi]
    percent = text.find("%")
    surrogate = -1
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            surrogate = exc.start
    if percent >= 0 and (surrogate < 0 or percent < surrogate):
        i = lo + percent
        if len(s) - i < 3:
            raise errors.truncated_escape(s[i:], base + i, parameter)
        raise errors.malformed_escape(s[i : i + 3], base + i, parameter)
    if surrogate >= 0:
        raise errors.lone_surrogate(ord(text[surrogate]), base + lo + surrogate, parameter)


def _decode(s: str, base: int, parameter):
    """Percent-decode ``s``, which starts at index ``base`` of what the caller got."""
    if "%" not in s:
        if not s.isascii():
            _raise_for_literal(s, 0, len(s), base, parameter)
        return s.replace("+", " ") if "+" in s else s
    out = []
    lo = 0
    for index, part in enumerate(_RUNS.split(s)):
        hi = lo + len(part)
        if index % 2 == 0:  # literal text
            if "%" in part or not part.isascii():
                _raise_for_literal(s, lo, hi, base, parameter)
            out.append(part.replace("+", " ") if "+" in part else part)
        else:  # a run of escapes
            try:
                out.append(bytes.fromhex(part.replace("%", "")).decode("utf-8"))
            except UnicodeDecodeError as exc:
                at = lo + 3 * exc.start
                raise errors.invalid_utf8(s[at : at + 3], base + at, parameter) from None
        lo = hi
    return "".join(out)


def percent_decode(s: str) -> str:
    """Decode ``+`` and ``%XX`` escapes (UTF-8) in ``s``; see the module docstring.

    Raises :class:`ext.QueryStringError` (``parameter`` None) for a malformed
    or truncated escape, escaped bytes that are not UTF-8 or a lone surrogate,
    and :class:`TypeError` if ``s`` is not a ``str``.
    """
    if not isinstance(s, str):
        raise errors.not_str("percent_decode", s)
    if type(s) is not str:
        s = str(s)
    return _decode(s, 0, None)


def parse_query_string(qs: str) -> list:
    """Split ``qs`` (without the leading ``?``) into decoded ``(name, value)`` pairs.

    Pieces between ``&`` that are empty are skipped; a piece without ``=`` has
    the value ``""``; order and duplicates are kept.  Raises
    :class:`ext.QueryStringError` naming the (raw) parameter and the position
    in ``qs`` of the first problem, and :class:`TypeError` if ``qs`` is not a
    ``str``.
    """
    if not isinstance(qs, str):
        raise errors.not_str("parse_query_string", qs)
    if type(qs) is not str:
        qs = str(qs)
    pairs = []
    start = 0
    for piece in qs.split("&"):
        if piece:
            eq = piece.find("=")
            if eq < 0:
                pairs.append((_decode(piece, start, piece), ""))
            else:
                name = piece[:eq]
                pairs.append((_decode(name, start, name), _decode(piece[eq + 1 :], start + eq + 1, name)))
        start += len(piece) + 1
    return pairs


def find_parameters(qs: str, names, last: bool = True) -> dict:
    """``{name: piece}``: the last (or first) raw piece (``name=value`` or ``name``) of each of ``names`` found
    in ``qs``, in the order of the pieces in ``qs``; nothing is decoded (see the module docstring)."""
    if not isinstance(qs, str):
        raise errors.not_str("find_parameters", qs)
    wanted = {str(name) for name in names}
    found = {}  # name -> (position, piece)
    for position, piece in enumerate(qs.split("&")):
        name = piece.partition("=")[0]
        if piece and name in wanted and (last or name not in found):
            found[name] = (position, piece)
    return {name: piece for name, (_position, piece) in sorted(found.items(), key=lambda item: item[1][0])}


# ---------------------------------------------------------------------------------------------------------------
# parse_uri_query: the query as Snowplow's enrich 3.9.0 reads a collector payload's (Loader.parseQuerystring:
# URLEncodedUtils.parse(URI.create("http://localhost/?" + qs), UTF-8), HttpClient 4.5.13 on JDK 17)

#: what java.net.URI takes as it is in a query or a fragment (besides '%' escapes and visible non-ASCII)
_URIC = "A-Za-z0-9\\-_.!~*'();/?:@&=+$,\\[\\]"
#: the characters above U+0080 URI refuses: ISO controls (U+0080..U+009F) and Unicode space separators
#: (Zs, Zl, Zp: Character.isSpaceChar on JDK 17, Unicode 13)
_NOT_OTHER = "\u0080-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: a character URI refuses, or a '%' that starts no escape
_PROBLEM = re.compile(f"%(?![0-9A-Fa-f]{{2}})|[^{_URIC}%\u0081-\U0010ffff]|[{_NOT_OTHER}]")
#: what trackers send: nothing to check further, nothing but '&' separating, nothing to decode byte by byte
_PLAIN = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()/?:@&=+$,\[\]]|%[0-9A-Fa-f]{2})*")


def uri_query_problem(qs: str):
    """The :class:`ext.QueryStringError` ``java.net.URI`` raises for ``"http://localhost/?" + qs``, or None.

    The query runs to the first ``#``; the fragment after it is checked with the same characters (a
    second ``#`` is refused)."""
    hash_at = qs.find("#")
    query = qs if hash_at < 0 else qs[:hash_at]
    found = _PROBLEM.search(query)
    if found is not None:
        reason = "Malformed escape pair" if query[found.start()] == "%" else "Illegal character in query"
        return errors.uri_syntax(reason, found.start(), qs)
    if hash_at >= 0:
        fragment = qs[hash_at + 1:]
        found = _PROBLEM.search(fragment) or (re.search("#", fragment))
        if found is not None:
            reason = "Malformed escape pair" if fragment[found.start()] == "%" else "Illegal character in fragment"
            return errors.uri_syntax(reason, hash_at + 1 + found.start(), qs)
    return None


def _java_decode(s: str) -> str:
    """HttpClient's ``urlDecode(s, UTF-8, plusAsBlank=true)`` of text URI accepted: '+' a space, ``%XY``
    the byte XY, any other character the low 8 bits of each of its UTF-16 code units; the bytes read as
    UTF-8, ill-formed ones replaced as Java replaces them."""
    if s.isascii():
        if "%" not in s:
            return s.replace("+", " ") if "+" in s else s
        data = bytearray()
        for index, part in enumerate(_RUNS.split(s)):
            data += bytes.fromhex(part.replace("%", "")) if index % 2 else part.replace("+", " ").encode("ascii")
    else:
        data = bytearray()
        for index, part in enumerate(_RUNS.split(s)):
            if index % 2:
                data += bytes.fromhex(part.replace("%", ""))
            else:  # every other byte of UTF-16-LE: the low 8 bits of each code unit
                data += part.replace("+", " ").encode("utf-16-le", "surrogatepass")[::2]
    return data.decode("utf-8", "snowmelt-java-utf8")


def parse_uri_query(qs: str) -> list:
    """``[(name, value), ...]`` as Snowplow's enrich 3.9.0 reads a collector payload's query string.

    ``URLEncodedUtils.parse(URI.create("http://localhost/?" + qs), UTF-8)``: the text must be what
    ``java.net.URI`` accepts (else :class:`ext.QueryStringError` with ``URI``'s own message, ``Illegal
    character in query at index 21: http://localhost/?a=b c``, and ``position`` the index in ``qs``);
    the query ends at the first ``#``; pieces are separated by ``&`` or ``;``; a piece's name runs to its
    first ``=`` (no ``=``: the value is None) and a piece with an empty name is left out; names and values
    are decoded by :func:`_java_decode`.  Order and duplicates are kept.
    """
    if not isinstance(qs, str):
        raise errors.not_str("parse_uri_query", qs)
    if type(qs) is not str:
        qs = str(qs)
    if _PLAIN.fullmatch(qs):  # the common case: no ';', '#', non-ASCII or character to refuse
        pieces = qs.split("&")
    else:
        problem = uri_query_problem(qs)
        if problem is not None:
            raise problem
        pieces = re.split("[&;]", qs.partition("#")[0])
    pairs = []
    for piece in pieces:
        name, eq, value = piece.partition("=")
        if name:
            pairs.append((_java_decode(name), _java_decode(value) if eq else None))
    return pairs
