# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Thrift binary-protocol codec for ``CollectorPayload``, compiled.

The twin of ``ext/thrift_py.py`` (read its docstring for the wire format and the
rules): same functions, same results, same exceptions and messages.  The
difference is speed: the decoder walks the input as a ``const unsigned char*``
with explicit bounds checks (the build turns Cython's own off), and the encoder
measures every field first and then fills one pre-sized ``bytes`` object.

Every read is preceded by a check against ``end``; every length or element
count is checked against the bytes left before it is used, so neither function
reads out of bounds nor allocates more than the input could hold.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_AsEncodedString, PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport int16_t, int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy

from .payload import CollectorPayload, ThriftDecodeError

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    bint PyUnicode_Check(object o)
    bint PyBytes_Check(object o)
    bint PyByteArray_Check(object o)
    bint PyList_Check(object o)
    bint PyTuple_Check(object o)
    bint PyBytes_CheckExact(object o)

__all__ = ["encode_collector_payload", "decode_collector_payload", "MAX_DEPTH"]

MAX_DEPTH = 64

cdef enum:
    C_MAX_DEPTH = 64
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
    I32_MAX = 0x7FFFFFFF
    N_FIELDS = 14
    F_HEADERS = 10
    F_TIMESTAMP = 2


cdef dict TYPE_NAMES = {
    0: "stop", 1: "void", 2: "bool", 3: "byte", 4: "double", 6: "i16", 8: "i32",
    10: "i64", 11: "string", 12: "struct", 13: "map", 14: "set", 15: "list", 16: "uuid",
}

# Least bytes a value of each type takes (0: not a value type), and the exact
# size of fixed-size types (0: variable).
cdef int MIN_SIZE[17]
cdef int FIXED_SIZE[17]
MIN_SIZE[:] = [0, 0, 1, 1, 8, 0, 2, 0, 4, 0, 8, 4, 1, 6, 5, 5, 16]
FIXED_SIZE[:] = [0, 0, 1, 1, 8, 0, 2, 0, 4, 0, 8, 0, 0, 0, 0, 0, 16]


# Field slots, in IDL order: index into the per-field arrays below.
cdef int16_t FIELD_IDS[N_FIELDS]
FIELD_IDS[:] = [31337, 100, 200, 210, 220, 300, 310, 320, 330, 340, 350, 360, 400, 410]
cdef tuple ATTRS = (
    "schema", "ip_address", "timestamp", "encoding", "collector", "user_agent",
    "referer_uri", "path", "querystring", "body", "headers", "content_type",
    "hostname", "network_user_id",
)
cdef tuple THRIFT_NAMES = (
    "schema", "ipAddress", "timestamp", "encoding", "collector", "userAgent",
    "refererUri", "path", "querystring", "body", "headers", "contentType",
    "hostname", "networkUserId",
)
cdef tuple WHAT = tuple("CollectorPayload." + a for a in ATTRS)


cdef inline int field_index(int fid) noexcept nogil:
    """Slot index of a known field id, or -1."""
    if fid == 31337: return 0
    if fid == 100: return 1
    if fid == 200: return 2
    if fid == 210: return 3
    if fid == 220: return 4
    if fid == 300: return 5
    if fid == 310: return 6
    if fid == 320: return 7
    if fid == 330: return 8
    if fid == 340: return 9
    if fid == 350: return 10
    if fid == 360: return 11
    if fid == 400: return 12
    if fid == 410: return 13
    return -1


cdef inline int expected_type(int index) noexcept nogil:
    if index == F_TIMESTAMP:
        return T_I64
    if index == F_HEADERS:
        return T_LIST
    return T_STRING


# ---------------------------------------------------------------- big-endian


cdef inline uint32_t be32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cdef inline int64_t be64(const unsigned char* p) noexcept nogil:
    return <int64_t>((<uint64_t>be32(p) << 32) | <uint64_t>be32(p + 4))


cdef inline void put16(unsigned char* w, int v) noexcept nogil:
    w[0] = <unsigned char>((v >> 8) & 0xFF)
    w[1] = <unsigned char>(v & 0xFF)


cdef inline void put32(unsigned char* w, uint32_t v) noexcept nogil:
    w[0] = <unsigned char>(v >> 24)
    w[1] = <unsigned char>(v >> 16)
    w[2] = <unsigned char>(v >> 8)
    w[3] = <unsigned char>v


cdef inline void put64(unsigned char* w, uint64_t v) noexcept nogil:
    put32(w, <uint32_t>(v >> 32))
    put32(w + 4, <uint32_t>v)


# ---------------------------------------------------------------- decoding


cdef object truncated(str what, Py_ssize_t pos, Py_ssize_t need, Py_ssize_t end):
    return ThriftDecodeError(
        f"truncated input: {what} at offset {pos} needs {need} bytes, {end - pos} left"
    )


cdef str type_name(int ttype):
    return TYPE_NAMES.get(ttype, "unknown")


cdef inline bint is_value_type(int ttype) noexcept nogil:
    return 0 <= ttype <= 16 and MIN_SIZE[ttype] != 0


cdef int check_value_type(int ttype, Py_ssize_t pos) except -1:
    if not is_value_type(ttype):
        raise ThriftDecodeError(f"invalid Thrift type {ttype} at offset {pos}")
    return 0


cdef int check_count(str kind, int64_t n, int64_t min_size, Py_ssize_t pos, Py_ssize_t body,
                     Py_ssize_t end) except -1:
    if n < 0:
        raise ThriftDecodeError(f"negative {kind} size {n} at offset {pos}")
    if n * min_size > end - body:
        raise ThriftDecodeError(
            f"{kind} of {n} elements at offset {pos} needs at least {n * min_size} bytes, "
            f"{end - body} left"
        )
    return 0


cdef inline Py_ssize_t string_span(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                                   Py_ssize_t* n_out) except -1:
    """Check the string whose length prefix is at ``pos``; return its first byte's offset."""
    cdef int32_t n
    if end - pos < 4:
        raise truncated("string length", pos, 4, end)
    n = <int32_t>be32(buf + pos)
    if n < 0:
        raise ThriftDecodeError(f"negative string length {n} at offset {pos}")
    if n > end - pos - 4:
        raise ThriftDecodeError(
            f"string length {n} at offset {pos} exceeds the {end - pos - 4} bytes left"
        )
    n_out[0] = n
    return pos + 4


cdef inline str read_string(const unsigned char* buf, Py_ssize_t* pos, Py_ssize_t end):
    cdef Py_ssize_t n
    cdef Py_ssize_t start = string_span(buf, pos[0], end, &n)
    pos[0] = start + n
    # bytes that are not UTF-8 become U+FFFD, as Java's String (Snowplow's reader) makes them (an encoded
    # surrogate, ED A0..BF .., is one U+FFFD: ext.errors' "snowmelt-java-utf8")
    return PyUnicode_DecodeUTF8(<const char*>buf + start, n, "snowmelt-java-utf8")


cdef Py_ssize_t skip(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end, int ttype,
                     int depth) except -1:
    """Skip one value of (valid) type ``ttype`` at ``pos``; return the next offset."""
    cdef int size = FIXED_SIZE[ttype]
    cdef int ftype, ktype, vtype, etype
    cdef int32_t count
    cdef Py_ssize_t n, i
    cdef str kind
    if size:
        if end - pos < size:
            raise truncated(f"{TYPE_NAMES[ttype]} value", pos, size, end)
        return pos + size
    if ttype == T_STRING:
        pos = string_span(buf, pos, end, &n)
        return pos + n
    if depth > C_MAX_DEPTH:
        raise ThriftDecodeError(f"nesting deeper than {C_MAX_DEPTH} levels at offset {pos}")
    if ttype == T_STRUCT:
        while True:
            if pos >= end:
                raise ThriftDecodeError(
                    f"missing STOP: input ended at offset {pos} inside a nested struct"
                )
            ftype = buf[pos]
            if ftype == T_STOP:
                return pos + 1
            if end - pos < 3:
                raise truncated("field header", pos, 3, end)
            check_value_type(ftype, pos)
            pos = skip(buf, pos + 3, end, ftype, depth + 1)
    if ttype == T_MAP:
        if end - pos < 6:
            raise truncated("map header", pos, 6, end)
        ktype = buf[pos]
        vtype = buf[pos + 1]
        count = <int32_t>be32(buf + pos + 2)
        check_value_type(ktype, pos)
        check_value_type(vtype, pos + 1)
        check_count("map", count, MIN_SIZE[ktype] + MIN_SIZE[vtype], pos, pos + 6, end)
        pos += 6
        for i in range(count):
            pos = skip(buf, pos, end, ktype, depth + 1)
            pos = skip(buf, pos, end, vtype, depth + 1)
        return pos
    # T_SET or T_LIST
    kind = "set" if ttype == T_SET else "list"
    if end - pos < 5:
        raise truncated(f"{kind} header", pos, 5, end)
    etype = buf[pos]
    count = <int32_t>be32(buf + pos + 1)
    check_value_type(etype, pos)
    check_count(kind, count, MIN_SIZE[etype], pos, pos + 5, end)
    pos += 5
    for i in range(count):
        pos = skip(buf, pos, end, etype, depth + 1)
    return pos


cdef list read_headers(const unsigned char* buf, Py_ssize_t* pos_io, Py_ssize_t end):
    """Read the list<string> whose list header is at ``pos_io[0]``."""
    cdef Py_ssize_t pos = pos_io[0]
    cdef int etype
    cdef int32_t count
    cdef Py_ssize_t i
    cdef list items
    if end - pos < 5:
        raise truncated("list header", pos, 5, end)
    etype = buf[pos]
    count = <int32_t>be32(buf + pos + 1)
    if etype != T_STRING:
        raise ThriftDecodeError(
            f"field 350 (headers) at offset {pos - 3} is a list of type {etype} "
            f"({type_name(etype)}), expected a list of 11 (string)"
        )
    check_count("list", count, 4, pos, pos + 5, end)
    pos += 5
    items = [None] * count  # count * 4 <= bytes left: bounded by the input
    for i in range(count):
        items[i] = read_string(buf, &pos, end)
    pos_io[0] = pos
    return items


# Building the result.  CollectorPayload is a plain class with __slots__; each
# slot is a member descriptor holding the offset of its PyObject* in the
# instance.  When the class looks exactly like that (checked once, here), the
# decoder allocates the instance as object.__new__ would and stores the 14
# references at those offsets, skipping 14 attribute look-ups; otherwise it
# calls the constructor.

cdef extern from *:
    """
    #include "structmember.h"

    /* Offset of the writable object slot a member descriptor describes, or -1. */
    static Py_ssize_t snowmelt_slot_offset(PyObject *descr) {
        PyMemberDef *m;
        if (Py_TYPE(descr) != &PyMemberDescr_Type) return -1;
        m = ((PyMemberDescrObject *)descr)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) return -1;
        return m->offset;
    }

    static int snowmelt_plain_alloc(PyObject *type) {
        PyTypeObject *t = (PyTypeObject *)type;
        return t->tp_alloc == PyType_GenericAlloc && t->tp_new == PyBaseObject_Type.tp_new
            && !(t->tp_flags & Py_TPFLAGS_IS_ABSTRACT);
    }

    static PyObject *snowmelt_alloc(PyObject *type) {
        return PyType_GenericAlloc((PyTypeObject *)type, 0);
    }

    static void snowmelt_set_slot(PyObject *obj, Py_ssize_t offset, PyObject *value) {
        PyObject **slot = (PyObject **)((char *)obj + offset);
        PyObject *old = *slot;
        Py_INCREF(value);
        *slot = value;
        Py_XDECREF(old);
    }
    """
    Py_ssize_t snowmelt_slot_offset(object descr)
    bint snowmelt_plain_alloc(object type)
    void snowmelt_set_slot(object obj, Py_ssize_t offset, object value)
    object snowmelt_alloc(object type)

cdef Py_ssize_t SLOT_OFFSETS[N_FIELDS]
cdef bint slots_ok = False


cdef bint find_slots() except -1:
    cls = CollectorPayload
    if type(cls) is not type or tuple(cls.__slots__) != ATTRS or not snowmelt_plain_alloc(cls):
        return False
    basicsize = cls.__basicsize__
    for k, name in enumerate(ATTRS):
        d = cls.__dict__.get(name)
        if d is None:
            return False
        offset = snowmelt_slot_offset(d)
        if offset <= 0 or offset + <Py_ssize_t>sizeof(void*) > basicsize:
            return False
        SLOT_OFFSETS[k] = offset
    return True


slots_ok = find_slots()


def _direct_slots():
    """Whether the decoder builds results by setting slots directly (tests)."""
    return slots_ok


def _use_direct_slots(bint on):
    """Switch the direct-slot fast path off, or back on if available (tests)."""
    global slots_ok
    slots_ok = on and find_slots()


cdef inline object new_payload():
    return snowmelt_alloc(CollectorPayload)


cdef inline void set_slot(object p, int k, object value):
    snowmelt_set_slot(p, SLOT_OFFSETS[k], value)


cdef object decode(const unsigned char* buf, Py_ssize_t end):
    cdef Py_ssize_t pos = 0
    cdef int ftype, fid, index, expected
    cdef object schema = None, ip_address = None, timestamp = None, encoding = None
    cdef object collector = None, user_agent = None, referer_uri = None, path = None
    cdef object querystring = None, body = None, headers = None, content_type = None
    cdef object hostname = None, network_user_id = None
    cdef object value
    while True:
        if pos >= end:
            raise ThriftDecodeError(
                f"missing STOP: input ended at offset {pos} inside the CollectorPayload struct"
            )
        ftype = buf[pos]
        if ftype == T_STOP:
            pos += 1
            break
        if end - pos < 3:
            raise truncated("field header", pos, 3, end)
        fid = <int16_t>((buf[pos + 1] << 8) | buf[pos + 2])
        index = field_index(fid)
        if index < 0:
            check_value_type(ftype, pos)
            pos = skip(buf, pos + 3, end, ftype, 1)
            continue
        expected = expected_type(index)
        if ftype != expected:
            raise ThriftDecodeError(
                f"field {fid} ({THRIFT_NAMES[index]}) at offset {pos} has Thrift type {ftype} "
                f"({type_name(ftype)}), expected {expected} ({TYPE_NAMES[expected]})"
            )
        pos += 3
        if expected == T_STRING:
            value = read_string(buf, &pos, end)
            if index == 0: schema = value
            elif index == 1: ip_address = value
            elif index == 3: encoding = value
            elif index == 4: collector = value
            elif index == 5: user_agent = value
            elif index == 6: referer_uri = value
            elif index == 7: path = value
            elif index == 8: querystring = value
            elif index == 9: body = value
            elif index == 11: content_type = value
            elif index == 12: hostname = value
            else: network_user_id = value
        elif expected == T_I64:
            if end - pos < 8:
                raise truncated("i64 value", pos, 8, end)
            timestamp = be64(buf + pos)
            pos += 8
        else:
            headers = read_headers(buf, &pos, end)
    if pos != end:
        raise ThriftDecodeError(
            f"trailing data: {end - pos} bytes after the end of the CollectorPayload struct "
            f"at offset {pos}"
        )
    if slots_ok:
        p = new_payload()
        set_slot(p, 0, schema)
        set_slot(p, 1, ip_address)
        set_slot(p, 2, timestamp)
        set_slot(p, 3, encoding)
        set_slot(p, 4, collector)
        set_slot(p, 5, user_agent)
        set_slot(p, 6, referer_uri)
        set_slot(p, 7, path)
        set_slot(p, 8, querystring)
        set_slot(p, 9, body)
        set_slot(p, 10, headers)
        set_slot(p, 11, content_type)
        set_slot(p, 12, hostname)
        set_slot(p, 13, network_user_id)
        return p
    return CollectorPayload(
        schema=schema, ip_address=ip_address, timestamp=timestamp, encoding=encoding,
        collector=collector, user_agent=user_agent, referer_uri=referer_uri, path=path,
        querystring=querystring, body=body, headers=headers, content_type=content_type,
        hostname=hostname, network_user_id=network_user_id,
    )


def decode_collector_payload(data):
    """Decode one Thrift-binary ``CollectorPayload`` from a bytes-like object.

    See ``ext.thrift_py.decode_collector_payload``; this behaves the same.
    """
    if type(data) is not bytes:
        data = memoryview(data).tobytes()
    return decode(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


# ---------------------------------------------------------------- encoding


cdef struct Span:
    const char* ptr
    Py_ssize_t n


cdef str describe(int k, Py_ssize_t i):
    """Name of the value being encoded, for error messages."""
    if i < 0:
        return WHAT[k]
    return f"CollectorPayload.headers[{i}]"


cdef int span_of(object value, Span* s, list keep, int k, Py_ssize_t i) except -1:
    """Point ``s`` at the UTF-8 (or raw) bytes of a string value (field ``k``,
    or header ``i`` when ``i >= 0``)."""
    cdef object encoded
    if PyUnicode_Check(value):
        if PyUnicode_IS_ASCII(value):
            s.ptr = PyUnicode_AsUTF8AndSize(value, &s.n)  # no copy for ASCII
        else:
            encoded = PyUnicode_AsEncodedString(value, "utf-8", "surrogateescape")
            keep.append(encoded)
            s.ptr = PyBytes_AS_STRING(encoded)
            s.n = PyBytes_GET_SIZE(encoded)
    elif PyBytes_Check(value):
        s.ptr = PyBytes_AS_STRING(value)
        s.n = PyBytes_GET_SIZE(value)
    elif PyByteArray_Check(value):
        s.ptr = PyByteArray_AS_STRING(value)
        s.n = PyByteArray_GET_SIZE(value)
    else:
        raise TypeError(f"{describe(k, i)} must be str or bytes, not {type(value).__name__}")
    if s.n > I32_MAX:
        raise ValueError(
            f"{describe(k, i)} is {s.n} bytes long, more than a Thrift string can hold"
        )
    return 0


cdef inline unsigned char* put_string(unsigned char* w, int fid, Span* s) noexcept nogil:
    w[0] = T_STRING
    put16(w + 1, fid)
    put32(w + 3, <uint32_t>s.n)
    memcpy(w + 7, s.ptr, s.n)
    return w + 7 + s.n


def encode_collector_payload(p):
    """Encode ``p`` (a ``CollectorPayload``) with Thrift's binary protocol.

    See ``ext.thrift_py.encode_collector_payload``; this behaves the same.
    """
    # Read every attribute first: after this no Python code runs until the
    # output is written, so the buffers the spans point into stay put.
    cdef list values = [getattr(p, a) for a in ATTRS]
    cdef list keep = []  # temporary UTF-8 encodings the spans point into
    cdef Span spans[N_FIELDS]
    cdef Span* header_spans = NULL
    cdef bint present[N_FIELDS]
    cdef Py_ssize_t total = 1  # STOP
    cdef Py_ssize_t n_headers = 0, i
    cdef int k
    cdef int64_t ts = 0
    cdef object value
    cdef tuple headers
    cdef unsigned char* w
    cdef bytes out

    try:
        # Pass 1: check every value, find its bytes, add up the size.
        for k in range(N_FIELDS):
            value = values[k]
            present[k] = value is not None
            if not present[k]:
                continue
            if k == F_TIMESTAMP:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise TypeError(
                        f"CollectorPayload.timestamp must be int, not {type(value).__name__}"
                    )
                if not (-0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF):
                    raise ValueError(
                        f"CollectorPayload.timestamp {value} does not fit in a Thrift i64"
                    )
                ts = value
                total += 11
            elif k == F_HEADERS:
                if not (PyList_Check(value) or PyTuple_Check(value)):
                    raise TypeError(
                        "CollectorPayload.headers must be a list or tuple, "
                        f"not {type(value).__name__}"
                    )
                headers = tuple(value)  # a snapshot the spans can rely on
                n_headers = len(headers)
                total += 8
                if n_headers:
                    header_spans = <Span*>PyMem_Malloc(n_headers * sizeof(Span))
                    if header_spans == NULL:
                        raise MemoryError()
                    for i in range(n_headers):
                        span_of(headers[i], &header_spans[i], keep, k, i)
                        total += 4 + header_spans[i].n
            else:
                span_of(value, &spans[k], keep, k, -1)
                total += 7 + spans[k].n

        # Pass 2: write into one bytes object of exactly that size.
        out = PyBytes_FromStringAndSize(NULL, total)
        w = <unsigned char*>PyBytes_AS_STRING(out)
        for k in range(N_FIELDS):
            if not present[k]:
                continue
            if k == F_TIMESTAMP:
                w[0] = T_I64
                put16(w + 1, FIELD_IDS[k])
                put64(w + 3, <uint64_t>ts)
                w += 11
            elif k == F_HEADERS:
                w[0] = T_LIST
                put16(w + 1, FIELD_IDS[k])
                w[3] = T_STRING
                put32(w + 4, <uint32_t>n_headers)
                w += 8
                for i in range(n_headers):
                    put32(w, <uint32_t>header_spans[i].n)
                    memcpy(w + 4, header_spans[i].ptr, header_spans[i].n)
                    w += 4 + header_spans[i].n
            else:
                w = put_string(w, FIELD_IDS[k], &spans[k])
        w[0] = T_STOP
        return out
    finally:
        PyMem_Free(header_spans)
