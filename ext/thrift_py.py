"""Thrift binary-protocol codec for ``CollectorPayload``, in pure Python.

This is the reference twin of the compiled ``ext._thrift``: both expose the same
two functions, accept and reject the same inputs and raise the same errors with
the same messages; ``tests/unit/test_thrift.py`` runs every test against both.
Import the functions from ``ext``, which picks the compiled one when it is built.

Encoding (what Java's ``TSerializer`` with ``TBinaryProtocol`` writes for a
struct, with no message envelope):

- each present field: type byte, field id as big-endian i16, then the value;
- ``string``: big-endian i32 byte length, then the bytes;
- ``i64``: 8 bytes big-endian, two's complement;
- ``list<string>``: element type byte (11), big-endian i32 count, the strings;
- a STOP byte (0) ends the struct.

Fields are written in IDL declaration order (31337 first, then 100, 200, ...
410), as Snowplow's Java collector writes them; a field whose value is ``None``
is left out.  (Java always writes ``timestamp`` since it is a primitive; we leave
it out when it is ``None`` so that a decoded payload without it re-encodes to the
same bytes.)

Decoding accepts the fields in any order (the last of repeated fields wins) and
skips fields it does not know, whatever their type (bool, byte, i16, i32, i64,
double, string, struct, map, set, list and uuid, nested up to
:data:`MAX_DEPTH` levels).  Anything else raises :class:`ext.ThriftDecodeError`:
truncated input, a negative length, a length or element count larger than the
bytes left could hold (checked before anything is allocated), an unknown type
code, a known field with the wrong type (or ``headers`` not a list of strings), a
missing STOP byte, and bytes left over after the STOP byte.
"""

from __future__ import annotations

from struct import Struct

from .payload import CollectorPayload, ThriftDecodeError

__all__ = ["encode_collector_payload", "decode_collector_payload", "MAX_DEPTH"]

#: Deepest nesting of structs and containers the decoder skips (same as Thrift's).
MAX_DEPTH = 64

T_STOP = 0
T_BOOL = 2
T_BYTE = 3
T_DOUBLE = 4
T_I16 = 6
T_I32 = 8
T_I64 = 10
T_STRING = 11
T_STRUCT = 12
T_MAP = 13
T_SET = 14
T_LIST = 15
T_UUID = 16

TYPE_NAMES = {
    0: "stop",
    1: "void",
    T_BOOL: "bool",
    T_BYTE: "byte",
    T_DOUBLE: "double",
    T_I16: "i16",
    T_I32: "i32",
    T_I64: "i64",
    T_STRING: "string",
    T_STRUCT: "struct",
    T_MAP: "map",
    T_SET: "set",
    T_LIST: "list",
    T_UUID: "uuid",
}

# Bytes a value of each type takes at least (fixed-size types: exactly).
# Only value types are listed: a type code missing here is invalid.
_MIN_SIZE = {
    T_BOOL: 1,
    T_BYTE: 1,
    T_DOUBLE: 8,
    T_I16: 2,
    T_I32: 4,
    T_I64: 8,
    T_STRING: 4,
    T_STRUCT: 1,
    T_MAP: 6,
    T_SET: 5,
    T_LIST: 5,
    T_UUID: 16,
}
_FIXED_SIZE = {T_BOOL: 1, T_BYTE: 1, T_DOUBLE: 8, T_I16: 2, T_I32: 4, T_I64: 8, T_UUID: 16}

# (field id, Thrift name, attribute, Thrift type), in IDL declaration order.
FIELDS = (
    (31337, "schema", "schema", T_STRING),
    (100, "ipAddress", "ip_address", T_STRING),
    (200, "timestamp", "timestamp", T_I64),
    (210, "encoding", "encoding", T_STRING),
    (220, "collector", "collector", T_STRING),
    (300, "userAgent", "user_agent", T_STRING),
    (310, "refererUri", "referer_uri", T_STRING),
    (320, "path", "path", T_STRING),
    (330, "querystring", "querystring", T_STRING),
    (340, "body", "body", T_STRING),
    (350, "headers", "headers", T_LIST),
    (360, "contentType", "content_type", T_STRING),
    (400, "hostname", "hostname", T_STRING),
    (410, "networkUserId", "network_user_id", T_STRING),
)
_BY_ID = {fid: (tname, attr, ttype) for fid, tname, attr, ttype in FIELDS}

_I16 = Struct(">h")
_I32 = Struct(">i")
_I64 = Struct(">q")
_FIELD_HEADER = Struct(">bh")
_STRING_HEADER = Struct(">bhi")  # type, field id, length
_LIST_HEADER = Struct(">bhbi")  # type, field id, element type, count
_MAP_HEADER = Struct(">bbi")
_LIST_BEGIN = Struct(">bi")

