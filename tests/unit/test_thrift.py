"""Thrift binary codec for CollectorPayload: both implementations, same tests.

Expected bytes are written out by hand from the Thrift binary protocol (field
header = type byte + big-endian i16 id; string = big-endian i32 length + bytes;
i64 = 8 bytes big-endian; list = element type byte + i32 count; STOP = 0), and
interoperability is checked against the ``thrift`` package's own serializers
(pure-Python TBinaryProtocol and the C-accelerated one), which share no code
with ours.
"""

import importlib
import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from thrift import TSerialization
from thrift.protocol import TBinaryProtocol
from thrift.protocol.TBase import TBase
from thrift.Thrift import TType

import ext
from ext import SCHEMA, CollectorPayload, ThriftDecodeError

ROOT = Path(__file__).resolve().parents[2]

ATTRS = CollectorPayload.__slots__
# attribute -> (Thrift field id, Thrift name)
FIELD_IDS = {
    "schema": (31337, "schema"),
    "ip_address": (100, "ipAddress"),
    "timestamp": (200, "timestamp"),
    "encoding": (210, "encoding"),
    "collector": (220, "collector"),
    "user_agent": (300, "userAgent"),
    "referer_uri": (310, "refererUri"),
    "path": (320, "path"),
    "querystring": (330, "querystring"),
    "body": (340, "body"),
    "headers": (350, "headers"),
    "content_type": (360, "contentType"),
    "hostname": (400, "hostname"),
    "network_user_id": (410, "networkUserId"),
}
KNOWN_IDS = {fid for fid, _ in FIELD_IDS.values()}


def full_payload(**overrides):
    values = dict(
        schema=SCHEMA,
        ip_address="203.0.113.7",
        timestamp=1_600_000_000_123,
        encoding="UTF-8",
        collector="ssc-2.9.0-kafka",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/121.0",
        referer_uri="https://example.com/caf\u00e9?q=\u2603",
        path="/com.snowplowanalytics.snowplow/tp2",
        querystring="e=pv&url=https%3A%2F%2Fexample.com",
        body='{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[]}',
        headers=["Host: collector.example.com", "Accept: */*", "X-Emoji: \U0001f600"],
        content_type="application/json; charset=UTF-8",
        hostname="collector.example.com",
        network_user_id="c0ffee00-1234-4321-abcd-0123456789ab",
    )
    values.update(overrides)
    return CollectorPayload(**values)


def as_decoded(p):
    """What decoding ``encode(p)`` must give: bytes become str (bytes that are not UTF-8
    become U+FFFD, as Snowplow's Java reader makes them), header tuples become lists."""

    def text(v):
        if isinstance(v, str):
            v = v.encode("utf-8", "surrogateescape")
        return bytes(v).decode("utf-8", "snowmelt-java-utf8") if isinstance(v, (bytes, bytearray)) else v

    values = {a: text(getattr(p, a)) for a in ATTRS}
    if p.headers is not None:
        values["headers"] = [text(h) for h in p.headers]
    return CollectorPayload(**values)


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def outcome(impl, data):
    """("ok", payload) or ("error", message); any other exception escapes."""
    try:
        return ("ok", impl.decode_collector_payload(data))
    except ThriftDecodeError as exc:
        return ("error", str(exc))


def all_outcomes(data):
    """Decode with every implementation; assert they agree; return the outcome."""
    results = {name: outcome(impl, data) for name, impl in ext.implementations().items()}
    first = results["python"]
    for name, result in results.items():
        assert result == first, f"{name} disagrees with python on {data!r}"
    return first


def field_bytes(codec, attr, value):
    """The encoding of one field alone (our encoder, STOP stripped)."""
    return codec.encode_collector_payload(CollectorPayload(**{attr: value}))[:-1]


# --------------------------------------------------------------- the payload class


def test_payload_class_basics():
    p = CollectorPayload()
    assert all(getattr(p, a) is None for a in ATTRS)
    assert CollectorPayload.SCHEMA == SCHEMA == (
        "iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0"
    )
    assert full_payload() == full_payload()
    assert full_payload() != full_payload(path="/i")
    assert full_payload() != object()
    assert "ip_address='203.0.113.7'" in repr(full_payload())
    assert repr(CollectorPayload(path="/i")) == "CollectorPayload(path='/i')"
    with pytest.raises(TypeError):
        CollectorPayload("positional")
    with pytest.raises(AttributeError):
        p.unknown = 1
    with pytest.raises(TypeError):
        hash(p)
    assert issubclass(ThriftDecodeError, ValueError)


# --------------------------------------------------------------- exact bytes


