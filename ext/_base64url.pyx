# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Base64url, compiled.

The twin of ``ext/base64url_py.py`` (read its docstring for the rules): same
functions, same results, same exceptions and messages (built by the same
helpers in ``ext.errors``).  Decoding reads the text in place as code points
through a 128-entry table and writes into one pre-sized ``bytes``; encoding
writes into one pre-sized ASCII ``str``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

from . import errors

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    bint PyUnicode_Check(object o)
    bint PyBytes_CheckExact(object o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    object PyUnicode_Substring(object s, Py_ssize_t start, Py_ssize_t end)

__all__ = ["decode_base64url", "encode_base64url"]

cdef const char* _URLSAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
cdef signed char _VALUE[256]  # a character's 6 bits, -1 for any other (every one-byte code point has an entry)


cdef void _init_table() noexcept:
    cdef int i
    for i in range(256):
        _VALUE[i] = -1
    for i in range(64):
        _VALUE[<unsigned char>_URLSAFE[i]] = i
    _VALUE[43] = 62  # '+'
    _VALUE[47] = 63  # '/'


_init_table()


cdef object _decode_one_byte(const unsigned char* p, Py_ssize_t length, Py_ssize_t n):
    """The bytes of text held one byte a character (ASCII, Latin-1), decoded in one pass; None when a
    character is not of the alphabet (the caller's general pass then says which and where)."""
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t _, rest = length % 4
    cdef int v0, v1, v2, v3, seen = 0  # seen: every value or'ed; -1 sets its sign bit
    for _ in range(length // 4):
        v0 = _VALUE[p[0]]
        v1 = _VALUE[p[1]]
        v2 = _VALUE[p[2]]
        v3 = _VALUE[p[3]]
        seen |= v0 | v1 | v2 | v3
        o[0] = <unsigned char>((v0 << 2) | (v1 >> 4))
        o[1] = <unsigned char>(((v1 & 15) << 4) | (v2 >> 2))
        o[2] = <unsigned char>(((v2 & 3) << 6) | v3)
        o += 3
        p += 4
    if rest == 1:
        seen |= _VALUE[p[0]]
    elif rest >= 2:  # leftover bits of the last character are ignored
        v0 = _VALUE[p[0]]
        v1 = _VALUE[p[1]]
        seen |= v0 | v1
        o[0] = <unsigned char>((v0 << 2) | (v1 >> 4))
        if rest == 3:
            v2 = _VALUE[p[2]]
            seen |= v2
            o[1] = <unsigned char>(((v1 & 15) << 4) | (v2 >> 2))
    return None if seen < 0 else out


def decode_base64url(s):
    """Decode base64 text (URL-safe or standard alphabet, padding optional);
    see ``ext.base64url_py``."""
    if not PyUnicode_Check(s):
        raise errors.not_str("decode_base64url", s)
    cdef int kind = PyUnicode_KIND(s)
    cdef void* data = PyUnicode_DATA(s)
    cdef Py_ssize_t total = len(s), length = total, i, n, full
    cdef unsigned int c
    cdef int v0, v1, v2, v3
    cdef Py_ssize_t _
    while length and PyUnicode_READ(kind, data, length - 1) == 61:
        length -= 1
    cdef Py_ssize_t padding = total - length
    full = length // 4
    n = full * 3 + (length % 4 - 1 if length % 4 >= 2 else 0)
    # the usual case, text held one byte a character: one pass that decodes and checks at once
    out = _decode_one_byte(<const unsigned char*>data, length, n) if kind == 1 else None
    if out is None:  # any other text, or a character not of the alphabet: find which
        for i in range(length):
            c = PyUnicode_READ(kind, data, i)
            if c >= 128 or _VALUE[c] < 0:
                if c == 61:
                    raise errors.base64_misplaced_padding(i)
                raise errors.base64_bad_character(PyUnicode_Substring(s, i, i + 1), i)
    if length % 4 == 1:
        raise errors.base64_bad_length(length)
    if padding and padding != (4 - length % 4) % 4:
        raise errors.base64_bad_padding(padding, length)
    if out is not None:
        return out

    out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    i = 0
    for _ in range(full):
        v0 = _VALUE[PyUnicode_READ(kind, data, i)]
        v1 = _VALUE[PyUnicode_READ(kind, data, i + 1)]
        v2 = _VALUE[PyUnicode_READ(kind, data, i + 2)]
        v3 = _VALUE[PyUnicode_READ(kind, data, i + 3)]
        o[0] = <unsigned char>((v0 << 2) | (v1 >> 4))
        o[1] = <unsigned char>(((v1 & 15) << 4) | (v2 >> 2))
        o[2] = <unsigned char>(((v2 & 3) << 6) | v3)
        o += 3
        i += 4
    if length % 4 >= 2:  # leftover bits of the last character are ignored
        v0 = _VALUE[PyUnicode_READ(kind, data, i)]
        v1 = _VALUE[PyUnicode_READ(kind, data, i + 1)]
        o[0] = <unsigned char>((v0 << 2) | (v1 >> 4))
        if length % 4 == 3:
            v2 = _VALUE[PyUnicode_READ(kind, data, i + 2)]
            o[1] = <unsigned char>(((v1 & 15) << 4) | (v2 >> 2))
    return out


def encode_base64url(b, bint pad=False):
    """Encode bytes-like ``b`` as URL-safe base64; ``=`` padding only if ``pad``."""
    if not PyBytes_CheckExact(b):
        try:
            b = memoryview(b).tobytes()
        except TypeError:
            raise TypeError(
                f"encode_base64url() argument must be a bytes-like object, not {type(b).__name__}"
            ) from None
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(b)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(b), full = size // 3, rest = size % 3, n, i
    n = full * 4
    if rest:
        n += 4 if pad else rest + 1
    out = PyUnicode_New(n, 127)
    cdef unsigned char* o = <unsigned char*>PyUnicode_DATA(out)
    cdef unsigned int x
    for i in range(full):
        x = (p[0] << 16) | (p[1] << 8) | p[2]
        o[0] = _URLSAFE[x >> 18]
        o[1] = _URLSAFE[(x >> 12) & 63]
        o[2] = _URLSAFE[(x >> 6) & 63]
        o[3] = _URLSAFE[x & 63]
        o += 4
        p += 3
    if rest:
        x = p[0] << 16
        if rest == 2:
            x |= p[1] << 8
        o[0] = _URLSAFE[x >> 18]
        o[1] = _URLSAFE[(x >> 12) & 63]
        if rest == 2:
            o[2] = _URLSAFE[(x >> 6) & 63]
        elif pad:
            o[2] = 61
        if pad:
            o[3] = 61
    return out
