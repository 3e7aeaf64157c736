# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""URL parts for the enriched ``page_url*`` and ``refr_url*`` fields, compiled.

The twin of ``ext/url_py.py`` (read its docstring for the rules).  The common
shape, ``scheme://host[:port][/path][?query][#fragment]`` in printable ASCII
with no userinfo (``@``), brackets, backslash or percent sign in the host, is
split here in one pass; any other URL is handed to the pure-Python twin, so
the two agree by construction outside the fast path.
"""

from ext.url_py import split_url as _split_url_py

__all__ = ["split_url", "DEFAULT_PORTS"]

DEFAULT_PORTS = {"http": 80, "https": 443}

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_CheckExact(object o)
    object PyUnicode_Substring(object o, Py_ssize_t start, Py_ssize_t end)

cdef str _HTTP = "http"
cdef str _HTTPS = "https"


cdef inline bint _scheme_char(unsigned char c) noexcept:
    return (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57) or c == 43 or c == 45 or c == 46


def split_url(url):
    """``(scheme, host, port, path, query, fragment)`` or ``None`` (see ``ext/url_py.py``)."""
    if not PyUnicode_CheckExact(url):
        return _split_url_py(url)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(url), i, colon = -1, host_end, port_start = -1
    cdef Py_ssize_t q = -1, h = -1, path_end
    cdef const unsigned char* s
    cdef unsigned char c
    cdef bint lower_host = False
    cdef long port_value = 0
    if PyUnicode_KIND(url) != 1 or n < 4:
        return _split_url_py(url)
    s = <const unsigned char*>PyUnicode_DATA(url)
    for i in range(n):  # printable ASCII only: no spaces, controls or non-ASCII
        if s[i] <= 32 or s[i] >= 127:
            return _split_url_py(url)
    c = s[0]
    if not ((97 <= c <= 122) or (65 <= c <= 90)):
        return _split_url_py(url)
    for i in range(n):
        if s[i] == 58:  # ':'
            colon = i
            break
        if not _scheme_char(s[i]):
            return _split_url_py(url)
    if colon < 1 or colon + 2 >= n or s[colon + 1] != 47 or s[colon + 2] != 47:
        return _split_url_py(url)
    # the authority runs to the first '/', '?' or '#'
    host_end = n
    for i in range(colon + 3, n):
        c = s[i]
        if c == 47 or c == 63 or c == 35:
            host_end = i
            break
        if c == 64 or c == 91 or c == 93 or c == 92 or c == 37:  # @ [ ] \ %
            return _split_url_py(url)
        if c == 58 and port_start < 0:
            port_start = i + 1
        elif 65 <= c <= 90:
            lower_host = True
    cdef Py_ssize_t name_end = port_start - 1 if port_start >= 0 else host_end
    if name_end <= colon + 3:
        return None  # no host
    if port_start >= 0:
        if port_start == host_end:
            port = None  # "host:" has no port
        else:
            for i in range(port_start, host_end):
                c = s[i]
                if c < 48 or c > 57:
                    return None  # not a number (or a second ':')
                port_value = port_value * 10 + (c - 48)
                if port_value > 65535:
                    return None
            port = port_value
    else:
        port = None
    scheme = PyUnicode_Substring(url, 0, colon)
    for i in range(colon):
        if 65 <= s[i] <= 90:
            scheme = scheme.lower()
            break
    host = PyUnicode_Substring(url, colon + 3, name_end)
    if lower_host:
        host = host.lower()
    if port is None:
        if scheme == _HTTP:
            port = 80
        elif scheme == _HTTPS:
            port = 443
    # path, then query (to '#'), then fragment
    for i in range(host_end, n):
        if s[i] == 35:
            h = i
            break
    path_end = h if h >= 0 else n
    for i in range(host_end, path_end):
        if s[i] == 63:
            q = i
            break
    if q >= 0:
        path = PyUnicode_Substring(url, host_end, q) if q > host_end else None
        query = PyUnicode_Substring(url, q + 1, path_end) if path_end > q + 1 else None
    else:
        path = PyUnicode_Substring(url, host_end, path_end) if path_end > host_end else None
        query = None
    fragment = PyUnicode_Substring(url, h + 1, n) if h >= 0 and n > h + 1 else None
    return (scheme, host, port, path, query, fragment)
