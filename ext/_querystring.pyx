# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Query strings and percent-decoding, compiled.

The twin of ``ext/querystring_py.py`` (read its docstring for the rules): same
functions, same results, same exceptions and messages (built by the same
helpers in ``ext.errors``).  The input is read in place as code points
(``PyUnicode_READ``); a piece with no ``%``, ``+`` or non-ASCII character is
returned as a slice, and any other piece is decoded into a UTF-8 buffer (runs
of escapes are validated as UTF-8 by hand, so positions can be reported) and
then turned into ``str`` once.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_DecodeUTF8

from . import errors

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    bint PyUnicode_CheckExact(object o)
    bint PyUnicode_Check(object o)
    object PyUnicode_Substring(object s, Py_ssize_t start, Py_ssize_t end)

__all__ = ["parse_query_string", "percent_decode"]


cdef inline int _hex(Py_UCS4 c) noexcept nogil:
    if c >= 48 and c <= 57:  # 0-9
        return <int>c - 48
    if c >= 65 and c <= 70:  # A-F
        return <int>c - 55
    if c >= 97 and c <= 102:  # a-f
        return <int>c - 87
    return -1


cdef Py_ssize_t _utf8_invalid_at(const unsigned char* b, Py_ssize_t n) noexcept nogil:
    """Index of the first byte of the first invalid UTF-8 sequence in b[:n], or -1."""
    cdef Py_ssize_t i = 0, need, k
    cdef unsigned char c, lo, hi
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if c >= 0xC2 and c <= 0xDF:
            need = 1
        elif c == 0xE0:
            need = 2
            lo = 0xA0
        elif c == 0xED:
            need = 2
            hi = 0x9F  # no encoded surrogates
        elif c >= 0xE1 and c <= 0xEF:
            need = 2
        elif c == 0xF0:
            need = 3
            lo = 0x90
        elif c == 0xF4:
            need = 3
            hi = 0x8F  # nothing above U+10FFFF
        elif c >= 0xF1 and c <= 0xF3:
            need = 3
        else:
            return i
        if i + 1 >= n or b[i + 1] < lo or b[i + 1] > hi:
            return i
        for k in range(2, need + 1):
            if i + k >= n or b[i + k] < 0x80 or b[i + k] > 0xBF:
                return i
        i += need + 1
    return -1


cdef object _fail(str s, Py_ssize_t i, Py_ssize_t end, object parameter, Py_ssize_t base):
    """Build the error for the bad '%' at s[i] (the piece ends at ``end``)."""
    if end - i < 3:
        return errors.truncated_escape(PyUnicode_Substring(s, i, end), i - base, parameter)
    return errors.malformed_escape(PyUnicode_Substring(s, i, i + 3), i - base, parameter)


