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


cdef inline bint _scheme_char(unsigned char c) noexcept:
    return (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57) or c == 43 or c == 45 or c == 46


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
    if PyUnicode_KIND(url) != 1 or n < 4:
        return _split_url_py(url)
    s = <const unsigned char*>PyUnicode_DATA(url)
    for i in range(n):  # printable ASCII only: no spaces, controls or non-ASCII
        if s[i] <= 32 or s[i] >= 127:
            return _split_url_py(url)
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
    host_end = n
    for i in range(colon + 3, n):
        c = s[i]
        if c == 47 or c == 63 or c == 35:
            host_end = i
            break
        if c == 58 and port_start < 0:
            port_start = i + 1
        elif port_start >= 0:
            if c < 48 or c > 57:
                return _split_url_py(url)
        elif not (_alnum(c) or c == 45 or c == 46):
            return _split_url_py(url)
    name_end = port_start - 1 if port_start >= 0 else host_end
    if name_end <= colon + 3:
        return _split_url_py(url)
    # java.net.URI's hostname: labels of letters, digits and '-' (not at either end), one '.' between them,
    # a '.' allowed at the end; with more than one label the last starts with a letter
    label_start = colon + 3
    i = colon + 3
    while i < name_end:
        if not _alnum(s[i]):
            return _split_url_py(url)
        label_start = i
        while i < name_end and (_alnum(s[i]) or s[i] == 45):
            i += 1
        if s[i - 1] == 45:
            return _split_url_py(url)
        if i < name_end:  # a '.'
            i += 1
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
    for i in range(host_end, n):
        c = s[i]
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
    path_end = h if h >= 0 else n
    if q >= 0:
        path = PyUnicode_Substring(url, host_end, q) if q > host_end else None
        query = PyUnicode_Substring(url, q + 1, path_end) if path_end > q + 1 else None
    else:
        path = PyUnicode_Substring(url, host_end, path_end) if path_end > host_end else None
        query = None
    fragment = PyUnicode_Substring(url, h + 1, n) if h >= 0 and n > h + 1 else None
    return (scheme, host, port, path, query, fragment)
