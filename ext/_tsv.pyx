# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Enriched-TSV row assembly and field-length checks, compiled.

The twin of ``ext/tsv_py.py`` (read its docstring for the rules): same
functions, same results, same exceptions and messages, and the same values are
handed to ``fallback``.  Strings are scanned in place (``PyUnicode_DATA``) for
tab/newline/CR; epoch-millisecond timestamps are converted with integer civil
calendar arithmetic (proleptic Gregorian, as ``datetime``) into a small ASCII
buffer, and so are the digits of an int within 64 bits (``str`` for a larger
one); the text of a float is kept by its bits for the next float of the same
bits; the row is written once into a ``str`` of its length.
"""

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

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcpy

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyUnicode_Check(object o)
    bint PyLong_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    Py_UCS4 PyUnicode_MAX_CHAR_VALUE(object o)
    void PyUnicode_WRITE(int kind, void* data, Py_ssize_t index, Py_UCS4 value)
    Py_ssize_t PyUnicode_CopyCharacters(object to, Py_ssize_t to_start, object source, Py_ssize_t from_start,
                                        Py_ssize_t how_many) except -1

KIND_STRING = 0
KIND_INT = 1
KIND_BOOL = 2
KIND_FLOAT = 3
KIND_DECIMAL = 4
KIND_TIMESTAMP = 5
KIND_JSON = 6

cdef enum:
    _K_STRING = 0
    _K_INT = 1
    _K_BOOL = 2
    _K_FLOAT = 3
    _K_DECIMAL = 4
    _K_TIMESTAMP = 5
    _KIND_COUNT = 7

# epoch milliseconds of 0001-01-01 00:00:00.000 and 9999-12-31 23:59:59.999
cdef long long _MIN_MS = -62135596800000LL
cdef long long _MAX_MS = 253402300799999LL
cdef long long _MS_PER_DAY = 86400000LL

#: the text of the floats written last, by their bits (``_FLOAT_SLOTS`` slots, each the last float of its bits'
#: hash): the same few coordinates (``geo_latitude``/``geo_longitude`` of a visitor's address) come back in
#: event after event, and ``repr`` of a float is a shortest-digits search each time
cdef enum:
    _FLOAT_SLOTS = 256
cdef uint64_t _float_bits[_FLOAT_SLOTS]
cdef list _float_texts = [None] * _FLOAT_SLOTS

cdef str _ONE = "1"
cdef str _ZERO = "0"


cdef _check_args(values, other, str other_name):
    if not isinstance(values, tuple):
        raise TypeError(f"values must be a tuple, not {type(values).__name__}")
    if not isinstance(other, tuple):
        raise TypeError(f"{other_name} must be a tuple, not {type(other).__name__}")
    if len(<tuple>values) != len(<tuple>other):
        raise ValueError(f"{len(<tuple>values)} values but {len(<tuple>other)} {other_name}")


cdef inline bint _needs_escape(str s):
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s), i
    cdef int kind = PyUnicode_KIND(s)
    cdef void* data = PyUnicode_DATA(s)
    cdef const unsigned char* b
    cdef Py_UCS4 c
    if kind == 1:
        # memchr is vectorised by libc: three passes beat one byte loop on long values
        b = <const unsigned char*>data
        return (memchr(b, 9, n) != NULL or memchr(b, 10, n) != NULL
                or memchr(b, 13, n) != NULL)
    for i in range(n):
        c = PyUnicode_READ(kind, data, i)
        if c <= 13 and (c == 9 or c == 10 or c == 13):
            return True
    return False


cdef inline str _ascii(const char* chars, Py_ssize_t n):
    """A ``str`` of ``n`` ASCII characters, copied in (what ``PyUnicode_FromStringAndSize`` makes, without
    its UTF-8 decoder)."""
    cdef str text = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(text), chars, n)
    return text


cdef inline void _put(char* buf, int pos, long long v, int width) noexcept:
    cdef int k
    for k in range(width - 1, -1, -1):
        buf[pos + k] = <char>(48 + v % 10)
        v //= 10


cdef str _format_epoch_ms(long long ms):
    """``yyyy-MM-dd HH:mm:ss.SSS`` UTC; ``ms`` within [_MIN_MS, _MAX_MS]."""
    cdef long long days = ms / _MS_PER_DAY
    cdef long long rem = ms % _MS_PER_DAY
    cdef long long z, era, doe, yoe, y, doy, mp, d, m
    cdef char buf[23]
    if rem < 0:
        rem += _MS_PER_DAY
        days -= 1
    # days since 1970-01-01 -> civil date (H. Hinnant's days_to_civil)
    z = days + 719468
    era = (z if z >= 0 else z - 146096) / 146097
    doe = z - era * 146097
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    mp = (5 * doy + 2) / 153
    d = doy - (153 * mp + 2) / 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    _put(buf, 0, y, 4)
    buf[4] = b'-'
    _put(buf, 5, m, 2)
    buf[7] = b'-'
    _put(buf, 8, d, 2)
    buf[10] = b' '
    _put(buf, 11, rem / 3600000, 2)
    buf[13] = b':'
    _put(buf, 14, (rem / 60000) % 60, 2)
    buf[16] = b':'
    _put(buf, 17, (rem / 1000) % 60, 2)
    buf[19] = b'.'
    _put(buf, 20, rem % 1000, 3)
    return _ascii(buf, 23)


cdef str _format_int(long long v):
    """``str(v)``, written into a small ASCII buffer (no digit groups, no intermediate objects)."""
    cdef char buf[20]
    cdef int pos = 20
    cdef unsigned long long u = (<unsigned long long>0 - <unsigned long long>v) if v < 0 else <unsigned long long>v
    while True:
        pos -= 1
        buf[pos] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    if v < 0:
        pos -= 1
        buf[pos] = b'-'
    return _ascii(buf + pos, 20 - pos)


cdef object _checked_kinds = None  # the kinds tuple checked last (held: its identity is its contents)
cdef bytes _kind_codes = b""  # its kinds, a byte each


cdef bytes _codes_of_kinds(tuple ks):
    """The kinds as bytes, every one checked; the last tuple's are kept (the stage passes the same each row)."""
    global _checked_kinds, _kind_codes
    if ks is _checked_kinds:
        return _kind_codes
    cdef Py_ssize_t n = len(ks), i
    cdef bytearray codes = bytearray(n)
    cdef long long kind
    cdef int overflow
    cdef object kobj
    for i in range(n):  # every kind is checked before anything is formatted
        kobj = ks[i]
        if not PyLong_CheckExact(kobj):
            raise ValueError(f"unknown field kind {kobj!r} at index {i}")
        kind = PyLong_AsLongLongAndOverflow(kobj, &overflow)
        if overflow or kind < 0 or kind >= _KIND_COUNT:
            raise ValueError(f"unknown field kind {kobj!r} at index {i}")
        codes[i] = <unsigned char>kind
    result = bytes(codes)
    _checked_kinds, _kind_codes = ks, result
    return result


