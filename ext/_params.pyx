# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Tracker-protocol parameter checks and conversion, compiled.

The twin of ``ext/params_py.py`` (read its docstring for the rules): same
functions, same results, same messages.  Digits, UUIDs and dimensions are
scanned in place (``PyUnicode_DATA``); numbers are built in C; each value is
stored with one ``PyObject_SetAttr``.
"""

__all__ = [
    "PARAM_STRING",
    "PARAM_LOOKUP",
    "PARAM_UUID",
    "PARAM_INT",
    "PARAM_TSTAMP",
    "PARAM_FLAG",
    "PARAM_DOUBLE",
    "PARAM_DIMENSIONS",
    "PARAM_CALL",
    "PARAM_JSON",
    "holds_none",
    "map_params",
    "separated_pairs",
    "string_objects",
    "known_entities",
    "tsv_safe",
]

import re

from ._base64url import decode_base64url as _decode_base64url
from ._scan import brackets_over as _brackets_over, has_numbers_to_keep as _has_numbers_to_keep
from .javanum import java_integer, joda_timestamp

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyDict_CheckExact(object o)
    ctypedef struct PyObject
    int PyDict_Next(object p, Py_ssize_t* ppos, PyObject** pkey, PyObject** pvalue)
    PyObject* PyDict_GetItemWithError(object p, object key) except? NULL
    bint PyUnicode_Check(object o)
    int PySet_Contains(object anyset, object key) except -1
    bint PyAnySet_Check(object o)
    int PyObject_SetAttr(object o, object name, object v) except -1
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL
    bytes PyBytes_FromStringAndSize(const char* v, Py_ssize_t size)
    char* PyBytes_AS_STRING(object o)

from libc.string cimport memcpy
from libc.stdlib cimport malloc, free

PARAM_STRING = 0
PARAM_LOOKUP = 1
PARAM_UUID = 2
PARAM_INT = 3
PARAM_TSTAMP = 4
PARAM_FLAG = 5
PARAM_DOUBLE = 6
PARAM_DIMENSIONS = 7
PARAM_CALL = 8
PARAM_JSON = 9

cdef enum:
    _STRING = 0
    _LOOKUP = 1
    _UUID = 2
    _INT = 3
    _TSTAMP = 4
    _FLAG = 5
    _DOUBLE = 6
    _DIMENSIONS = 7
    _CALL = 8
    _JSON = 9

cdef long long _INT32_MIN = -2147483648LL
cdef long long _INT32_MAX = 2147483647LL
cdef long long _MAX_TSTAMP_MS = 253402300799999LL
cdef long long _MIN_TSTAMP_MS = -62167219200000LL  # 0000-01-01T00:00:00.000Z

cdef str NOT_UUID = "not a valid UUID"
cdef str NOT_INT = "cannot be converted to java.lang.Integer"
cdef str NOT_TSTAMP = "not in the expected format: ms since epoch"
cdef str TSTAMP_RANGE = "formatting as {} is not Redshift-compatible"
cdef str NOT_FLAG = "cannot be converted to Boolean-like java.lang.Byte"
cdef str NOT_NUMBER = "not a valid number"
cdef str NOT_FINITE = "a finite number"
cdef str NOT_DIMENSIONS = "does not conform to regex (\\d+)x(\\d+)"
cdef str DIMENSIONS_RANGE = "could not be converted to java.lang.Integer s"
cdef str _E = "e"
cdef str _ONE_S = "1"
cdef str _ZERO_S = "0"


_CONTROL = re.compile("[\x00-\x1f\x7f]")
cdef str _TAB = "\t"
cdef str _FOUR_SPACES = "    "
cdef str _NULL = "null"


cdef bint _has_control(str value):
    cdef int kind = PyUnicode_KIND(value)
    cdef void* data = PyUnicode_DATA(value)
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(value), start, end
    cdef unsigned int c
    cdef const unsigned char* b
    cdef unsigned char acc
    if kind == 1:
        # blocks compared without branches (vectorised by the C compiler), stopping at the first block with one
        b = <const unsigned char*>data
        start = 0
        while start < n:
            end = min(start + 4096, n)
            acc = 0
            for i in range(start, end):
                acc |= (b[i] < 32) | (b[i] == 127)
            if acc:
                return True
            start = end
        return False
    for i in range(n):
        c = <unsigned int>PyUnicode_READ(kind, data, i)
        if c < 32 or c == 127:
            return True
    return False


cdef object _tsv_safe(str value):
    """Snowplow's ``makeTsvSafe``: a tab becomes four spaces, other control characters are removed;
    nothing left is no value (None)."""
    if not _has_control(value):
        return value if PyUnicode_GET_LENGTH(value) else None
    return _CONTROL.sub("", value.replace(_TAB, _FOUR_SPACES)) or None


def tsv_safe(str value):
    return _tsv_safe(value)


cdef inline bint _is_hex(unsigned int c) noexcept:
    return (48 <= c <= 57) or (97 <= c <= 102) or (65 <= c <= 70)


cdef bint _is_uuid(str value):
    if PyUnicode_GET_LENGTH(value) != 36:
        return False
    cdef int kind = PyUnicode_KIND(value)
    cdef void* data = PyUnicode_DATA(value)
    cdef Py_ssize_t i
    cdef unsigned int c
    for i in range(36):
        c = <unsigned int>PyUnicode_READ(kind, data, i)
        if i == 8 or i == 13 or i == 18 or i == 23:
            if c != 45:  # '-'
                return False
        elif not _is_hex(c):
            return False
    return True


cdef int _digits(str value, Py_ssize_t start, Py_ssize_t end, long long* out) noexcept:
    """Parse value[start:end] as ASCII digits: 0 not digits, 1 ok, 2 past 10**17 (the caller decides)."""
    cdef int kind = PyUnicode_KIND(value)
    cdef void* data = PyUnicode_DATA(value)
    cdef Py_ssize_t i
    cdef unsigned int c
    cdef long long acc = 0
    cdef bint big = False
    if end <= start:
        return 0
    for i in range(start, end):
        c = <unsigned int>PyUnicode_READ(kind, data, i)
        if c < 48 or c > 57:
            return 0
        if not big:
            acc = acc * 10 + (c - 48)
            if acc > 100000000000000000LL:  # past 10**17: the next digit could overflow 64 bits
                big = True
    out[0] = acc
    return 2 if big else 1


cdef int _integer(str value, long long* out) noexcept:
    """``-?[0-9]+``: 0 not an integer, 1 ok (in *out), 2 an integer too big for 64 bits."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(value)
    cdef bint negative = n > 0 and <unsigned int>PyUnicode_READ(PyUnicode_KIND(value), PyUnicode_DATA(value), 0) == 45
    cdef int status = _digits(value, 1 if negative else 0, n, out)
    if status == 1 and negative:
        out[0] = -out[0]
    return status