def test_encode_known_payload_exact_bytes(codec):
    p = CollectorPayload(
        schema=SCHEMA,
        ip_address="203.0.113.7",
        timestamp=1_600_000_000_123,
        encoding="UTF-8",
        collector="ssc-2.9.0-kafka",
        user_agent="Mozilla/5.0",
        path="/i",
        querystring="e=pv",
        headers=["Host: x.io", "Accept: */*"],
        network_user_id="n1",
    )
    expected = (
        b"\x0b\x7a\x69" + b"\x00\x00\x00\x41" + SCHEMA.encode()  # 31337 string, len 65
        + b"\x0b\x00\x64" + b"\x00\x00\x00\x0b" + b"203.0.113.7"  # 100 string
        + b"\x0a\x00\xc8" + b"\x00\x00\x01\x74\x87\x6e\x80\x7b"  # 200 i64 0x174876E807B
        + b"\x0b\x00\xd2" + b"\x00\x00\x00\x05" + b"UTF-8"  # 210
        + b"\x0b\x00\xdc" + b"\x00\x00\x00\x0f" + b"ssc-2.9.0-kafka"  # 220
        + b"\x0b\x01\x2c" + b"\x00\x00\x00\x0b" + b"Mozilla/5.0"  # 300
        + b"\x0b\x01\x40" + b"\x00\x00\x00\x02" + b"/i"  # 320
        + b"\x0b\x01\x4a" + b"\x00\x00\x00\x04" + b"e=pv"  # 330
        + b"\x0f\x01\x5e" + b"\x0b" + b"\x00\x00\x00\x02"  # 350 list<string>, 2 items
        + b"\x00\x00\x00\x0a" + b"Host: x.io"
        + b"\x00\x00\x00\x0b" + b"Accept: */*"
        + b"\x0b\x01\x9a" + b"\x00\x00\x00\x02" + b"n1"  # 410
        + b"\x00"  # STOP
    )
    assert len(SCHEMA) == 0x41
    assert codec.encode_collector_payload(p) == expected
    assert codec.decode_collector_payload(expected) == p


def test_an_encoded_surrogate_decodes_to_one_replacement_as_in_java(codec):
    # Java's new String(bytes, UTF_8) (OpenJDK 17.0.15, run on these bytes) reads ED A0..BF as the start of a
    # three-byte sequence: ED A0 80 is one U+FFFD (Python's "replace" writes three), ED BF at the end one
    p = CollectorPayload(querystring=b"a=\xed\xa0\x80&b=\xed\xa0A&c=\xed\xbf", body=b"\xed\x9f\xbf\xe0\x80")
    decoded = codec.decode_collector_payload(codec.encode_collector_payload(p))
    assert decoded.querystring == "a=\ufffd&b=\ufffdA&c=\ufffd"
    assert decoded.body == "\ud7ff\ufffd\ufffd"


def test_encode_non_ascii_bytes_and_surrogates_exact(codec):
    p = CollectorPayload(
        timestamp=-1,
        referer_uri=b"\xff\x00",  # bytes: written as is
        body="\u00e9",  # UTF-8: c3 a9
        headers=(b"\x80", "\u20ac"),  # tuple accepted; euro sign: e2 82 ac
        content_type="\udcff",  # surrogateescape: the byte ff
        hostname=bytearray(b"h"),
    )
    expected = (
        b"\x0a\x00\xc8" + b"\xff" * 8  # 200 i64 -1
        + b"\x0b\x01\x36" + b"\x00\x00\x00\x02" + b"\xff\x00"  # 310
        + b"\x0b\x01\x54" + b"\x00\x00\x00\x02" + b"\xc3\xa9"  # 340
        + b"\x0f\x01\x5e" + b"\x0b" + b"\x00\x00\x00\x02"  # 350
        + b"\x00\x00\x00\x01" + b"\x80"
        + b"\x00\x00\x00\x03" + b"\xe2\x82\xac"
        + b"\x0b\x01\x68" + b"\x00\x00\x00\x01" + b"\xff"  # 360
        + b"\x0b\x01\x90" + b"\x00\x00\x00\x01" + b"h"  # 400
        + b"\x00"
    )
    assert codec.encode_collector_payload(p) == expected
    decoded = codec.decode_collector_payload(expected)
    assert decoded == as_decoded(p)
    assert decoded.referer_uri == "\ufffd\x00"
    assert decoded.headers == ["\ufffd", "\u20ac"]
    # what is not UTF-8 is not kept: encoded again, each replacement is U+FFFD's three bytes
    assert codec.encode_collector_payload(decoded).count(b"\xef\xbf\xbd") == 3


def test_empty_payload_and_empty_values(codec):
    assert codec.encode_collector_payload(CollectorPayload()) == b"\x00"
    assert codec.decode_collector_payload(b"\x00") == CollectorPayload()
    p = CollectorPayload(body="", headers=[], timestamp=0)
    data = codec.encode_collector_payload(p)
    assert data == (
        b"\x0a\x00\xc8" + b"\x00" * 8
        + b"\x0b\x01\x54" + b"\x00\x00\x00\x00"
        + b"\x0f\x01\x5e\x0b\x00\x00\x00\x00"
        + b"\x00"
    )
    assert codec.decode_collector_payload(data) == p


def test_fields_written_in_idl_order(codec):
    data = codec.encode_collector_payload(full_payload())
    ids = []
    pos = 0
    while data[pos] != 0:
        ttype, fid = struct.unpack_from(">bh", data, pos)
        ids.append(fid)
        pos += 3
        if ttype == TType.I64:
            pos += 8
        elif ttype == TType.STRING:
            pos += 4 + struct.unpack_from(">i", data, pos)[0]
        else:
            _, count = struct.unpack_from(">bi", data, pos)
            pos += 5
            for _ in range(count):
                pos += 4 + struct.unpack_from(">i", data, pos)[0]
    assert pos == len(data) - 1
    assert ids == [31337, 100, 200, 210, 220, 300, 310, 320, 330, 340, 350, 360, 400, 410]


def test_round_trip_full(codec):
    p = full_payload()
    assert codec.decode_collector_payload(codec.encode_collector_payload(p)) == p


