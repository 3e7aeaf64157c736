# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Scans of long text, compiled.

The twin of ``ext/scan_py.py`` (read its docstring): the text is read in place,
as bytes or as the code units of a ``str`` of any kind, and only where a run
could be (a long run is found by probing every ``length``-th position).
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

__all__ = ["brackets_over", "has_digit_run", "iglu_uris"]


cdef inline bint _digit(int kind, const void* data, Py_ssize_t i) noexcept nogil:
    cdef unsigned int c
    if kind == 1:
        c = (<const unsigned char*>data)[i]
    elif kind == 2:
        c = (<const unsigned short*>data)[i]
    else:
        c = (<const unsigned int*>data)[i]
    return c - 48 < 10


cdef bint _run(int kind, const void* data, Py_ssize_t n, Py_ssize_t length) noexcept nogil:
    # A run of ``length`` digits covers one of the positions length-1, 2*length-1, ... : only those are
    # read unless they are digits, then the run around the digit found is measured; text with few digits
    # costs about n / length reads.
    cdef Py_ssize_t probe = length - 1, start, end
    while probe < n:
        if not _digit(kind, data, probe):
            probe += length
            continue
        start = probe
        while start > 0 and probe - start < length and _digit(kind, data, start - 1):
            start -= 1
        end = probe + 1
        while end < n and end - start < length and _digit(kind, data, end):
            end += 1
        if end - start >= length:
            return True
        probe = end + length  # s[end] is not a digit: a run must start after it
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


def has_digit_run(text, length):
    """Whether ``text`` holds ``length`` ASCII digits in a row; see ``ext.scan_py``."""
    cdef Py_ssize_t want = max(1, int(length))
    return _scan_text(text, _run, want, "has_digit_run") == 1


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