def join_tsv(values, kinds, fallback):
    """One enriched-TSV row from ``values`` formatted by ``kinds`` (see ``ext/tsv_py.py``)."""
    _check_args(values, kinds, "kinds")
    cdef tuple vals = <tuple>values
    cdef bytes codes = _codes_of_kinds(<tuple>kinds)
    cdef const unsigned char* kc = codes
    cdef Py_ssize_t n = len(vals), i
    cdef list out = [None] * n
    cdef object value, piece
    cdef long long kind, ms, number
    cdef int overflow
    cdef Py_ssize_t length = n - 1 if n else 0  # the tabs
    cdef Py_UCS4 maxchar = 127, most
    for i in range(n):
        value = vals[i]
        if value is None:  # an empty field: its place in ``out`` stays None, which _tab_joined skips
            continue
        kind = kc[i]
        if PyUnicode_CheckExact(value):
            if _needs_escape(<str>value):
                piece = (<str>value).replace("\t", " ").replace("\n", " ").replace("\r", " ")
            else:
                piece = value
        elif PyLong_CheckExact(value):
            if kind == _K_STRING or kind == _K_INT or kind == _K_DECIMAL:
                number = PyLong_AsLongLongAndOverflow(value, &overflow)
                piece = str(value) if overflow else _format_int(number)
            elif kind == _K_BOOL and (value == 1 or value == 0):
                piece = _ONE if value == 1 else _ZERO
            elif kind == _K_TIMESTAMP:
                ms = PyLong_AsLongLongAndOverflow(value, &overflow)
                if not overflow and _MIN_MS <= ms <= _MAX_MS:
                    piece = _format_epoch_ms(ms)
                else:
                    piece = fallback(i, value)
            else:
                piece = fallback(i, value)
        elif (value is True or value is False) and (kind == _K_INT or kind == _K_BOOL):
            piece = _ONE if value is True else _ZERO
        elif PyFloat_CheckExact(value) and (kind == _K_FLOAT or kind == _K_DECIMAL):
            piece = _float_text(value)
        else:
            piece = fallback(i, value)
        if not PyUnicode_Check(piece):  # what str.join says of it
            raise TypeError(f"sequence item {i}: expected str instance, {type(piece).__name__} found")
        length += PyUnicode_GET_LENGTH(piece)
        most = PyUnicode_MAX_CHAR_VALUE(piece)
        if most > maxchar:
            maxchar = most
        out[i] = piece
    return _tab_joined(out, length, maxchar)