@pytest.mark.both_implementations
def test_implementations_produce_identical_bytes():
    impls = ext.implementations()
    for p in (full_payload(), CollectorPayload(), full_payload(headers=None, timestamp=-(2**63))):
        encodings = {name: impl.encode_collector_payload(p) for name, impl in impls.items()}
        assert len(set(encodings.values())) == 1, encodings


def test_decode_accepts_bytes_like(codec):
    data = codec.encode_collector_payload(full_payload())
    for form in (bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]):
        assert codec.decode_collector_payload(form) == full_payload()
    for not_bytes in ("\x00", None, 0, [0]):
        with pytest.raises(TypeError):
            codec.decode_collector_payload(not_bytes)


def test_decoded_strings_are_str_and_headers_a_list(codec):
    p = codec.decode_collector_payload(codec.encode_collector_payload(full_payload(headers=("A: b",))))
    assert type(p) is CollectorPayload
    assert type(p.headers) is list and p.headers == ["A: b"]
    assert type(p.schema) is str and type(p.timestamp) is int


# --------------------------------------------------------------- order and unknown fields


def test_decode_fields_in_any_order(codec):
    p = full_payload()
    parts = [field_bytes(codec, a, getattr(p, a)) for a in ATTRS]
    for seed in range(5):
        random.Random(seed).shuffle(parts)
        assert codec.decode_collector_payload(b"".join(parts) + b"\x00") == p
    reversed_ = b"".join(reversed([field_bytes(codec, a, getattr(p, a)) for a in ATTRS]))
    assert codec.decode_collector_payload(reversed_ + b"\x00") == p


def test_repeated_field_last_one_wins(codec):
    data = field_bytes(codec, "path", "/first") + field_bytes(codec, "path", "/second") + b"\x00"
    assert codec.decode_collector_payload(data) == CollectorPayload(path="/second")


def _header(ttype, fid):
    return struct.pack(">bh", ttype, fid)


# Unknown field values of every type, written by hand.
UNKNOWN_VALUES = {
    "bool": (TType.BOOL, b"\x01"),
    "byte": (TType.BYTE, b"\x80"),
    "i16": (TType.I16, b"\x7f\xff"),
    "i32": (TType.I32, b"\xff\xff\xff\xfe"),
    "i64": (TType.I64, b"\x01" * 8),
    "double": (TType.DOUBLE, struct.pack(">d", 3.25)),
    "string": (TType.STRING, b"\x00\x00\x00\x03abc"),
    "empty string": (TType.STRING, b"\x00\x00\x00\x00"),
    "uuid": (TType.UUID, bytes(range(16))),
    "struct": (
        TType.STRUCT,
        _header(TType.I32, 1) + b"\x00\x00\x00\x07"
        + _header(TType.STRING, 100) + b"\x00\x00\x00\x01x"  # a known id, inside: skipped
        + _header(TType.STRUCT, 3) + b"\x00"  # empty nested struct
        + b"\x00",
    ),
    "empty struct": (TType.STRUCT, b"\x00"),
    "map": (
        TType.MAP,
        b"\x0b\x0f" + b"\x00\x00\x00\x02"  # map<string, list<i16>>, 2 entries
        + b"\x00\x00\x00\x01k" + b"\x06\x00\x00\x00\x02" + b"\x00\x01\x00\x02"
        + b"\x00\x00\x00\x00" + b"\x06\x00\x00\x00\x00",
    ),
    "empty map": (TType.MAP, b"\x08\x0c\x00\x00\x00\x00"),
    "set": (TType.SET, b"\x0a\x00\x00\x00\x02" + b"\x00" * 16),
    "list": (TType.LIST, b"\x0c\x00\x00\x00\x02" + b"\x02\x00\x01\x01\x00" + b"\x00"),
    "list of maps": (
        TType.LIST,
        b"\x0d\x00\x00\x00\x01" + b"\x03\x04\x00\x00\x00\x01" + b"\x05" + struct.pack(">d", -1.0),
    ),
    "list of uuid": (TType.LIST, b"\x10\x00\x00\x00\x01" + b"\xaa" * 16),
}


@pytest.mark.parametrize("kind", list(UNKNOWN_VALUES))
@pytest.mark.parametrize("fid", [1, -7, 32767, -32768, 201])
def test_unknown_fields_of_every_type_are_skipped(codec, kind, fid):
    ttype, value = UNKNOWN_VALUES[kind]
    unknown = _header(ttype, fid) + value
    p = full_payload()
    parts = [field_bytes(codec, a, getattr(p, a)) for a in ATTRS]
    for at in (0, 7, len(parts)):
        data = b"".join(parts[:at]) + unknown + b"".join(parts[at:]) + b"\x00"
        assert codec.decode_collector_payload(data) == p
    assert codec.decode_collector_payload(unknown + b"\x00") == CollectorPayload()


def _nested_lists(levels):
    """An unknown field holding ``levels`` lists nested in each other."""
    return (
        _header(TType.LIST, 1)
        + b"\x0f\x00\x00\x00\x01" * (levels - 1)  # list<list<...>> of one element
        + b"\x08\x00\x00\x00\x00"  # innermost: empty list<i32>
        + b"\x00"
    )


def _nested_structs(levels):
    return _header(TType.STRUCT, 1) + _header(TType.STRUCT, 1) * (levels - 1) + b"\x00" * levels + b"\x00"


