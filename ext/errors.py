"""Errors raised by the tracker-protocol codecs of ``ext`` (query strings, base64url).

Both implementations of each codec (the compiled ``ext._querystring`` /
``ext._base64url`` and their pure-Python twins) import these classes from here,
so ``except ext.QueryStringError`` catches either, and they build their messages
with the helpers below, so the two implementations cannot drift apart in wording
(the tests still check that they agree, and on the exact text).  The helpers only
run on the error path.

Both classes are :class:`ValueError` subclasses: callers that turn bad input into
a bad row can catch ``ValueError``.
"""

from __future__ import annotations

import codecs

__all__ = ["Base64Error", "QueryStringError"]

# How much of a parameter name goes into a message (the full name is on .parameter).
_MAX_NAME_IN_MESSAGE = 50


class QueryStringError(ValueError):
    """A query string or percent-encoded text that cannot be decoded.

    ``position`` is the index (in characters) in the string given to
    ``parse_query_string`` / ``percent_decode`` where the problem starts;
    ``parameter`` is the raw (still percent-encoded) name of the parameter it is
    in, or ``None`` when it comes from ``percent_decode``.
    """

    def __init__(self, message: str, position: int | None = None, parameter: str | None = None):
        super().__init__(message)
        self.position = position
        self.parameter = parameter


class Base64Error(ValueError):
    """Text that is not base64 (URL-safe or standard alphabet)."""


def _where(position: int, parameter: str | None) -> str:
    if parameter is None:
        return f"at position {position}"
    name = parameter
    if len(name) > _MAX_NAME_IN_MESSAGE:
        name = name[:_MAX_NAME_IN_MESSAGE] + "..."
    return f"at position {position} in parameter {name!r}"


def truncated_escape(text: str, position: int, parameter: str | None) -> QueryStringError:
    """A '%' with fewer than two characters after it (before the end or the next '&')."""
    return QueryStringError(
        f"truncated percent escape {text!r} {_where(position, parameter)}", position, parameter
    )


def malformed_escape(text: str, position: int, parameter: str | None) -> QueryStringError:
    """A '%' not followed by two hexadecimal digits."""
    return QueryStringError(
        f"malformed percent escape {text!r} {_where(position, parameter)}", position, parameter
    )


def invalid_utf8(escape: str, position: int, parameter: str | None) -> QueryStringError:
    """Percent-escaped bytes that are not UTF-8; ``escape`` is the escape of the
    first byte of the invalid sequence (``position`` is where it is)."""
    return QueryStringError(
        f"percent-escaped bytes are not valid UTF-8 (invalid sequence starting with "
        f"{escape!r}) {_where(position, parameter)}",
        position,
        parameter,
    )


def lone_surrogate(code_point: int, position: int, parameter: str | None) -> QueryStringError:
    """A surrogate code point in the input text itself (it cannot be UTF-8)."""
    return QueryStringError(
        f"lone surrogate U+{code_point:04X} {_where(position, parameter)}", position, parameter
    )


def not_str(function: str, value: object) -> TypeError:
    return TypeError(f"{function}() argument must be str, not {type(value).__name__}")


def base64_bad_character(char: str, position: int) -> Base64Error:
    return Base64Error(f"invalid base64 character {char!r} at position {position}")


def base64_misplaced_padding(position: int) -> Base64Error:
    return Base64Error(f"misplaced base64 padding '=' at position {position} (padding must come last)")


def base64_bad_length(length: int) -> Base64Error:
    return Base64Error(
        f"invalid base64 length: {length} characters without padding "
        f"(a length of 4n+1 cannot encode whole bytes)"
    )


def base64_bad_padding(padding: int, length: int) -> Base64Error:
    expected = (-length) % 4
    allowed = "none" if expected == 0 else f"{expected} or none"
    return Base64Error(
        f"incorrect base64 padding: {padding} '=' after {length} characters (expected {allowed})"
    )


# -- Java's reading of a query (``parse_uri_query``) -------------------------------------------------------

#: what ``java.net.URI`` puts before the query in the text it is given (``Loader.parseQuerystring``)
URI_PREFIX = "http://localhost/?"


def uri_syntax(reason: str, position: int, query: str) -> QueryStringError:
    """``java.net.URI``'s message for ``URI_PREFIX + query``: ``reason at index N: <the whole text>``;
    ``position`` is the index in ``query`` (in characters), ``N`` counts UTF-16 code units of the whole text."""
    index = len(URI_PREFIX) + position + sum(1 for ch in query[:position] if ord(ch) > 0xFFFF)
    return QueryStringError(f"{reason} at index {index}: {URI_PREFIX}{query}", position, None)


def _java_utf8_replace(exc: UnicodeDecodeError):
    """Decoding error handler ``snowmelt-java-utf8``: U+FFFD where Java's UTF-8 decoder puts it.

    Python's ``replace`` and Java's decoder agree (both replace each maximal ill-formed subpart) but for
    an encoded surrogate: ``ED A0..BF`` reads to Java as the start of a three-byte sequence, so ``ED A0 80``
    (or ``ED A0`` cut by a byte that does not continue it, or by the end) is one U+FFFD, where Python
    writes one per byte.
    """
    data, start = exc.object, exc.start
    if data[start] == 0xED and start + 1 < len(data) and 0xA0 <= data[start + 1] <= 0xBF:
        end = start + 3 if start + 2 < len(data) and 0x80 <= data[start + 2] <= 0xBF else start + 2
        return "\ufffd", end
    return "\ufffd", exc.end


codecs.register_error("snowmelt-java-utf8", _java_utf8_replace)