_I32_MAX = 0x7FFFFFFF
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1


def _type_name(ttype):
    return TYPE_NAMES.get(ttype, "unknown")


# ---------------------------------------------------------------- encoding


def _string_bytes(value, what):
    if type(value) is str:
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, (bytes, bytearray)):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def _check_length(n, what):
    if n > _I32_MAX:
        raise ValueError(f"{what} is {n} bytes long, more than a Thrift string can hold")


def encode_collector_payload(p) -> bytes:
    """Encode ``p`` (a :class:`CollectorPayload`) with Thrift's binary protocol.

    Returns the bytes Snowplow's collector would write for the same values:
    fields in IDL order, ``None`` fields left out, STOP at the end.

    Raises :class:`TypeError` when a string field or header is neither ``str``
    nor ``bytes``/``bytearray``, ``timestamp`` is not an ``int`` or ``headers``
    is not a ``list``/``tuple``; :class:`ValueError` when ``timestamp`` does not
    fit in an i64 or a string is longer than 2**31-1 bytes (a
    :class:`UnicodeEncodeError` for a ``str`` holding a surrogate that
    ``surrogateescape`` cannot map back to a byte).
    """
    out = []
    append = out.append
    for fid, _tname, attr, ttype in FIELDS:
        value = getattr(p, attr)
        if value is None:
            continue
        if ttype == T_STRING:
            raw = _string_bytes(value, f"CollectorPayload.{attr}")
            _check_length(len(raw), f"CollectorPayload.{attr}")
            append(_STRING_HEADER.pack(T_STRING, fid, len(raw)))
            append(raw)
        elif ttype == T_I64:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"CollectorPayload.{attr} must be int, not {type(value).__name__}")
            if not _I64_MIN <= value <= _I64_MAX:
                raise ValueError(f"CollectorPayload.{attr} {value} does not fit in a Thrift i64")
            append(_FIELD_HEADER.pack(T_I64, fid))
            append(_I64.pack(value))
        else:  # headers: list<string>
            if not isinstance(value, (list, tuple)):
                raise TypeError(
                    f"CollectorPayload.{attr} must be a list or tuple, not {type(value).__name__}"
                )
            append(_LIST_HEADER.pack(T_LIST, fid, T_STRING, len(value)))
            for i, item in enumerate(value):
                raw = _string_bytes(item, f"CollectorPayload.{attr}[{i}]")
                _check_length(len(raw), f"CollectorPayload.{attr}[{i}]")
                append(_I32.pack(len(raw)))
                append(raw)
    append(b"\x00")
    return b"".join(out)


# ---------------------------------------------------------------- decoding


def _truncated(what, pos, need, end):
    return ThriftDecodeError(
        f"truncated input: {what} at offset {pos} needs {need} bytes, {end - pos} left"
    )


def _read_string(data, pos, end):
    """Decode the string whose length prefix is at ``pos``; return (str, next pos)."""
    if end - pos < 4:
        raise _truncated("string length", pos, 4, end)
    (n,) = _I32.unpack_from(data, pos)
    if n < 0:
        raise ThriftDecodeError(f"negative string length {n} at offset {pos}")
    pos += 4
    if n > end - pos:
        raise ThriftDecodeError(
            f"string length {n} at offset {pos - 4} exceeds the {end - pos} bytes left"
        )
    # bytes that are not UTF-8 become U+FFFD, as Java's String (Snowplow's reader) makes them (an encoded
    # surrogate, ED A0..BF .., is one U+FFFD: ext.errors' "snowmelt-java-utf8")
    return data[pos : pos + n].decode("utf-8", "snowmelt-java-utf8"), pos + n


def _check_value_type(ttype, pos):
    if ttype not in _MIN_SIZE:
        raise ThriftDecodeError(f"invalid Thrift type {ttype} at offset {pos}")


def _check_count(kind, n, min_size, pos, body, end):
    """Validate the element count of the container whose header starts at ``pos``
    and whose elements start at ``body``: it must fit in the bytes left."""
    if n < 0:
        raise ThriftDecodeError(f"negative {kind} size {n} at offset {pos}")
    if n * min_size > end - body:
        raise ThriftDecodeError(
            f"{kind} of {n} elements at offset {pos} needs at least {n * min_size} bytes, "
            f"{end - body} left"
        )