def test_nesting_depth_limit(codec):
    assert codec.MAX_DEPTH == 64
    assert codec.decode_collector_payload(_nested_lists(64)) == CollectorPayload()
    assert codec.decode_collector_payload(_nested_structs(64)) == CollectorPayload()
    with pytest.raises(ThriftDecodeError, match=r"^nesting deeper than 64 levels at offset 323$"):
        codec.decode_collector_payload(_nested_lists(65))
    with pytest.raises(ThriftDecodeError, match=r"^nesting deeper than 64 levels at offset 195$"):
        codec.decode_collector_payload(_nested_structs(65))
    with pytest.raises(ThriftDecodeError, match="nesting deeper"):
        codec.decode_collector_payload(_nested_lists(100_000))


# --------------------------------------------------------------- malformed input

TS = b"\x0a\x00\xc8"  # field header of timestamp
IP = b"\x0b\x00\x64"  # field header of ipAddress
HEADERS = b"\x0f\x01\x5e"

MALFORMED = [
    (b"", "missing STOP: input ended at offset 0 inside the CollectorPayload struct"),
    (IP + b"\x00\x00\x00\x01a", "missing STOP: input ended at offset 8 inside the CollectorPayload struct"),
    (b"\x0b", "truncated input: field header at offset 0 needs 3 bytes, 1 left"),
    (b"\x0b\x00", "truncated input: field header at offset 0 needs 3 bytes, 2 left"),
    (IP + b"\x00\x00", "truncated input: string length at offset 3 needs 4 bytes, 2 left"),
    (IP + b"\xff\xff\xff\xff\x00", "negative string length -1 at offset 3"),
    (IP + b"\x80\x00\x00\x00\x00", "negative string length -2147483648 at offset 3"),
    (IP + b"\x00\x00\x00\x05ab\x00", "string length 5 at offset 3 exceeds the 3 bytes left"),
    (IP + b"\x7f\xff\xff\xff", "string length 2147483647 at offset 3 exceeds the 0 bytes left"),
    (TS + b"\x00\x00", "truncated input: i64 value at offset 3 needs 8 bytes, 2 left"),
    (b"\x08\x00\xc8\x00\x00\x00\x01\x00",
     "field 200 (timestamp) at offset 0 has Thrift type 8 (i32), expected 10 (i64)"),
    (b"\x0a\x00\x64" + b"\x00" * 8 + b"\x00",
     "field 100 (ipAddress) at offset 0 has Thrift type 10 (i64), expected 11 (string)"),
    (b"\x07\x7a\x69\x00",
     "field 31337 (schema) at offset 0 has Thrift type 7 (unknown), expected 11 (string)"),
    (b"\x0e\x01\x5e\x0b\x00\x00\x00\x00\x00",
     "field 350 (headers) at offset 0 has Thrift type 14 (set), expected 15 (list)"),
    (b"\x0b\x01\x5e\x00\x00\x00\x00\x00",
     "field 350 (headers) at offset 0 has Thrift type 11 (string), expected 15 (list)"),
    (HEADERS + b"\x08\x00\x00\x00\x00\x00",
     "field 350 (headers) at offset 0 is a list of type 8 (i32), expected a list of 11 (string)"),
    (HEADERS + b"\x0b\x00\x00", "truncated input: list header at offset 3 needs 5 bytes, 3 left"),
    (HEADERS + b"\x0b\xff\xff\xff\xfe\x00", "negative list size -2 at offset 3"),
    (HEADERS + b"\x0b\x7f\xff\xff\xff\x00",
     "list of 2147483647 elements at offset 3 needs at least 8589934588 bytes, 1 left"),
    (HEADERS + b"\x0b\x00\x00\x00\x02" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x09",
     "string length 9 at offset 12 exceeds the 0 bytes left"),
    (b"\x00\x00", "trailing data: 1 bytes after the end of the CollectorPayload struct at offset 1"),
    # unknown fields
    (b"\x01\x00\x01\x00", "invalid Thrift type 1 at offset 0"),
    (b"\x05\x00\x01\x00", "invalid Thrift type 5 at offset 0"),
    (b"\x11\x00\x01\x00", "invalid Thrift type 17 at offset 0"),
    (b"\xff\x00\x01\x00", "invalid Thrift type 255 at offset 0"),
    (b"\x04\x00\x01\x00\x00", "truncated input: double value at offset 3 needs 8 bytes, 2 left"),
    (b"\x10\x00\x01" + b"\x00" * 15, "truncated input: uuid value at offset 3 needs 16 bytes, 15 left"),
    (b"\x02\x00\x01", "truncated input: bool value at offset 3 needs 1 bytes, 0 left"),
    (b"\x0b\x00\x01\xff\xff\xff\xf0", "negative string length -16 at offset 3"),
    (b"\x0c\x00\x01" + b"\x08\x00\x01\x00\x00\x00\x05",
     "missing STOP: input ended at offset 10 inside a nested struct"),
    (b"\x0c\x00\x01" + b"\x08\x00", "truncated input: field header at offset 3 needs 3 bytes, 2 left"),
    (b"\x0c\x00\x01" + b"\x09\x00\x01\x00\x00", "invalid Thrift type 9 at offset 3"),
    (b"\x0d\x00\x01\x0b\x0b\x00", "truncated input: map header at offset 3 needs 6 bytes, 3 left"),
    (b"\x0d\x00\x01\x05\x0b\x00\x00\x00\x00\x00", "invalid Thrift type 5 at offset 3"),
    (b"\x0d\x00\x01\x0b\x00\x00\x00\x00\x00\x00", "invalid Thrift type 0 at offset 4"),
    (b"\x0d\x00\x01\x0b\x0b\x7f\xff\xff\xff",
     "map of 2147483647 elements at offset 3 needs at least 17179869176 bytes, 0 left"),
    (b"\x0d\x00\x01\x0b\x0b\xff\xff\xff\xff\x00", "negative map size -1 at offset 3"),
    (b"\x0e\x00\x01\x0c\x00\x00\x10\x00" + b"\x00" * 100,
     "set of 4096 elements at offset 3 needs at least 4096 bytes, 100 left"),
    (b"\x0f\x00\x01\x0f\x00\x00\x00\x01", "list of 1 elements at offset 3 needs at least 5 bytes, 0 left"),
    (b"\x0f\x00\x01\x0f\x00\x00\x00\x02" + b"\x08\x00\x00\x00\x01\x00\x00\x00\x07" + b"\x08",
     "truncated input: list header at offset 17 needs 5 bytes, 1 left"),
    (b"\x0f\x00\x01\x01\x00\x00\x00\x00\x00", "invalid Thrift type 1 at offset 3"),
    (b"\x0f\x00\x01\x08\x80\x00\x00\x00\x00", "negative list size -2147483648 at offset 3"),
    (b"\x0e\x00\x01\x0b\x00\x00\x00\x02" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x09\x00",
     "string length 9 at offset 12 exceeds the 1 bytes left"),
]


