# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Scans of long text, compiled.

The twin of ``ext/scan_py.py`` (read its docstring): the text is read in place,
as bytes or as the code units of a ``str`` of any kind, and only where a run
could be (a long run is found by probing every ``length``-th position).
"""

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)

__all__ = ["has_digit_run"]


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


def has_digit_run(text, length):
    """Whether ``text`` holds ``length`` ASCII digits in a row; see ``ext.scan_py``."""
    cdef Py_ssize_t want = max(1, int(length))
    cdef const unsigned char[::1] view
    if isinstance(text, str):
        return _run(PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), want)
    if isinstance(text, (bytes, bytearray)):
        if len(text) == 0:
            return False
        view = text
        return _run(1, &view[0], len(text), want)
    raise TypeError(f"has_digit_run() needs str or bytes, not {type(text).__name__}")
