"""Enriched-TSV row assembly and field-length checks, pure Python.

The twin of ``ext/_tsv.pyx``: same functions, results, exceptions and messages.

``join_tsv(values, kinds, fallback) -> str``
    One TSV row: ``values`` (a tuple) formatted column by column according to
    ``kinds`` (a tuple of the ``KIND_*`` codes below, one per value) and joined
    with tabs.  What the codec formats itself:

    - ``None`` (any kind): an empty field;
    - a ``str`` (exactly ``str``, any kind): the text with tab, newline and
      carriage return each replaced by a space;
    - an ``int`` (exactly ``int``) in a ``KIND_STRING``, ``KIND_INT`` or
      ``KIND_DECIMAL`` column: its decimal digits (``str(value)``);
    - ``True``/``False`` in a ``KIND_INT`` or ``KIND_BOOL`` column, and the
      ints ``1``/``0`` in a ``KIND_BOOL`` column: ``1``/``0``;
    - a ``float`` (exactly ``float``) in a ``KIND_FLOAT`` or ``KIND_DECIMAL``
      column: ``repr(value)``;
    - an ``int`` in a ``KIND_TIMESTAMP`` column, taken as epoch milliseconds,
      when the instant is within ``datetime``'s range (years 1 to 9999):
      ``yyyy-MM-dd HH:mm:ss.SSS`` in UTC.

    Every other value (a ``Decimal``, a ``datetime``, JSON contexts, a bool in
    a string column, a ``str`` subclass, an out-of-range timestamp, an int in
    a bool column other than 0/1, ...) is passed to ``fallback(index, value)``,
    whose result (a ``str``) is written as is, and whose exceptions propagate:
    so the caller keeps its own formatting and errors for those.

    ``values`` and ``kinds`` must be tuples of the same length (``TypeError``,
    ``ValueError`` otherwise); a kind that is not one of the codes is a
    ``ValueError`` naming its index, raised before anything is formatted.

``oversized(values, limits) -> list[int]``
    The indices ``i`` where ``values[i]`` is exactly a ``str`` longer than
    ``limits[i]`` code points (``len``); a limit of ``-1`` means no limit.
    Same argument checks as ``join_tsv``.

``join_lines(values) -> bytes``
    ``values`` (an iterable of ``bytes``) as lines: each value followed by
    ``"\\n"``, with every ``"\\n"`` and ``"\\r"`` inside a value replaced by a
    space, so one value is always one line; ``b""`` for no values.  A value
    that is not ``bytes`` is a ``TypeError`` naming its index.  The compiled
    twin copies and scans without holding the interpreter's lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = [
    "KIND_BOOL",
    "KIND_DECIMAL",
    "KIND_FLOAT",
    "KIND_INT",
    "KIND_JSON",
    "KIND_STRING",
    "KIND_TIMESTAMP",
    "join_lines",
    "join_tsv",
    "oversized",
]

KIND_STRING = 0
KIND_INT = 1
KIND_BOOL = 2
KIND_FLOAT = 3
KIND_DECIMAL = 4
KIND_TIMESTAMP = 5
KIND_JSON = 6
_KIND_COUNT = 7

# epoch milliseconds of 0001-01-01 00:00:00.000 and 9999-12-31 23:59:59.999
_MIN_MS = -62135596800000
_MAX_MS = 253402300799999
_EPOCH = datetime(1970, 1, 1)


def _check_args(values, other, other_name: str) -> None:
    if not isinstance(values, tuple):
        raise TypeError(f"values must be a tuple, not {type(values).__name__}")
    if not isinstance(other, tuple):
        raise TypeError(f"{other_name} must be a tuple, not {type(other).__name__}")
    if len(values) != len(other):
        raise ValueError(f"{len(values)} values but {len(other)} {other_name}")


def _check_kinds(kinds: tuple) -> None:
    for i, kind in enumerate(kinds):
        if type(kind) is not int or not 0 <= kind < _KIND_COUNT:
            raise ValueError(f"unknown field kind {kind!r} at index {i}")


# the last kinds tuple found valid (a tuple of ints cannot change): a row
# writer passes the same one every time, so it is checked once
_valid_kinds: list = [None]


def join_tsv(values: tuple, kinds: tuple, fallback) -> str:
    """One enriched-TSV row from ``values`` formatted by ``kinds`` (see the module docstring)."""
    _check_args(values, kinds, "kinds")
    if kinds is not _valid_kinds[0]:
        _check_kinds(kinds)
        _valid_kinds[0] = kinds
    out = []
    append = out.append
    i = -1
    for value, kind in zip(values, kinds):
        i += 1
        if value is None:
            append("")
            continue
        cls = type(value)
        if cls is str:
            if "\t" in value or "\n" in value or "\r" in value:
                value = value.replace("\t", " ").replace("\n", " ").replace("\r", " ")
            append(value)
        elif cls is int:
            if kind == KIND_STRING or kind == KIND_INT or kind == KIND_DECIMAL:
                append(str(value))
            elif kind == KIND_BOOL and (value == 1 or value == 0):
                append("1" if value else "0")
            elif kind == KIND_TIMESTAMP and _MIN_MS <= value <= _MAX_MS:
                dt = _EPOCH + timedelta(milliseconds=value)
                append(f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d}:"
                       f"{dt.second:02d}.{dt.microsecond // 1000:03d}")
            else:
                append(fallback(i, value))
        elif cls is bool and (kind == KIND_INT or kind == KIND_BOOL):
            append("1" if value else "0")
        elif cls is float and (kind == KIND_FLOAT or kind == KIND_DECIMAL):
            append(repr(value))
        else:
            append(fallback(i, value))
    return "\t".join(out)


def _check_limits(limits: tuple) -> None:
    for i, limit in enumerate(limits):
        if type(limit) is not int:
            raise TypeError(f"limit at index {i} must be an int, not {type(limit).__name__}")


# (limits, its (index, limit) pairs that have a limit) for the last limits
# tuple found valid, swapped as one object (as for kinds)
_valid_limits: list = [((), ())]


def oversized(values: tuple, limits: tuple) -> list:
    """Indices of the ``str`` values longer than their limit (``-1``: none)."""
    _check_args(values, limits, "limits")
    checked, pairs = _valid_limits[0]
    if limits is not checked:
        _check_limits(limits)
        pairs = tuple((i, n) for i, n in enumerate(limits) if n >= 0)
        _valid_limits[0] = (limits, pairs)
    found = []
    for i, limit in pairs:
        value = values[i]
        if type(value) is str and len(value) > limit:
            found.append(i)
    return found


def join_lines(values) -> bytes:
    """``values`` as lines ended by ``"\\n"``, line breaks inside a value made spaces."""
    held = tuple(values)
    for i, value in enumerate(held):
        if not isinstance(value, bytes):
            raise TypeError(f"value at index {i} must be bytes, not {type(value).__name__}")
    if not held:
        return b""
    glued = b"".join(held)
    if b"\n" not in glued and b"\r" not in glued:
        return b"\n".join([*held, b""])
    return b"\n".join([value.replace(b"\r", b" ").replace(b"\n", b" ") for value in held]) + b"\n"