@pytest.mark.parametrize("data, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_input_is_rejected(codec, data, message):
    with pytest.raises(ThriftDecodeError) as info:
        codec.decode_collector_payload(data)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_every_truncation_of_a_valid_payload_is_rejected(codec):
    data = codec.encode_collector_payload(full_payload())
    for cut in range(len(data)):
        with pytest.raises(ThriftDecodeError):
            codec.decode_collector_payload(data[:cut])
    for extra in (b"\x00", b"junk"):
        with pytest.raises(ThriftDecodeError, match="^trailing data"):
            codec.decode_collector_payload(data + extra)


# --------------------------------------------------------------- encoder errors

ENCODE_ERRORS = [
    ({"ip_address": 123}, TypeError, "CollectorPayload.ip_address must be str or bytes, not int"),
    ({"schema": ["x"]}, TypeError, "CollectorPayload.schema must be str or bytes, not list"),
    ({"body": memoryview(b"x")}, TypeError, "CollectorPayload.body must be str or bytes, not memoryview"),
    ({"timestamp": "1"}, TypeError, "CollectorPayload.timestamp must be int, not str"),
    ({"timestamp": 1.0}, TypeError, "CollectorPayload.timestamp must be int, not float"),
    ({"timestamp": True}, TypeError, "CollectorPayload.timestamp must be int, not bool"),
    ({"timestamp": 2**63}, ValueError, "CollectorPayload.timestamp 9223372036854775808 does not fit in a Thrift i64"),
    ({"timestamp": -(2**63) - 1}, ValueError,
     "CollectorPayload.timestamp -9223372036854775809 does not fit in a Thrift i64"),
    ({"headers": "Host: x"}, TypeError, "CollectorPayload.headers must be a list or tuple, not str"),
    ({"headers": {"Host": "x"}}, TypeError, "CollectorPayload.headers must be a list or tuple, not dict"),
    ({"headers": ["ok", 5]}, TypeError, "CollectorPayload.headers[1] must be str or bytes, not int"),
    ({"headers": [None]}, TypeError, "CollectorPayload.headers[0] must be str or bytes, not NoneType"),
    # the first bad field in IDL order is the one reported
    ({"headers": [1], "content_type": 2}, TypeError, "CollectorPayload.headers[0] must be str or bytes, not int"),
]


@pytest.mark.parametrize("fields, error, message", ENCODE_ERRORS, ids=[m for *_, m in ENCODE_ERRORS])
def test_encoder_rejects_bad_values(codec, fields, error, message):
    with pytest.raises(error) as info:
        codec.encode_collector_payload(CollectorPayload(**fields))
    assert str(info.value) == message


def test_encoder_rejects_unencodable_surrogates(codec):
    with pytest.raises(UnicodeEncodeError):
        codec.encode_collector_payload(CollectorPayload(body="\ud800"))
    with pytest.raises(UnicodeEncodeError):
        codec.encode_collector_payload(CollectorPayload(headers=["ok", "\udbff"]))


def test_encoder_timestamp_limits(codec):
    for ts in (2**63 - 1, -(2**63), 0):
        p = CollectorPayload(timestamp=ts)
        assert codec.decode_collector_payload(codec.encode_collector_payload(p)) == p


def test_encoder_accepts_str_and_bytes_subclasses(codec):
    class Text(str):
        pass

    class Raw(bytes):
        pass

    p = CollectorPayload(path=Text("/i"), body=Text("caf\u00e9"), hostname=Raw(b"h"),
                         headers=[Text("A: b"), Raw(b"C: d"), Text("\u00e9")])
    plain = CollectorPayload(path="/i", body="caf\u00e9", hostname="h", headers=["A: b", "C: d", "\u00e9"])
    assert codec.encode_collector_payload(p) == codec.encode_collector_payload(plain)


def test_encoder_accepts_duck_typed_payloads(codec):
    class Like:
        pass

    like = Like()
    for a in ATTRS:
        setattr(like, a, getattr(full_payload(), a))
    assert codec.encode_collector_payload(like) == codec.encode_collector_payload(full_payload())


# --------------------------------------------------------------- property tests

text_or_bytes = st.one_of(st.text(max_size=30), st.binary(max_size=30))


def payloads(strings=text_or_bytes):
    opt = st.none() | strings
    return st.builds(
        CollectorPayload,
        schema=st.none() | st.just(SCHEMA) | strings,
        ip_address=opt,
        timestamp=st.none() | st.integers(-(2**63), 2**63 - 1),
        encoding=opt,
        collector=opt,
        user_agent=opt,
        referer_uri=opt,
        path=opt,
        querystring=opt,
        body=st.none() | strings | st.text(min_size=200, max_size=2000),
        headers=st.none() | st.lists(strings, max_size=6),
        content_type=opt,
        hostname=opt,
        network_user_id=opt,
    )


@given(p=payloads())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_property_round_trip(codec, p):
    data = codec.encode_collector_payload(p)
    decoded = codec.decode_collector_payload(data)
    assert decoded == as_decoded(p)
    # encoded again, the same bytes unless some were not UTF-8 (those became U+FFFD)
    again = codec.encode_collector_payload(decoded)
    assert again == data or b"\xef\xbf\xbd" in again
    assert codec.decode_collector_payload(again) == decoded


@pytest.mark.both_implementations
@given(p=payloads())
@settings(max_examples=200)
def test_property_implementations_agree_on_encoding(p):
    encodings = {name: impl.encode_collector_payload(p) for name, impl in ext.implementations().items()}
    assert len(set(encodings.values())) == 1


def _thrift_values():
    """Strategy of (type code, encoded value) for arbitrary, nested Thrift values."""
    scalars = st.one_of(
        st.booleans().map(lambda b: (TType.BOOL, bytes([b]))),
        st.integers(-128, 127).map(lambda v: (TType.BYTE, struct.pack(">b", v))),
        st.integers(-(2**15), 2**15 - 1).map(lambda v: (TType.I16, struct.pack(">h", v))),
        st.integers(-(2**31), 2**31 - 1).map(lambda v: (TType.I32, struct.pack(">i", v))),
        st.integers(-(2**63), 2**63 - 1).map(lambda v: (TType.I64, struct.pack(">q", v))),
        st.floats().map(lambda v: (TType.DOUBLE, struct.pack(">d", v))),
        st.binary(max_size=12).map(lambda b: (TType.STRING, struct.pack(">i", len(b)) + b)),
        st.binary(min_size=16, max_size=16).map(lambda b: (TType.UUID, b)),
    )

    def containers(children):
        struct_ = st.lists(
            st.tuples(st.integers(-(2**15), 2**15 - 1), children), max_size=4
        ).map(
            lambda fields: (
                TType.STRUCT,
                b"".join(struct.pack(">bh", t, fid) + v for fid, (t, v) in fields) + b"\x00",
            )
        )
        # homogeneous containers: n copies of one element (n may be 0)
        seq = st.tuples(st.sampled_from([TType.LIST, TType.SET]), children, st.integers(0, 3)).map(
            lambda x: (x[0], struct.pack(">bi", x[1][0], x[2]) + x[1][1] * x[2])
        )
        map_ = st.tuples(children, children, st.integers(0, 3)).map(
            lambda x: (TType.MAP, struct.pack(">bbi", x[0][0], x[1][0], x[2]) + (x[0][1] + x[1][1]) * x[2])
        )
        return st.one_of(struct_, seq, map_)

    return st.recursive(scalars, containers, max_leaves=12)


unknown_ids = st.integers(-(2**15), 2**15 - 1).filter(lambda fid: fid not in KNOWN_IDS)


@given(
    p=payloads(),
    unknown=st.lists(st.tuples(unknown_ids, _thrift_values()), max_size=5),
    seed=st.integers(0, 2**32),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_property_any_order_with_unknown_fields(codec, p, unknown, seed):
    parts = [field_bytes(codec, a, getattr(p, a)) for a in ATTRS if getattr(p, a) is not None]
    parts += [struct.pack(">bh", t, fid) + v for fid, (t, v) in unknown]
    random.Random(seed).shuffle(parts)
    assert codec.decode_collector_payload(b"".join(parts) + b"\x00") == as_decoded(p)


@given(data=st.binary(max_size=400))
@settings(max_examples=500)
def test_property_random_bytes_only_raise_decode_errors(data):
    all_outcomes(data)
    all_outcomes(b"\x0b\x7a\x69" + data)
    all_outcomes(b"\x0c\x00\x01" + data)


def _mutate(data, ops):
    data = bytearray(data)
    for op, where, value in ops:
        at = where % (len(data) + 1)
        if op == "flip" and at < len(data):
            data[at] = value
        elif op == "insert":
            data[at:at] = bytes([value]) * (1 + value % 4)
        elif op == "delete":
            del data[at : at + 1 + value % 8]
        elif op == "truncate":
            del data[at:]
        elif op == "lengthen" and at + 4 <= len(data):  # a plausible big length
            data[at : at + 4] = struct.pack(">I", (value * 0x01010101 - 0x40000000) & 0xFFFFFFFF)
    return bytes(data)


mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete", "truncate", "lengthen"]),
        st.integers(0, 10_000),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)


@pytest.mark.both_implementations
@given(
    p=payloads(),
    unknown=st.lists(st.tuples(unknown_ids, _thrift_values()), max_size=3),
    ops=mutations,
)
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_property_mutated_encodings_only_raise_decode_errors_and_agree(p, unknown, ops):
    py = ext.implementations()["python"]
    valid = py.encode_collector_payload(p)[:-1]
    valid += b"".join(struct.pack(">bh", t, fid) + v for fid, (t, v) in unknown) + b"\x00"
    assert all_outcomes(valid) == ("ok", as_decoded(p))
    all_outcomes(_mutate(valid, ops))


# --------------------------------------------------------------- the thrift package


class ThriftCollectorPayload(TBase):
    """CollectorPayload described to the thrift package by its own thrift_spec."""

    __slots__ = tuple(name for _, name in FIELD_IDS.values())

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))