cdef object _dimension_split(str value, long long* w, long long* h):
    """None when ``value`` is WIDTHxHEIGHT within int32 (into *w, *h), else the expectation."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(value), i, sep = -1
    cdef int kind = PyUnicode_KIND(value)
    cdef void* data = PyUnicode_DATA(value)
    cdef unsigned int c
    cdef int sw, sh
    for i in range(n):  # the first 'x' (as str.partition)
        if <unsigned int>PyUnicode_READ(kind, data, i) == 120:
            sep = i
            break
    if sep < 0:
        return NOT_DIMENSIONS
    sw = _digits(value, 0, sep, w)
    sh = _digits(value, sep + 1, n, h)
    if sw == 0 or sh == 0:
        return NOT_DIMENSIONS
    if sw == 2 or sh == 2 or w[0] > _INT32_MAX or h[0] > _INT32_MAX:
        return DIMENSIONS_RANGE
    return None


cdef object _NO_SHORTCUT = object()


cdef object _json_shortcut(str value, tuple extra):
    """PARAM_JSON's document without its converter (see the twin), or ``_NO_SHORTCUT`` for the converter to
    answer: what ``loads`` makes of the text, when it is a document whose numbers keep their text and which
    nests no deeper than the limit allows (it has no more brackets)."""
    cdef object text, doc
    try:
        text = _decode_base64url(value) if extra[0] else value
        doc = extra[2](text)
    except Exception:
        return _NO_SHORTCUT
    if doc is None or _has_numbers_to_keep(text) or _brackets_over(text, extra[1]):
        return _NO_SHORTCUT
    return doc


cdef object _convert(long kind, str value, object extra):
    """The converted value; raises ValueError(expectation) to refuse it."""
    cdef long long number
    cdef int status
    cdef double d
    if kind == _STRING:
        return _tsv_safe(value)
    if kind == _LOOKUP:
        mapping, expectation = extra
        try:
            return mapping[value]
        except KeyError:
            raise ValueError(expectation) from None
    if kind == _UUID:
        if not _is_uuid(value):
            raise ValueError(NOT_UUID)
        return value.lower()
    if kind == _INT:
        if value.lower() == _NULL:  # a JavaScript tracker's literal null: no value
            return None
        status = _integer(value, &number)
        if status == 0:  # a + sign, digits of other scripts, or not a number
            slow = java_integer(value, 32)
            if slow is None:
                raise ValueError(NOT_INT)
            return slow
        if status == 2 or number < _INT32_MIN or number > _INT32_MAX:
            raise ValueError(NOT_INT)
        return number
    if kind == _TSTAMP:
        status = _integer(value, &number)
        if status == 0:
            slow = java_integer(value, 64)
            if slow is None:
                raise ValueError(NOT_TSTAMP)
            number = slow
        elif status == 2:  # more than 18 digits: Long.parseLong decides
            slow = java_integer(value, 64)
            if slow is None:
                raise ValueError(NOT_TSTAMP)
            raise ValueError(TSTAMP_RANGE.format(joda_timestamp(slow)))
        if number < _MIN_TSTAMP_MS or number > _MAX_TSTAMP_MS:
            raise ValueError(TSTAMP_RANGE.format(joda_timestamp(number)))
        return number
    if kind == _FLAG:
        if value == _ONE_S:
            return 1
        if value == _ZERO_S:
            return 0
        raise ValueError(NOT_FLAG)
    if kind == _DOUBLE:
        try:
            f = float(value)
        except ValueError:
            raise ValueError(NOT_NUMBER) from None
        d = f
        if d != d or d == float("inf") or d == float("-inf"):
            raise ValueError(NOT_FINITE)
        return f
    if kind == _JSON:
        if type(extra) is not tuple or len(<tuple>extra) != 4:
            raise TypeError("a PARAM_JSON parameter's extra must be (base64, limit, loads, converter)")
        converted = _json_shortcut(value, <tuple>extra)
        if converted is not _NO_SHORTCUT:
            return converted
        kind, extra = _CALL, (<tuple>extra)[3]
    if kind == _CALL:
        try:
            return extra(value)
        except Exception as exc:
            expectation = getattr(exc, "expectation", None)
            if expectation is None:
                raise
            raise ValueError(expectation) from None
    raise TypeError(f"unknown parameter kind {kind!r}")


def map_params(params, target, table):
    """Convert and store the parameters named in ``table``; the refused ones as triples."""
    if not PyDict_CheckExact(params) and not isinstance(params, dict):
        raise TypeError(f"params must be a dict, not {type(params).__name__}")
    if not isinstance(table, dict):
        raise TypeError(f"table must be a dict, not {type(table).__name__}")
    cdef dict tbl = <dict>table
    cdef list refused = []
    cdef object spec, name, value, field, extra, converted, refusal
    cdef long kind
    cdef long long w = 0, h = 0
    for name, value in (<dict>params).items():
        spec = tbl.get(name)
        if spec is None:
            continue
        if not PyUnicode_CheckExact(value) and not isinstance(value, str):
            raise TypeError(f"parameter {name!r} must be a str, not {type(value).__name__}")
        kind = (<tuple>spec)[0]
        field = (<tuple>spec)[1]
        extra = (<tuple>spec)[2]
        if kind == _DIMENSIONS:
            refusal = _dimension_split(<str>value, &w, &h)
            if refusal is None:
                PyObject_SetAttr(target, field, w)
                PyObject_SetAttr(target, extra, h)
            else:
                refused.append((name, value, refusal))
            continue
        try:
            converted = _convert(kind, <str>value, extra)
        except ValueError as exc:
            refused.append((name, value, str(exc)))
            continue
        PyObject_SetAttr(target, field, converted)
    return refused


def separated_pairs(params, names):
    """UTF-8 of ``name US value US`` for each of ``names`` (see the twin): the values are found in the dict
    in place, each text's UTF-8 is read where CPython keeps it (an ASCII text's own bytes) and copied once
    into the result."""
    if not PyDict_CheckExact(params) and not isinstance(params, dict):
        raise TypeError(f"params must be a dict, not {type(params).__name__}")
    cdef list order = names if type(names) is list else list(names)
    cdef Py_ssize_t n = len(order), i, total = 0, size
    if n == 0:
        return b""
    cdef PyObject** texts = <PyObject**>malloc(2 * n * sizeof(PyObject*))
    cdef const char** data = <const char**>malloc(2 * n * sizeof(const char*))
    cdef Py_ssize_t* sizes = <Py_ssize_t*>malloc(2 * n * sizeof(Py_ssize_t))
    cdef PyObject* value
    cdef object name
    cdef bytes out
    cdef char* at
    if texts == NULL or data == NULL or sizes == NULL:
        free(texts)
        free(data)
        free(sizes)
        raise MemoryError()
    try:
        # as the twin: each name's value looked up (a KeyError) and both checked to be text, in turn; the
        # dict holds the values (borrowed here) until this returns, and nothing here runs Python code
        for i in range(n):
            name = order[i]
            value = PyDict_GetItemWithError(params, name)  # an error it sets is raised
            if value == NULL:
                raise KeyError(name)
            if not PyUnicode_Check(<object>value) or not PyUnicode_Check(name):
                return None
            texts[2 * i] = <PyObject*>name
            texts[2 * i + 1] = value
        for i in range(2 * n):
            try:
                data[i] = PyUnicode_AsUTF8AndSize(<object>texts[i], &size)
            except UnicodeEncodeError:
                return None
            sizes[i] = size
            total += size + 1
        out = PyBytes_FromStringAndSize(NULL, total)
        at = PyBytes_AS_STRING(out)
        for i in range(2 * n):
            memcpy(at, data[i], sizes[i])
            at += sizes[i]
            at[0] = 31  # U+001F
            at += 1
        return out
    finally:
        free(texts)
        free(data)
        free(sizes)


def string_objects(items, allowed, required):
    """Whether ``items`` is a list of ``dict`` objects each holding ``required``, no key outside the set
    ``allowed`` and only ``str`` values (see the twin): one pass over each object in place."""
    if type(items) is not list:
        return False
    if not PyAnySet_Check(allowed):
        raise TypeError(f"allowed must be a set, not {type(allowed).__name__}")
    cdef tuple names = required if type(required) is tuple else tuple(required)
    cdef Py_ssize_t pos
    cdef PyObject* key
    cdef PyObject* value
    for item in <list>items:
        if not PyDict_CheckExact(item):
            return False
        for name in names:
            if name not in <dict>item:
                return False
        pos = 0
        while PyDict_Next(item, &pos, &key, &value):
            if not PyUnicode_CheckExact(<object>value) or not PySet_Contains(allowed, <object>key):
                return False
    return True


def known_entities(items, known):
    """Whether ``items`` is a list of entities each naming a known schema (see the twin): one pass over the
    list, each object's two keys read in place."""
    if type(items) is not list:
        return False
    if not PyAnySet_Check(known):
        raise TypeError(f"known must be a set, not {type(known).__name__}")
    cdef object uri
    for item in <list>items:
        if not PyDict_CheckExact(item) or len(<dict>item) != 2 or "data" not in <dict>item:
            return False
        uri = (<dict>item).get("schema")
        if not PyUnicode_CheckExact(uri) or not PySet_Contains(known, uri):
            return False
    return True


def holds_none(dict params not None):
    """Whether a value of ``params`` is None (see the twin): its entries read in place, each value compared
    by identity."""
    cdef Py_ssize_t pos = 0
    cdef PyObject* key
    cdef PyObject* value
    while PyDict_Next(params, &pos, &key, &value):
        if value == <PyObject*>None:
            return True
    return False
