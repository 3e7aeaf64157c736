"""A loader's consumed records appended to its batch, a run at a time, pure Python.

The twin of ``ext/_records.pyx``: same function, same results, same errors.

``take_run(messages, start, topic, partition, values, size) -> (next, last_offset)``
    Appends to the list ``values`` the value of each of ``messages[start:]``
    (confluent-kafka ``Message`` objects, or anything with their ``error()``,
    ``topic()``, ``partition()``, ``offset()`` and ``value()`` methods) while
    it is a record of ``topic`` and ``partition`` without an error; a value of
    None is appended as ``b""``.  It stops after the record that ends a batch
    of ``size``: whose offset + 1 is a multiple of ``size``, or that makes
    ``values`` hold ``size`` values.  Returns the index of the first message
    not taken and the offset of the last one taken (-1 when none was).
    ``messages`` and ``values`` must be lists (``TypeError``), ``start`` 0 or
    more and ``size`` positive (``ValueError``).

The loader's loop (``loaders.runner.Loader._take``) takes its records this way
when a partition's batch has begun: a call per run of records instead of five
method calls and a few checks in the interpreter per record.
"""
from __future__ import annotations

__all__ = ["take_run"]


def take_run(messages: list, start: int, topic: str, partition: int, values: list, size: int) -> tuple[int, int]:
    """Append the values of the run of ``(topic, partition)`` records from ``messages[start]`` (see the module)."""
    if type(messages) is not list or type(values) is not list:
        raise TypeError(f"messages and values must be lists, not {type(messages).__name__} and "
                        f"{type(values).__name__}")
    if start < 0 or size <= 0:
        raise ValueError(f"start must be 0 or more and size positive, not {start} and {size}")
    index, count, last = start, len(messages), -1
    while index < count:
        message = messages[index]
        if message.error() is not None or message.partition() != partition or message.topic() != topic:
            break
        last = message.offset()
        value = message.value()
        values.append(value if value is not None else b"")
        index += 1
        if (last + 1) % size == 0 or len(values) >= size:
            break
    return index, last