def _spec(extra=()):
    """thrift_spec is indexed by field id, so it runs to the largest id."""
    extra = list(extra)
    spec = [None] * (max([31337] + [entry[0] for entry in extra]) + 1)
    for attr, (fid, name) in FIELD_IDS.items():
        if attr == "timestamp":
            spec[fid] = (fid, TType.I64, name, None, None)
        elif attr == "headers":
            spec[fid] = (fid, TType.LIST, name, (TType.STRING, "UTF8", False), None)
        else:
            spec[fid] = (fid, TType.STRING, name, "UTF8", None)
    for entry in extra:
        spec[entry[0]] = entry
    return tuple(spec)


ThriftCollectorPayload.thrift_spec = _spec()


class ThriftInner(TBase):
    __slots__ = ("number", "text", "reals")
    thrift_spec = (
        None,
        (1, TType.I32, "number", None, None),
        (2, TType.STRING, "text", "UTF8", None),
        (3, TType.LIST, "reals", (TType.DOUBLE, None, False), None),
    )

    def __init__(self, number=None, text=None, reals=None):
        self.number, self.text, self.reals = number, text, reals


INNER_SPEC = [ThriftInner, ThriftInner.thrift_spec]
EXTRA_FIELDS = {  # Thrift name -> (spec entry, value)
    "flag": ((1, TType.BOOL, "flag", None, None), True),
    "tiny": ((2, TType.BYTE, "tiny", None, None), -5),
    "real": ((3, TType.DOUBLE, "real", None, None), 2.5),
    "short": ((4, TType.I16, "short", None, None), -300),
    "int": ((5, TType.I32, "int", None, None), 70000),
    "long": ((6, TType.I64, "long", None, None), -(2**40)),
    "text": ((7, TType.STRING, "text", "UTF8", None), "unknown \u00e9"),
    "inner": ((8, TType.STRUCT, "inner", INNER_SPEC, None), ThriftInner(7, "x", [1.5, -2.0])),
    "multimap": (
        (9, TType.MAP, "multimap", (TType.STRING, "UTF8", TType.LIST, (TType.I32, None, False), False), None),
        {"a": [1, 2, 3], "b": []},
    ),
    "ids": ((10, TType.SET, "ids", (TType.I64, None, False), None), {1, 2, 3}),
    "maps": (
        (11, TType.LIST, "maps", (TType.MAP, (TType.I16, None, TType.BOOL, None, False), False), None),
        [{1: True}, {}, {-2: False, 3: True}],
    ),
    "inners": ((12, TType.LIST, "inners", (TType.STRUCT, INNER_SPEC, False), None), [ThriftInner(1), ThriftInner()]),
    "by_number": ((500, TType.MAP, "by_number", (TType.I32, None, TType.STRUCT, INNER_SPEC, False), None),
                  {5: ThriftInner(text="five")}),
    "last": ((32000, TType.STRING, "last", "UTF8", None), "the end"),
}