cdef str _decode(str s, int kind, void* data, Py_ssize_t start, Py_ssize_t end,
                 Py_ssize_t base, Py_ssize_t name_start, Py_ssize_t name_end, bint named):
    """Percent-decode s[start:end]; positions in errors are reported minus ``base``
    and the parameter is s[name_start:name_end] if ``named``."""
    cdef Py_ssize_t i
    cdef unsigned int c
    cdef bint plain = True
    for i in range(start, end):
        c = PyUnicode_READ(kind, data, i)
        if c == 37 or c == 43 or c >= 0x80:  # '%', '+', non-ASCII
            plain = False
            break
    if plain:
        if start == 0 and end == len(s):
            return s
        return PyUnicode_Substring(s, start, end)

    cdef unsigned char* buf = <unsigned char*>PyMem_Malloc(4 * (end - start) + 1)
    if buf == NULL:
        raise MemoryError()
    cdef Py_ssize_t n = 0, run_start, run_bytes, bad
    cdef int h1, h2
    try:
        i = start
        while i < end:
            c = PyUnicode_READ(kind, data, i)
            if c == 37:  # a run of escapes
                run_start = i
                run_bytes = n
                while i < end and PyUnicode_READ(kind, data, i) == 37:
                    if end - i < 3:
                        break
                    h1 = _hex(PyUnicode_READ(kind, data, i + 1))
                    h2 = _hex(PyUnicode_READ(kind, data, i + 2))
                    if h1 < 0 or h2 < 0:
                        break
                    buf[n] = <unsigned char>(h1 * 16 + h2)
                    n += 1
                    i += 3
                bad = _utf8_invalid_at(buf + run_bytes, n - run_bytes)
                if bad >= 0:
                    bad = run_start + 3 * bad
                    raise errors.invalid_utf8(
                        PyUnicode_Substring(s, bad, bad + 3), bad - base,
                        PyUnicode_Substring(s, name_start, name_end) if named else None)
                if i == run_start:  # the '%' at i starts no escape
                    raise _fail(s, i, end, PyUnicode_Substring(s, name_start, name_end) if named else None, base)
                continue
            if c == 43:
                buf[n] = 32
                n += 1
            elif c < 0x80:
                buf[n] = <unsigned char>c
                n += 1
            elif c < 0x800:
                buf[n] = <unsigned char>(0xC0 | (c >> 6))
                buf[n + 1] = <unsigned char>(0x80 | (c & 0x3F))
                n += 2
            elif c < 0x10000:
                if c >= 0xD800 and c <= 0xDFFF:
                    raise errors.lone_surrogate(
                        c, i - base, PyUnicode_Substring(s, name_start, name_end) if named else None)
                buf[n] = <unsigned char>(0xE0 | (c >> 12))
                buf[n + 1] = <unsigned char>(0x80 | ((c >> 6) & 0x3F))
                buf[n + 2] = <unsigned char>(0x80 | (c & 0x3F))
                n += 3
            else:
                buf[n] = <unsigned char>(0xF0 | (c >> 18))
                buf[n + 1] = <unsigned char>(0x80 | ((c >> 12) & 0x3F))
                buf[n + 2] = <unsigned char>(0x80 | ((c >> 6) & 0x3F))
                buf[n + 3] = <unsigned char>(0x80 | (c & 0x3F))
                n += 4
            i += 1
        return PyUnicode_DecodeUTF8(<char*>buf, n, "strict")
    finally:
        PyMem_Free(buf)


def percent_decode(s):
    """Decode ``+`` and ``%XX`` escapes (UTF-8) in ``s``; see ``ext.querystring_py``."""
    if not PyUnicode_Check(s):
        raise errors.not_str("percent_decode", s)
    if not PyUnicode_CheckExact(s):
        s = str(s)
    return _decode(s, PyUnicode_KIND(s), PyUnicode_DATA(s), 0, len(s), 0, 0, 0, False)


def parse_query_string(qs):
    """Split ``qs`` into decoded ``(name, value)`` pairs; see ``ext.querystring_py``."""
    if not PyUnicode_Check(qs):
        raise errors.not_str("parse_query_string", qs)
    if not PyUnicode_CheckExact(qs):
        qs = str(qs)
    cdef str s = qs
    cdef int kind = PyUnicode_KIND(s)
    cdef void* data = PyUnicode_DATA(s)
    cdef Py_ssize_t length = len(s), start = 0, end, eq, i
    cdef unsigned int c
    cdef list pairs = []
    cdef str name, value
    while start < length:
        end = start
        eq = -1
        while end < length:
            c = PyUnicode_READ(kind, data, end)
            if c == 38:  # '&'
                break
            if c == 61 and eq < 0:  # first '='
                eq = end
            end += 1
        if end > start:
            if eq < 0:
                name = _decode(s, kind, data, start, end, 0, start, end, True)
                value = ""
            else:
                name = _decode(s, kind, data, start, eq, 0, start, eq, True)
                value = _decode(s, kind, data, eq + 1, end, 0, start, eq, True)
            pairs.append((name, value))
        start = end + 1
    return pairs