def _skip(data, pos, end, ttype, depth):
    """Skip one value of type ``ttype`` (already validated) at ``pos``; return next pos."""
    size = _FIXED_SIZE.get(ttype)
    if size is not None:
        if end - pos < size:
            raise _truncated(f"{TYPE_NAMES[ttype]} value", pos, size, end)
        return pos + size
    if ttype == T_STRING:
        if end - pos < 4:
            raise _truncated("string length", pos, 4, end)
        (n,) = _I32.unpack_from(data, pos)
        if n < 0:
            raise ThriftDecodeError(f"negative string length {n} at offset {pos}")
        if n > end - pos - 4:
            raise ThriftDecodeError(
                f"string length {n} at offset {pos} exceeds the {end - pos - 4} bytes left"
            )
        return pos + 4 + n
    if depth > MAX_DEPTH:
        raise ThriftDecodeError(f"nesting deeper than {MAX_DEPTH} levels at offset {pos}")
    if ttype == T_STRUCT:
        while True:
            if pos >= end:
                raise ThriftDecodeError(
                    f"missing STOP: input ended at offset {pos} inside a nested struct"
                )
            ftype = data[pos]
            if ftype == T_STOP:
                return pos + 1
            if end - pos < 3:
                raise _truncated("field header", pos, 3, end)
            _check_value_type(ftype, pos)
            pos = _skip(data, pos + 3, end, ftype, depth + 1)
    if ttype == T_MAP:
        if end - pos < 6:
            raise _truncated("map header", pos, 6, end)
        ktype, vtype, n = _MAP_HEADER.unpack_from(data, pos)
        ktype &= 0xFF
        vtype &= 0xFF
        _check_value_type(ktype, pos)
        _check_value_type(vtype, pos + 1)
        _check_count("map", n, _MIN_SIZE[ktype] + _MIN_SIZE[vtype], pos, pos + 6, end)
        pos += 6
        for _ in range(n):
            pos = _skip(data, pos, end, ktype, depth + 1)
            pos = _skip(data, pos, end, vtype, depth + 1)
        return pos
    # T_SET or T_LIST
    kind = "set" if ttype == T_SET else "list"
    if end - pos < 5:
        raise _truncated(f"{kind} header", pos, 5, end)
    etype, n = _LIST_BEGIN.unpack_from(data, pos)
    etype &= 0xFF
    _check_value_type(etype, pos)
    _check_count(kind, n, _MIN_SIZE[etype], pos, pos + 5, end)
    pos += 5
    for _ in range(n):
        pos = _skip(data, pos, end, etype, depth + 1)
    return pos


def decode_collector_payload(data) -> CollectorPayload:
    """Decode one Thrift-binary ``CollectorPayload`` from a bytes-like object.

    ``data`` must hold exactly one struct: bytes after its STOP byte are an error.
    Fields absent from the input are ``None`` in the result.  Raises
    :class:`ThriftDecodeError` (a :class:`ValueError`) when ``data`` is not a
    valid encoding and :class:`TypeError` when it is not bytes-like.
    """
    if type(data) is not bytes:
        data = memoryview(data).tobytes()
    end = len(data)
    values = {}
    pos = 0
    while True:
        if pos >= end:
            raise ThriftDecodeError(
                f"missing STOP: input ended at offset {pos} inside the CollectorPayload struct"
            )
        ftype = data[pos]
        if ftype == T_STOP:
            pos += 1
            break
        if end - pos < 3:
            raise _truncated("field header", pos, 3, end)
        (fid,) = _I16.unpack_from(data, pos + 1)
        known = _BY_ID.get(fid)
        if known is None:
            _check_value_type(ftype, pos)
            pos = _skip(data, pos + 3, end, ftype, 1)
            continue
        tname, attr, expected = known
        if ftype != expected:
            raise ThriftDecodeError(
                f"field {fid} ({tname}) at offset {pos} has Thrift type {ftype} "
                f"({_type_name(ftype)}), expected {expected} ({TYPE_NAMES[expected]})"
            )
        pos += 3
        if expected == T_STRING:
            values[attr], pos = _read_string(data, pos, end)
        elif expected == T_I64:
            if end - pos < 8:
                raise _truncated("i64 value", pos, 8, end)
            (values[attr],) = _I64.unpack_from(data, pos)
            pos += 8
        else:  # headers: list<string>
            if end - pos < 5:
                raise _truncated("list header", pos, 5, end)
            etype, n = _LIST_BEGIN.unpack_from(data, pos)
            etype &= 0xFF
            if etype != T_STRING:
                raise ThriftDecodeError(
                    f"field {fid} ({tname}) at offset {pos - 3} is a list of type {etype} "
                    f"({_type_name(etype)}), expected a list of 11 (string)"
                )
            _check_count("list", n, 4, pos, pos + 5, end)
            pos += 5
            items = []
            for _ in range(n):
                item, pos = _read_string(data, pos, end)
                items.append(item)
            values[attr] = items
    if pos != end:
        raise ThriftDecodeError(
            f"trailing data: {end - pos} bytes after the end of the CollectorPayload struct "
            f"at offset {pos}"
        )
    return CollectorPayload(**values)