class ThriftExtendedPayload(TBase):
    """A later version of the struct with fields of every type we do not know."""

    __slots__ = ThriftCollectorPayload.__slots__ + tuple(EXTRA_FIELDS)
    thrift_spec = _spec(entry for entry, _ in EXTRA_FIELDS.values())

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))


THRIFT_PROTOCOLS = {
    "TBinaryProtocol": TBinaryProtocol.TBinaryProtocolFactory(),
    "TBinaryProtocolAccelerated": TBinaryProtocol.TBinaryProtocolAcceleratedFactory(),
}


def to_thrift(p, cls=ThriftCollectorPayload, **extra):
    return cls(**{FIELD_IDS[a][1]: getattr(p, a) for a in ATTRS}, **extra)


def from_thrift(t):
    return CollectorPayload(**{a: getattr(t, FIELD_IDS[a][1]) for a in ATTRS})


@pytest.mark.parametrize("protocol", list(THRIFT_PROTOCOLS))
def test_decode_what_the_thrift_package_writes(codec, protocol):
    p = full_payload()
    data = TSerialization.serialize(to_thrift(p), THRIFT_PROTOCOLS[protocol])
    assert data != codec.encode_collector_payload(p)  # thrift writes fields by id: 100 ... 31337
    assert sorted(data) == sorted(codec.encode_collector_payload(p))  # ... the same fields
    assert codec.decode_collector_payload(data) == p


