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
from libc.string cimport memchr, memset

from . import errors

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    bint PyUnicode_CheckExact(object o)
    bint PyUnicode_Check(object o)
    object PyUnicode_Substring(object s, Py_ssize_t start, Py_ssize_t end)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)

__all__ = ["parse_query_string", "percent_decode", "find_parameters", "parse_uri_query"]


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


cdef inline bint _plain(int kind, void* data, Py_ssize_t start, Py_ssize_t end) noexcept:
    """Whether s[start:end] decodes to itself: no '%', no '+', nothing beyond ASCII."""
    cdef Py_ssize_t i
    cdef unsigned int c
    for i in range(start, end):
        c = PyUnicode_READ(kind, data, i)
        if c == 37 or c == 43 or c >= 0x80:  # '%', '+', non-ASCII
            return False
    return True


cdef str _decode(str s, int kind, void* data, Py_ssize_t start, Py_ssize_t end,
                 Py_ssize_t base, Py_ssize_t name_start, Py_ssize_t name_end, bint named):
    """Percent-decode s[start:end]; positions in errors are reported minus ``base``
    and the parameter is s[name_start:name_end] if ``named``."""
    cdef Py_ssize_t i
    cdef unsigned int c
    if _plain(kind, data, start, end):
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


cdef inline Py_ssize_t _piece_end(int kind, void* data, Py_ssize_t start, Py_ssize_t length,
                                  Py_ssize_t* eq) noexcept:
    """The end of the piece starting at ``start`` (its '&', or ``length``); its first '=' in ``eq`` (or -1)."""
    cdef Py_ssize_t end = start
    cdef Py_UCS4 c
    eq[0] = -1
    while end < length:
        c = PyUnicode_READ(kind, data, end)
        if c == 38:  # '&'
            break
        if c == 61 and eq[0] < 0:  # first '='
            eq[0] = end
        end += 1
    return end


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
    cdef list pairs = []
    cdef str name, value
    while start < length:
        end = _piece_end(kind, data, start, length, &eq)
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


cdef extern from *:
    """
    #include <string.h>
    /* The pieces of a query: SSE2 compares 16 bytes at a time where the compiler targets it (every x86-64);
       the pieces of a long query are short, and two calls of memchr per piece cost more than the scan. */
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    static inline Py_ssize_t snowmelt_next_piece(const unsigned char *b, Py_ssize_t from, Py_ssize_t n,
                                                 Py_ssize_t *eq) {
        /* the end of the piece starting at from (its '&', or n), and in *eq its first '=' (or -1) */
        *eq = -1;
    #if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
        const __m128i amp = _mm_set1_epi8('&'), equals = _mm_set1_epi8('=');
        while (from + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(b + from));
            unsigned m_amp = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, amp));
            unsigned m_eq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, equals));
            if (m_amp)
                m_eq &= (1u << __builtin_ctz(m_amp)) - 1;  /* an '=' after the '&' belongs to the next piece */
            if (*eq < 0 && m_eq)
                *eq = from + __builtin_ctz(m_eq);
            if (m_amp)
                return from + __builtin_ctz(m_amp);
            from += 16;
        }
    #endif
        for (; from < n; from++) {
            if (b[from] == '&')
                return from;
            if (b[from] == '=' && *eq < 0)
                *eq = from;
        }
        return n;
    }
    """
    Py_ssize_t _next_piece "snowmelt_next_piece" (const unsigned char* b, Py_ssize_t start, Py_ssize_t n,
                                                  Py_ssize_t* eq) noexcept nogil
    int memcmp(const void* a, const void* b, size_t n) noexcept nogil