cdef str _float_text(object value):
    """``repr`` of a float, from the slot of its bits when the last float there had the same bits."""
    cdef double number = <double>value
    cdef uint64_t bits
    memcpy(&bits, &number, sizeof(double))
    cdef Py_ssize_t slot = <Py_ssize_t>((bits ^ (bits >> 29) ^ (bits >> 47)) & (_FLOAT_SLOTS - 1))
    cdef object text = _float_texts[slot]
    if text is not None and _float_bits[slot] == bits:
        return <str>text
    text = repr(value)
    _float_bits[slot] = bits
    _float_texts[slot] = text
    return <str>text


cdef str _tab_joined(list pieces, Py_ssize_t length, Py_UCS4 maxchar):
    """``"\t".join(pieces)``, given its length and its largest character's bound: the pieces copied into a new
    ``str`` of that length, of the width the widest piece needs (so the same ``str`` the join makes); a piece
    that is None is an empty field."""
    cdef object row = PyUnicode_New(length, maxchar)
    cdef int kind = PyUnicode_KIND(row), piece_kind
    cdef char* data = <char*>PyUnicode_DATA(row)
    cdef Py_ssize_t at = 0, size, i
    cdef object piece
    for i in range(len(pieces)):
        if i:
            PyUnicode_WRITE(kind, data, at, 9)  # a tab
            at += 1
        piece = pieces[i]
        if piece is None:
            continue
        size = PyUnicode_GET_LENGTH(piece)
        if size == 0:
            continue
        piece_kind = PyUnicode_KIND(piece)
        if piece_kind == kind:
            memcpy(data + at * kind, PyUnicode_DATA(piece), size * kind)
        else:
            PyUnicode_CopyCharacters(row, at, piece, 0, size)
        at += size
    return row


cdef object _checked_limits = None  # the limits tuple read last (held: its identity is its contents)
cdef bytes _limit_values = b""  # its limits as C long longs, -1 for none


cdef bytes _values_of_limits(tuple ls):
    global _checked_limits, _limit_values
    if ls is _checked_limits:
        return _limit_values
    cdef Py_ssize_t n = len(ls), i
    cdef bytearray raw = bytearray(n * sizeof(long long))
    cdef long long* at = <long long*><char*>raw
    cdef long long limit
    cdef int overflow
    cdef object lobj
    for i in range(n):
        lobj = ls[i]
        if not PyLong_CheckExact(lobj):
            raise TypeError(f"limit at index {i} must be an int, not {type(lobj).__name__}")
        limit = PyLong_AsLongLongAndOverflow(lobj, &overflow)
        at[i] = -1 if overflow != 0 or limit < 0 else limit  # past 64 bits or negative: no limit
    result = bytes(raw)
    _checked_limits, _limit_values = ls, result
    return result


def oversized(values, limits):
    """Indices of the ``str`` values longer than their limit (``-1``: none)."""
    _check_args(values, limits, "limits")
    cdef tuple vals = <tuple>values
    cdef bytes raw = _values_of_limits(<tuple>limits)
    cdef const long long* lim = <const long long*><const char*>raw
    cdef Py_ssize_t n = len(vals), i
    cdef list found = []
    cdef object value
    for i in range(n):
        if lim[i] < 0:
            continue
        value = vals[i]
        if PyUnicode_CheckExact(value) and PyUnicode_GET_LENGTH(value) > lim[i]:
            found.append(i)
    return found


cdef void _blank(char* start, Py_ssize_t size, int found) noexcept nogil:
    """Every ``found`` byte of ``start[:size]`` made a space."""
    cdef char* end = start + size
    cdef char* at = <char*>memchr(start, found, size)
    while at != NULL:
        at[0] = 32
        at = <char*>memchr(at + 1, found, end - at - 1)


def join_lines(values):
    """``values`` as lines ended by ``"\\n"``, line breaks inside a value made spaces (see the twin)."""
    cdef tuple held = tuple(values)  # keeps every value alive while the lock is released
    cdef Py_ssize_t count = len(held), i, total = 0, at = 0, size
    if count == 0:
        return b""
    cdef const char** starts = <const char**>PyMem_Malloc(count * sizeof(char*))
    cdef Py_ssize_t* sizes = <Py_ssize_t*>PyMem_Malloc(count * sizeof(Py_ssize_t))
    cdef char* out
    try:
        if starts == NULL or sizes == NULL:
            raise MemoryError()
        for i in range(count):
            value = held[i]
            if not PyBytes_Check(value):
                raise TypeError(f"value at index {i} must be bytes, not {type(value).__name__}")
            starts[i] = PyBytes_AS_STRING(value)
            sizes[i] = PyBytes_GET_SIZE(value)
            total += sizes[i] + 1
        joined = PyBytes_FromStringAndSize(NULL, total)
        out = PyBytes_AS_STRING(joined)
        with nogil:
            for i in range(count):
                size = sizes[i]
                memcpy(out + at, starts[i], size)
                _blank(out + at, size, 10)
                _blank(out + at, size, 13)
                at += size
                out[at] = 10
                at += 1
        return joined
    finally:
        PyMem_Free(starts)
        PyMem_Free(sizes)
