# cython: language_level=3, boundscheck=False, wraparound=False
"""A loader's consumed records appended to its batch, a run at a time, compiled.

The twin of ``ext/records_py.py`` (read its docstring): same function, same
results, same errors.  The loop over the messages and its checks run here; each
message's methods are still called (confluent-kafka's ``Message`` has no C API).
"""

__all__ = ["take_run"]


def take_run(messages, Py_ssize_t start, topic, partition, values, long long size):
    """Append the values of the run of ``(topic, partition)`` records from ``messages[start]`` (see the twin)."""
    if type(messages) is not list or type(values) is not list:
        raise TypeError(f"messages and values must be lists, not {type(messages).__name__} and "
                        f"{type(values).__name__}")
    if start < 0 or size <= 0:
        raise ValueError(f"start must be 0 or more and size positive, not {start} and {size}")
    cdef list taken = <list>messages, into = <list>values
    cdef Py_ssize_t index = start, count = len(taken)
    cdef long long last = -1
    while index < count:
        message = taken[index]
        if message.error() is not None or message.partition() != partition or message.topic() != topic:
            break
        last = message.offset()
        value = message.value()
        into.append(value if value is not None else b"")
        index += 1
        if (last + 1) % size == 0 or len(into) >= size:
            break
    return index, last