cdef int _find_latin1(const unsigned char* b, Py_ssize_t length, list wanted, list starts, list ends,
                      bint last) except -1:
    # One byte per code point: pieces and their names found 16 bytes at a time (_next_piece); a name is
    # compared only with the wanted names of its length and first character.
    cdef Py_ssize_t count = len(wanted), k, u, used = 0, start = 0, end, eq, name_len, empty_index = -1
    cdef unsigned long long lengths = 0  # bit n: a usable name n bytes long (longer ones: bit 63)
    cdef unsigned char first[256]
    cdef str name
    cdef const unsigned char** names_data = <const unsigned char**>PyMem_Malloc((count + 1) * sizeof(void*))
    cdef Py_ssize_t* lens = <Py_ssize_t*>PyMem_Malloc((count + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* index = <Py_ssize_t*>PyMem_Malloc((count + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* found_start = <Py_ssize_t*>PyMem_Malloc((count + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* found_end = <Py_ssize_t*>PyMem_Malloc((count + 1) * sizeof(Py_ssize_t))
    if not names_data or not lens or not index or not found_start or not found_end:
        PyMem_Free(names_data); PyMem_Free(lens); PyMem_Free(index); PyMem_Free(found_start); PyMem_Free(found_end)
        raise MemoryError()
    try:
        memset(first, 0, 256)
        for k in range(count):
            found_start[k] = -1
            found_end[k] = -1
            name = wanted[k]
            if PyUnicode_KIND(name) != 1 or "=" in name or "&" in name:
                continue  # never the name of a piece of this text
            if PyUnicode_GET_LENGTH(name) == 0:
                empty_index = k
                continue
            names_data[used] = <const unsigned char*>PyUnicode_DATA(name)
            lens[used] = PyUnicode_GET_LENGTH(name)
            index[used] = k
            first[names_data[used][0]] = 1
            lengths |= 1ULL << min(lens[used], 63)
            used += 1
        while start < length:
            end = _next_piece(b, start, length, &eq)
            name_len = (eq if eq >= 0 else end) - start
            if end > start:
                if name_len > 0 and (lengths >> min(name_len, 63)) & 1 and first[b[start]]:
                    for u in range(used):
                        if lens[u] == name_len and memcmp(b + start, names_data[u], name_len) == 0:
                            k = index[u]
                            if last or found_start[k] < 0:
                                found_start[k] = start
                                found_end[k] = end
                            break
                elif name_len == 0 and empty_index >= 0:
                    if last or found_start[empty_index] < 0:
                        found_start[empty_index] = start
                        found_end[empty_index] = end
            start = end + 1
        for k in range(count):
            starts[k] = found_start[k]
            ends[k] = found_end[k]
    finally:
        PyMem_Free(names_data); PyMem_Free(lens); PyMem_Free(index); PyMem_Free(found_start); PyMem_Free(found_end)
    return 0


def find_parameters(qs, names, bint last=True):
    """``{name: piece}`` for the last (or first) piece of each of ``names`` in ``qs``; see ``ext.querystring_py``."""
    if not PyUnicode_Check(qs):
        raise errors.not_str("find_parameters", qs)
    cdef str s = str(qs) if not PyUnicode_CheckExact(qs) else qs
    cdef list wanted = list(dict.fromkeys(str(n) for n in names))
    cdef Py_ssize_t count = len(wanted), k, j, length = len(s), start = 0, end, eq, name_len
    cdef int kind = PyUnicode_KIND(s), wkind
    cdef void* data = PyUnicode_DATA(s)
    cdef void* wdata
    cdef str w
    cdef list starts = [-1] * count, ends = [-1] * count
    cdef unsigned long long lengths = 0  # bit n: some name is n code points long (n < 64)
    cdef bint long_names = False
    for w in wanted:
        if len(w) < 64:
            lengths |= 1ULL << len(w)
        else:
            long_names = True
    if kind == 1:
        _find_latin1(<const unsigned char*>data, length, wanted, starts, ends, last)
    while kind != 1 and start < length:
        end = _piece_end(kind, data, start, length, &eq)
        name_len = (eq if eq >= 0 else end) - start
        if end > start and ((name_len < 64 and (lengths >> name_len) & 1) or (name_len >= 64 and long_names)):
            for k in range(count):
                w = wanted[k]
                if len(w) != name_len:
                    continue
                wkind = PyUnicode_KIND(w)
                wdata = PyUnicode_DATA(w)
                for j in range(name_len):
                    if PyUnicode_READ(kind, data, start + j) != PyUnicode_READ(wkind, wdata, j):
                        break
                else:
                    if last or starts[k] < 0:
                        starts[k] = start
                        ends[k] = end
                    break
        start = end + 1
    cdef list order = sorted([k for k in range(count) if starts[k] >= 0], key=starts.__getitem__)
    return {wanted[k]: PyUnicode_Substring(s, starts[k], ends[k]) for k in order}


# ---------------------------------------------------------------------------------------------------------------
# parse_uri_query: the query as Snowplow's enrich 3.9.0 reads a collector payload's; see ext.querystring_py

# 1 for what java.net.URI takes as it is in a query or a fragment: A-Z a-z 0-9 -_.!~*'();/?:@&=+$,[]
cdef unsigned char _URIC[128]
memset(_URIC, 0, 128)
cdef bytes _URIC_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'();/?:@&=+$,[]"
cdef Py_ssize_t _k
for _k in range(len(_URIC_CHARS)):
    _URIC[<unsigned char>_URIC_CHARS[_k]] = 1


cdef inline bint _visible_other(Py_UCS4 c) noexcept nogil:
    """A character above U+0080 URI takes as it is: not an ISO control, not a space separator (JDK 17)."""
    if c <= 0xA0:
        return False
    if c < 0x1680:
        return True
    return not (c == 0x1680 or (c >= 0x2000 and c <= 0x200A) or c == 0x2028 or c == 0x2029
                or c == 0x202F or c == 0x205F or c == 0x3000)


cdef str _java_decode(str s, int kind, void* data, Py_ssize_t start, Py_ssize_t end):
    """HttpClient's urlDecode(s[start:end], UTF-8, plusAsBlank=true) of text URI accepted."""
    cdef Py_ssize_t i
    cdef unsigned int c
    if _plain(kind, data, start, end):
        return PyUnicode_Substring(s, start, end)
    cdef unsigned char* buf = <unsigned char*>PyMem_Malloc(2 * (end - start) + 1)
    if buf == NULL:
        raise MemoryError()
    cdef Py_ssize_t n = 0
    try:
        i = start
        while i < end:
            c = PyUnicode_READ(kind, data, i)
            if c == 37:  # an escape (URI checked it)
                buf[n] = <unsigned char>(_hex(PyUnicode_READ(kind, data, i + 1)) * 16
                                         + _hex(PyUnicode_READ(kind, data, i + 2)))
                i += 3
            else:
                if c == 43:
                    buf[n] = 32
                elif c < 0x10000:
                    buf[n] = <unsigned char>(c & 0xFF)  # Java's (byte) c
                else:  # two UTF-16 code units, two bytes
                    buf[n] = <unsigned char>((0xD800 + ((c - 0x10000) >> 10)) & 0xFF)
                    n += 1
                    buf[n] = <unsigned char>((0xDC00 + ((c - 0x10000) & 0x3FF)) & 0xFF)
                i += 1
            n += 1
        return PyUnicode_DecodeUTF8(<char*>buf, n, "snowmelt-java-utf8")
    finally:
        PyMem_Free(buf)


def parse_uri_query(qs):
    """``[(name, value or None), ...]`` as Snowplow's enrich 3.9.0 reads a query; see ``ext.querystring_py``."""
    if not PyUnicode_Check(qs):
        raise errors.not_str("parse_uri_query", qs)
    if not PyUnicode_CheckExact(qs):
        qs = str(qs)
    cdef str s = qs
    cdef int kind = PyUnicode_KIND(s)
    cdef void* data = PyUnicode_DATA(s)
    cdef Py_ssize_t length = len(s), query_end = -1, i = 0, start, end, eq
    cdef unsigned int c
    # as java.net.URI checks "http://localhost/?" + qs: the query to the first '#', then the fragment
    while i < length:
        c = PyUnicode_READ(kind, data, i)
        if c < 128 and _URIC[c]:
            i += 1
        elif c == 37:  # '%': two hexadecimal digits must follow ('#' is none)
            if i + 2 >= length or _hex(PyUnicode_READ(kind, data, i + 1)) < 0 or _hex(PyUnicode_READ(kind, data, i + 2)) < 0:
                raise errors.uri_syntax("Malformed escape pair", i, s)
            i += 3
        elif c == 35 and query_end < 0:  # '#'
            query_end = i
            i += 1
        elif c > 128 and _visible_other(c):
            i += 1
        else:
            raise errors.uri_syntax("Illegal character in query" if query_end < 0 else
                                    "Illegal character in fragment", i, s)
    if query_end < 0:
        query_end = length
    # URLEncodedUtils.parse: pieces between '&' or ';', the name to the first '=', no empty names
    cdef list pairs = []
    start = 0
    while start < query_end:
        end = start
        eq = -1
        while end < query_end:
            c = PyUnicode_READ(kind, data, end)
            if c == 38 or c == 59:  # '&', ';'
                break
            if c == 61 and eq < 0:
                eq = end
            end += 1
        if eq < 0:
            if end > start:
                pairs.append((_java_decode(s, kind, data, start, end), None))
        elif eq > start:
            pairs.append((_java_decode(s, kind, data, start, eq), _java_decode(s, kind, data, eq + 1, end)))
        start = end + 1
    return pairs
