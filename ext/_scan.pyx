# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Scans of long text, compiled.

The twin of ``ext/scan_py.py`` (read its docstring): the text is read in place,
as bytes or as the code units of a ``str`` of any kind; the end of a JSON string
is found with ``memchr`` (bytes and one-byte ``str``).
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    char* PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    char* PyByteArray_AS_STRING(object o)
    Py_ssize_t PyByteArray_GET_SIZE(object o)

__all__ = ["brackets_over", "has_numbers_to_keep", "iglu_uris"]


cdef inline unsigned int _at(int kind, const void* data, Py_ssize_t i) noexcept nogil:
    if kind == 1:
        return (<const unsigned char*>data)[i]
    if kind == 2:
        return (<const unsigned short*>data)[i]
    return (<const unsigned int*>data)[i]


cdef inline bint _digit(unsigned int c) noexcept nogil:
    return c - 48 < 10


cdef Py_ssize_t _string_end(int kind, const void* data, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    # i is just after an opening quote: the index just after the closing one (n when there is none); a
    # quote is escaped when an odd run of backslashes comes before it
    cdef Py_ssize_t j, k
    cdef const unsigned char* hit
    while i < n:
        if kind == 1:
            hit = <const unsigned char*>memchr(<const unsigned char*>data + i, 34, n - i)
            if hit == NULL:
                return n
            j = hit - <const unsigned char*>data
        else:
            j = i
            while j < n and _at(kind, data, j) != 34:
                j += 1
            if j == n:
                return n
        k = j
        while k > i and _at(kind, data, k - 1) == 92:
            k -= 1
        if (j - k) % 2 == 0:
            return j + 1
        i = j + 1
    return n


cdef bint _numbers_to_keep(int kind, const void* data, Py_ssize_t n, Py_ssize_t unused) noexcept nogil:
    # every number token outside strings, against the forms a shortest-form printer writes back as they are
    cdef Py_ssize_t i = 0, start, whole, digits, point, fraction, zeros
    cdef unsigned int c
    cdef const unsigned char* b = <const unsigned char*>data
    while i < n:
        if kind == 1:  # to the next quote, digit or minus sign: structure between strings is a few characters
            c = b[i]
            while c != 34 and c - 48 >= 10 and c != 45:
                i += 1
                if i == n:
                    return False
                c = b[i]
        else:
            c = _at(kind, data, i)
        if c == 34:  # "
            i = _string_end(kind, data, i + 1, n)
            continue
        if c != 45 and not _digit(c):  # -
            i += 1
            continue
        start = i
        if c == 45:
            i += 1
        whole = i
        while i < n and _digit(_at(kind, data, i)):
            i += 1
        digits = i - whole
        if i < n and (_at(kind, data, i) | 32) == 101:  # e E
            return True
        if i >= n or _at(kind, data, i) != 46:  # an integer: beyond 64 bits, or -0
            if digits >= 19 or (digits == 1 and start != whole and _at(kind, data, whole) == 48):
                return True
            continue
        i += 1
        point = i
        while i < n and _digit(_at(kind, data, i)):
            i += 1
        fraction = i - point
        if fraction == 0 or (i < n and (_at(kind, data, i) | 32) == 101):
            return True
        if fraction == 1 and _at(kind, data, point) == 48:  # x.0
            if digits > 15:
                return True
            continue
        if _at(kind, data, i - 1) == 48 or digits > 15:  # a trailing zero
            return True
        if digits == 1 and _at(kind, data, whole) == 48:  # 0.000ddd: up to four zeros, 15 digits after them
            zeros = 0
            while _at(kind, data, point + zeros) == 48:
                zeros += 1
            if zeros > 4 or fraction - zeros > 15:
                return True
        elif digits + fraction > 15:
            return True
    return False


ctypedef bint (*_Scan)(int kind, const void* data, Py_ssize_t n, Py_ssize_t arg) noexcept nogil


cdef int _scan_text(text, _Scan scan, Py_ssize_t arg, str caller) except -1:
    """``scan`` over ``text`` in place: a ``str``'s code units (of its kind), or the bytes of bytes or a
    bytearray (their own buffers, read without a memoryview: making one cost more than scanning a
    context); empty bytes are no match."""
    cdef const char* data
    cdef Py_ssize_t n
    if isinstance(text, str):
        return scan(PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), arg)
    if isinstance(text, bytes):
        data, n = PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text)
    elif isinstance(text, bytearray):
        data, n = PyByteArray_AS_STRING(text), PyByteArray_GET_SIZE(text)
    else:
        raise TypeError(f"{caller}() needs str or bytes, not {type(text).__name__}")
    return n != 0 and scan(1, data, n, arg)


