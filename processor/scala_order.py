"""Orders Snowplow's enrich 3.9.0 gets from the JVM: Java's ``String.hashCode`` and the order Scala 2.12
iterates an immutable ``Map``.

Bad rows and ``Transform`` follow these orders (an event's parameters, JSON members converted through a
Scala map), so snowmelt reproduces them.  A module of its own, below :mod:`processor.iglu` and
:mod:`processor.protocol`, which both use it.
"""
from __future__ import annotations

__all__ = ["java_string_hash", "hash_path", "scala_map_order"]


def java_string_hash(text: str) -> int:
    """``String.hashCode``: over UTF-16 code units, as an unsigned 32-bit int."""
    h = 0
    if text.isascii():
        for c in text.encode("ascii"):
            h = (31 * h + c) & 0xFFFFFFFF
        return h
    data = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h


def _scala_hash_path(name: str) -> tuple[int, ...]:
    """Where Scala 2.12's ``immutable.HashMap`` puts a key: its improved hash, 5 bits per trie level
    from the lowest; iterating the trie visits keys in the order of these tuples."""
    h = java_string_hash(name)
    h = (h + (~(h << 9) & 0xFFFFFFFF)) & 0xFFFFFFFF
    h ^= h >> 14
    h = (h + (h << 4)) & 0xFFFFFFFF
    h ^= h >> 10
    return (h & 31, h >> 5 & 31, h >> 10 & 31, h >> 15 & 31, h >> 20 & 31, h >> 25 & 31, h >> 30)


_HASH_PATHS: dict[str, tuple[int, ...]] = {}


def hash_path(name: str) -> tuple[int, ...]:
    path = _HASH_PATHS.get(name)
    if path is None:
        path = _scala_hash_path(name)
        if len(_HASH_PATHS) < 4096:
            _HASH_PATHS[name] = path
    return path


def scala_map_order(names: list[str]) -> list[str]:
    """``names`` (distinct, in insertion order) in the order Scala 2.12 iterates an immutable ``Map`` built
    from them: insertion order up to 4 keys (``Map1`` .. ``Map4``), the hash trie's order beyond.

    Snowplow's enrich 3.9.0 keeps an event's parameters in such a map (``RawEvent.parameters``): its
    ``Transform`` visits them in this order, and bad rows list them in it."""
    if len(names) <= 4:
        return list(names)
    return sorted(names, key=hash_path)