@pytest.mark.parametrize("protocol", list(THRIFT_PROTOCOLS))
def test_the_thrift_package_reads_what_we_write(codec, protocol):
    p = full_payload()
    t = TSerialization.deserialize(
        ThriftCollectorPayload(), codec.encode_collector_payload(p), THRIFT_PROTOCOLS[protocol]
    )
    assert from_thrift(t) == p


@pytest.mark.parametrize("protocol", list(THRIFT_PROTOCOLS))
def test_unknown_fields_written_by_the_thrift_package_are_skipped(codec, protocol):
    p = full_payload()
    extended = to_thrift(p, ThriftExtendedPayload, **{k: v for k, (_, v) in EXTRA_FIELDS.items()})
    data = TSerialization.serialize(extended, THRIFT_PROTOCOLS[protocol])
    # the thrift package reads its own bytes back (so they hold what we think)
    assert TSerialization.deserialize(ThriftExtendedPayload(), data, THRIFT_PROTOCOLS[protocol]) == extended
    assert codec.decode_collector_payload(data) == p
    # and an old reader skips nothing it needs when we wrote only known fields
    assert codec.decode_collector_payload(
        TSerialization.serialize(to_thrift(CollectorPayload(), ThriftExtendedPayload, flag=False, inners=[]),
                                 THRIFT_PROTOCOLS[protocol])
    ) == CollectorPayload()


@given(p=payloads(strings=st.text(max_size=30)))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_property_thrift_package_interop(codec, p):
    factory = THRIFT_PROTOCOLS["TBinaryProtocolAccelerated"]
    theirs = TSerialization.serialize(to_thrift(p), factory)
    assert codec.decode_collector_payload(theirs) == p
    back = TSerialization.deserialize(ThriftCollectorPayload(), codec.encode_collector_payload(p), factory)
    assert from_thrift(back) == p


# --------------------------------------------------------------- choosing the implementation


def test_exports_come_from_the_chosen_implementation():
    impls = ext.implementations()
    assert ext.IMPLEMENTATION in impls
    assert "python" in impls
    chosen = impls[ext.IMPLEMENTATION]
    assert ext.encode_collector_payload is chosen.encode_collector_payload
    assert ext.decode_collector_payload is chosen.decode_collector_payload
    names = {name: set(vars(impl)) for name, impl in impls.items()}
    assert all(n == names["python"] for n in names.values())
    for name in ("CollectorPayload", "ThriftDecodeError", "SCHEMA", "IMPLEMENTATION",
                 "implementations", "encode_collector_payload", "decode_collector_payload"):
        assert name in ext.__all__


def test_require_extensions_means_compiled():
    if not env_flag("SNOWMELT_REQUIRE_EXTENSIONS") or env_flag("SNOWMELT_NO_EXTENSIONS"):
        pytest.skip("only with SNOWMELT_REQUIRE_EXTENSIONS=1 (and no SNOWMELT_NO_EXTENSIONS)")
    assert ext.IMPLEMENTATION == "compiled"
    assert "compiled" in ext.implementations()


def test_compiled_decoder_sets_slots_directly():
    if "compiled" not in ext.implementations():
        pytest.skip("compiled extension not available")
    compiled = importlib.import_module("ext._thrift")
    # the fast path is on: if CollectorPayload ever stops being a plain
    # __slots__ class, this says so (the decoder would still work, slower)
    assert compiled._direct_slots()
    data = compiled.encode_collector_payload(full_payload())
    fast = compiled.decode_collector_payload(data)
    compiled._use_direct_slots(False)
    try:
        assert not compiled._direct_slots()
        slow = compiled.decode_collector_payload(data)
    finally:
        compiled._use_direct_slots(True)
    assert compiled._direct_slots()
    assert fast == slow == full_payload()
    assert type(fast) is type(slow) is CollectorPayload


def _run_python(code, **env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWMELT_")}
    env.update(env_overrides)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_no_extensions_env_gives_pure_python():
    result = _run_python(
        "import warnings; warnings.simplefilter('error')\n"
        "import ext; print(ext.IMPLEMENTATION, sorted(ext.implementations()))",
        SNOWMELT_NO_EXTENSIONS="1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python ['python']"


BREAK_COMPILED = "import sys; sys.modules['ext._thrift'] = None  # as if it were not built\n"


def test_missing_compiled_module_falls_back_loudly():
    result = _run_python(
        BREAK_COMPILED
        + "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import ext\n"
        "print(ext.IMPLEMENTATION)\n"
        "print([w.category.__name__ for w in caught])\n"
        "print(caught[0].message)\n"
    )
    assert result.returncode == 0, result.stderr
    implementation, categories, message = result.stdout.strip().split("\n", 2)
    assert implementation == "python"
    assert categories == "['RuntimeWarning']"
    assert "ext._thrift" in message and "pure-Python" in message
    assert "ext._thrift" in result.stderr  # the logger's warning (last-resort handler)


def test_missing_compiled_module_with_require_raises():
    result = _run_python(
        BREAK_COMPILED + "import ext\n", SNOWMELT_REQUIRE_EXTENSIONS="1"
    )
    assert result.returncode != 0
    assert "ImportError: SNOWMELT_REQUIRE_EXTENSIONS=1 but compiled extension ext._thrift" in result.stderr