def has_numbers_to_keep(text):
    """Whether JSON ``text`` holds a number a shortest-form printer would not write back as it is; see
    ``ext.scan_py``."""
    return _scan_text(text, _numbers_to_keep, 0, "has_numbers_to_keep") == 1


cdef bint _brackets_over(int kind, const void* data, Py_ssize_t n, Py_ssize_t limit) noexcept nogil:
    # counted a block at a time: the inner loop has no exit, so the compiler vectorises it
    cdef Py_ssize_t start = 0, end, i, seen = 0
    cdef const unsigned char* b = <const unsigned char*>data
    cdef const unsigned short* h = <const unsigned short*>data
    cdef const unsigned int* w = <const unsigned int*>data
    while start < n:
        end = start + 256 if n - start > 256 else n
        if kind == 1:
            for i in range(start, end):
                seen += (b[i] == 123) | (b[i] == 91)  # { [
        elif kind == 2:
            for i in range(start, end):
                seen += (h[i] == 123) | (h[i] == 91)
        else:
            for i in range(start, end):
                seen += (w[i] == 123) | (w[i] == 91)
        if seen > limit:
            return True
        start = end
    return False


def brackets_over(text, limit):
    """Whether ``text`` holds more than ``limit`` of ``{`` and ``[`` together; see ``ext.scan_py``."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise TypeError(f"brackets_over() needs str or bytes, not {type(text).__name__}")
    bound = int(limit)
    if bound < 0:
        return True
    if bound >= len(text):
        return False
    return _scan_text(text, _brackets_over, bound, "brackets_over") == 1


cdef extern from "string.h" nogil:
    const void* memchr(const void* s, int c, size_t n)
    void* memmem(const void* haystack, size_t haystacklen, const void* needle, size_t needlelen)
    int memcmp(const void* a, const void* b, size_t n)

cdef const char* _MEMBER = b'"schema":"iglu:'
cdef enum:
    _MEMBER_LEN = 15   # '"schema":"iglu:'
    _RECENT = 16       # distinct URIs remembered so as not to make their bytes again


cdef inline bint _alnum(unsigned char c) noexcept nogil:
    return <unsigned int>(c - 48) < 10 or <unsigned int>((c | 32) - 97) < 26


cdef Py_ssize_t _uri_end(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    # p[i] is the first character after 'iglu:'; the index of the closing quote of
    # vendor/name/jsonschema/M-R-A, or -1 when the text there is not such a URI and its quote
    cdef Py_ssize_t start = i, part
    cdef const char* js = b"jsonschema/"
    while i < n and (_alnum(p[i]) or p[i] == 95 or p[i] == 46 or p[i] == 45):  # _ . -
        i += 1
    if i == start or i >= n or p[i] != 47:  # /
        return -1
    i += 1
    start = i
    while i < n and (_alnum(p[i]) or p[i] == 95 or p[i] == 45):  # _ -
        i += 1
    if i == start or i + 12 > n or p[i] != 47 or memcmp(&p[i + 1], js, 11) != 0:
        return -1
    i += 12
    for part in range(3):
        start = i
        while i < n and <unsigned int>(p[i] - 48) < 10:
            i += 1
        if i == start or i >= n or p[i] != (45 if part < 2 else 34):  # - - "
            return -1
        i += 1
    return i - 1


def iglu_uris(data):
    """The distinct URIs of the ``"schema":"iglu:..."`` members in ``data``; see ``ext.scan_py``."""
    if isinstance(data, str):
        raise TypeError("iglu_uris() needs bytes, not str")
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    cdef const unsigned char* p = <const unsigned char*>view.buf
    cdef Py_ssize_t n = view.len, i = 0, end, start, k, known = 0, length
    cdef const unsigned char* hit
    cdef const unsigned char* recent[_RECENT]
    cdef Py_ssize_t recent_len[_RECENT]
    cdef bint seen
    found = set()
    try:
        while i < n:
            hit = <const unsigned char*>memmem(&p[i], n - i, _MEMBER, _MEMBER_LEN)
            if hit == NULL:
                break
            start = hit - p + 10  # the URI starts at 'iglu:'
            end = _uri_end(p, start + 5, n)
            if end < 0:
                i = hit - p + 1
                continue
            length = end - start
            seen = False
            for k in range(known if known < _RECENT else _RECENT):
                if recent_len[k] == length and memcmp(recent[k], &p[start], length) == 0:
                    seen = True
                    break
            if not seen:
                found.add(PyBytes_FromStringAndSize(<const char*>&p[start], length))
                recent[known % _RECENT] = &p[start]
                recent_len[known % _RECENT] = length
                known += 1
            i = end + 1
    finally:
        PyBuffer_Release(&view)
    return found
