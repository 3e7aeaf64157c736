# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""URL parts for the enriched ``page_url*`` and ``refr_url*`` fields, compiled.

The twin of ``ext/url_py.py`` (read its docstring for the rules).  The common
shape, ``scheme://name[:port][/path][?query][#fragment]`` in printable ASCII,
whose name java.net.URI reads as a host name (letters, digits, ``-`` and
``.``; the last label starting with a letter), whose port has at most 5 digits
and whose path, query and fragment hold only characters java.net.URI takes
there (``%`` followed by two hex digits), is split here in one pass; any other
URL is handed to the pure-Python twin, so the two agree by construction outside
the fast path.
"""

from libc.string cimport memchr

from ext.url_py import split_url as _split_url_py

__all__ = ["split_url", "DEFAULT_PORTS"]

DEFAULT_PORTS = {"https": 443}

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_CheckExact(object o)
    object PyUnicode_Substring(object o, Py_ssize_t start, Py_ssize_t end)

cdef str _HTTPS = "https"

# characters the path loop looks at: non-printable, '#', '?', '%', '[', ']' and those refused anywhere
cdef unsigned char _SPECIAL[256]
for _c in range(256):
    _SPECIAL[_c] = _c <= 32 or _c >= 127 or _c in b'#?%[]"<>\\^`{|}'


cdef inline bint _scheme_char(unsigned char c) noexcept:
    return (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57) or c == 43 or c == 45 or c == 46


cdef extern from *:
    """
    /* Whether any of the 64 bytes at p is one the path loop of split_url must look at: not printable
       ASCII, or one of # ? % [ ] " < > backslash ^ ` { | }.  SSE2 compares 16 bytes at a time where the compiler
       targets it (every x86-64); elsewhere a byte loop. */
    #if defined(__SSE2__)
    #include <emmintrin.h>
    static inline int snowmelt_url_block_special(const unsigned char *p) {
        static const char special[14] = {'#', '?', '%', '[', ']', '"', '<', '>', 92 /* backslash */, '^', '`', '{', '|', '}'};
        __m128i any = _mm_setzero_si128();
        for (int k = 0; k < 64; k += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + k));
            /* outside 33..126: (v - 33) as unsigned > 93, compared signed after flipping the top bit */
            __m128i shifted = _mm_xor_si128(_mm_sub_epi8(v, _mm_set1_epi8(33)), _mm_set1_epi8((char)0x80));
            any = _mm_or_si128(any, _mm_cmpgt_epi8(shifted, _mm_set1_epi8((char)(93 ^ 0x80))));
            for (int s = 0; s < 14; s++)
                any = _mm_or_si128(any, _mm_cmpeq_epi8(v, _mm_set1_epi8(special[s])));
        }
        return _mm_movemask_epi8(any) != 0;
    }
    #else
    static inline int snowmelt_url_block_special(const unsigned char *p) {
        for (int k = 0; k < 64; k++) {
            unsigned char c = p[k];
            if ((unsigned char)(c - 33) > 93) return 1;
            switch (c) {
                case '#': case '?': case '%': case '[': case ']': case '"': case '<': case '>': case 92:
                case '^': case '`': case '{': case '|': case '}': return 1;
            }
        }
        return 0;
    }
    #endif

    /* The index of the first '/', '?' or '#' in p[from:n] (where the authority ends), or n. */
    static inline Py_ssize_t snowmelt_authority_end(const unsigned char *p, Py_ssize_t from, Py_ssize_t n) {
    #if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
        const __m128i slash = _mm_set1_epi8('/'), question = _mm_set1_epi8('?'), hash = _mm_set1_epi8('#');
        for (; from + 16 <= n; from += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + from));
            unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(
                _mm_cmpeq_epi8(v, slash), _mm_cmpeq_epi8(v, question)), _mm_cmpeq_epi8(v, hash)));
            if (m)
                return from + __builtin_ctz(m);
        }
    #endif
        for (; from < n; from++)
            if (p[from] == '/' || p[from] == '?' || p[from] == '#')
                return from;
        return n;
    }

    static inline int snowmelt_host_char(unsigned char c) {
        return (unsigned char)((c | 0x20) - 'a') <= 25 || (unsigned char)(c - '0') <= 9 || c == '.' || c == '-';
    }

    static inline int snowmelt_bad_pair(unsigned char c, unsigned char next) {
        return (c == '.' && (next == '.' || next == '-')) || (c == '-' && next == '.');
    }

    /* Whether p[0:n] (n >= 1) is a run of java.net.URI hostname labels: letters, digits and '-', one '.'
       between labels, a '.' allowed at the end, no label starting or ending with '-' (the last label's first
       character is checked by the caller).  SSE2 checks 16 characters and their successors at a time. */
    static int snowmelt_hostname_ok(const unsigned char *p, Py_ssize_t n) {
        Py_ssize_t i = 0;
        unsigned char first = p[0];
        if (!((unsigned char)((first | 0x20) - 'a') <= 25 || (unsigned char)(first - '0') <= 9) || p[n - 1] == '-')
            return 0;
    #if defined(__SSE2__)
        const __m128i lower_a = _mm_set1_epi8('a'), zero = _mm_set1_epi8('0'), case_bit = _mm_set1_epi8(0x20);
        const __m128i max_letter = _mm_set1_epi8(25), max_digit = _mm_set1_epi8(9);
        const __m128i dot = _mm_set1_epi8('.'), dash = _mm_set1_epi8('-');
        __m128i bad = _mm_setzero_si128();
        for (; i + 17 <= n; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i next = _mm_loadu_si128((const __m128i *)(p + i + 1));
            __m128i letter_offset = _mm_sub_epi8(_mm_or_si128(v, case_bit), lower_a);
            __m128i digit_offset = _mm_sub_epi8(v, zero);
            __m128i is_letter = _mm_cmpeq_epi8(_mm_min_epu8(letter_offset, max_letter), letter_offset);
            __m128i is_digit = _mm_cmpeq_epi8(_mm_min_epu8(digit_offset, max_digit), digit_offset);
            __m128i is_dot = _mm_cmpeq_epi8(v, dot), is_dash = _mm_cmpeq_epi8(v, dash);
            __m128i next_dot = _mm_cmpeq_epi8(next, dot), next_dash = _mm_cmpeq_epi8(next, dash);
            __m128i ok = _mm_or_si128(_mm_or_si128(is_letter, is_digit), _mm_or_si128(is_dot, is_dash));
            bad = _mm_or_si128(bad, _mm_andnot_si128(ok, _mm_set1_epi8((char)0xFF)));
            bad = _mm_or_si128(bad, _mm_and_si128(is_dot, _mm_or_si128(next_dot, next_dash)));
            bad = _mm_or_si128(bad, _mm_and_si128(is_dash, next_dot));
            if (_mm_movemask_epi8(bad))
                return 0;
        }
    #endif
        for (; i < n; i++) {
            if (!snowmelt_host_char(p[i]) || (i + 1 < n && snowmelt_bad_pair(p[i], p[i + 1])))
                return 0;
        }
        return 1;
    }
    """
    bint _any_special "snowmelt_url_block_special" (const unsigned char* p) noexcept nogil
    Py_ssize_t _authority_end "snowmelt_authority_end" (const unsigned char* p, Py_ssize_t start,
                                                        Py_ssize_t n) noexcept nogil
    bint _hostname_ok "snowmelt_hostname_ok" (const unsigned char* p, Py_ssize_t n) noexcept nogil


cdef inline bint _alpha(unsigned char c) noexcept:
    return (97 <= c <= 122) or (65 <= c <= 90)


cdef inline bint _alnum(unsigned char c) noexcept:
    return (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57)


cdef inline bint _hex(unsigned char c) noexcept:
    return (48 <= c <= 57) or (97 <= c <= 102) or (65 <= c <= 70)


cdef inline bint _refused_anywhere(unsigned char c) noexcept:
    # " < > \ ^ ` { | }: java.net.URI takes none of them in a path, query or fragment
    return c == 34 or c == 60 or c == 62 or c == 92 or c == 94 or c == 96 or c == 123 or c == 124 or c == 125


def split_url(url):
    """``(scheme, host, port, path, query, fragment)`` or ``None`` (see ``ext/url_py.py``)."""
    if not PyUnicode_CheckExact(url):
        return _split_url_py(url)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(url), i, colon = -1, host_end, port_start = -1
    cdef Py_ssize_t q = -1, h = -1, path_end, name_end, label_start
    cdef const unsigned char* s
    cdef unsigned char c
    cdef long port_value = 0
    cdef const unsigned char* hit
    if PyUnicode_KIND(url) != 1 or n < 4:
        return _split_url_py(url)
    s = <const unsigned char*>PyUnicode_DATA(url)
    # printable ASCII only (no spaces, controls or non-ASCII): the scheme and authority loops below take
    # none of the others, and the path loop finds them by the table
    if not _alpha(s[0]):
        return _split_url_py(url)
    for i in range(n):
        if s[i] == 58:  # ':'
            colon = i
            break
        if not _scheme_char(s[i]):
            return _split_url_py(url)
    if colon < 1 or colon + 2 >= n or s[colon + 1] != 47 or s[colon + 2] != 47:
        return _split_url_py(url)
    # the authority runs to the first '/', '?' or '#': a host name and a port of digits here
    host_end = _authority_end(s, colon + 3, n)
    hit = <const unsigned char*>memchr(s + colon + 3, 58, host_end - colon - 3)  # ':'
    if hit != NULL:
        port_start = hit - s + 1
    name_end = port_start - 1 if port_start >= 0 else host_end
    if name_end <= colon + 3:
        return _split_url_py(url)
    for i in range(port_start if port_start >= 0 else host_end, host_end):
        if s[i] < 48 or s[i] > 57:
            return _split_url_py(url)
    # java.net.URI's hostname: labels of letters, digits and '-' (not at either end), one '.' between them,
    # a '.' allowed at the end; with more than one label the last starts with a letter
    if not _hostname_ok(s + colon + 3, name_end - colon - 3):
        return _split_url_py(url)
    label_start = colon + 3
    i = name_end - 1 if s[name_end - 1] == 46 else name_end  # without a '.' at the end
    while i > colon + 3:
        if s[i - 1] == 46:
            label_start = i
            break
        i -= 1
    if label_start > colon + 3 and not _alpha(s[label_start]):
        return _split_url_py(url)
    if port_start >= 0 and port_start < host_end:
        if host_end - port_start > 5:
            return _split_url_py(url)
        for i in range(port_start, host_end):
            port_value = port_value * 10 + (s[i] - 48)
        port = port_value
    else:
        port = None
    scheme = PyUnicode_Substring(url, 0, colon)
    host = PyUnicode_Substring(url, colon + 3, name_end)
    if port is None:
        port = 443 if scheme == _HTTPS else 80
    # path, then query (to '#'), then fragment: characters java.net.URI takes there, escapes well formed
    i = host_end
    while i < n:
        while i + 64 <= n and not _any_special(s + i):  # blocks of ordinary characters, compared in parallel
            i += 64
        if i >= n:
            break
        c = s[i]
        i += 1
        if not _SPECIAL[c]:  # most characters: one look-up
            continue
        i -= 1
        if c <= 32 or c >= 127:
            return _split_url_py(url)
        if c == 35:
            if h >= 0:
                return _split_url_py(url)  # a second '#'
            h = i
        elif c == 63:
            if q < 0 and h < 0:
                q = i
        elif _refused_anywhere(c):
            return _split_url_py(url)
        elif c == 37:
            if i + 2 >= n or not _hex(s[i + 1]) or not _hex(s[i + 2]):
                return _split_url_py(url)
        elif (c == 91 or c == 93) and q < 0 and h < 0:
            return _split_url_py(url)  # brackets are not path characters
        i += 1
    path_end = h if h >= 0 else n
    if q >= 0:
        path = PyUnicode_Substring(url, host_end, q) if q > host_end else None
        query = PyUnicode_Substring(url, q + 1, path_end) if path_end > q + 1 else None
    else:
        path = PyUnicode_Substring(url, host_end, path_end) if path_end > host_end else None
        query = None
    fragment = PyUnicode_Substring(url, h + 1, n) if h >= 0 and n > h + 1 else None
    return (scheme, host, port, path, query, fragment)
