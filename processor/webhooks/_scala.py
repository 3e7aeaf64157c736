"""Iteration orders of Scala 2.12's collections, for adapters whose output order follows them.

Snowplow's enrich 3.9.0 is built with Scala 2.12.15.  Where an adapter collects
values in a ``Map`` and writes them out (JSON objects, lists of contexts), the
order of the text is the map's iteration order:

* an immutable ``Map`` of at most four keys iterates in insertion order
  (``Map1`` .. ``Map4``); a bigger one is a hash trie, iterated by the key's
  improved hash, five bits per level from the lowest (:func:`immutable_order`);
* ``groupBy`` returns such a map, its keys inserted in the order first met
  (:func:`group_by_order`).

A key's hash is Java's: ``String.hashCode`` for text, and MurmurHash3's
``productHash`` for a case class such as iglu-core's ``SchemaKey``
(:func:`schema_key_hash`).
"""
from __future__ import annotations

from typing import Callable, Hashable, Iterable, TypeVar

from processor.scala_order import java_string_hash as _java_string_hash

K = TypeVar("K", bound=Hashable)
_MASK = 0xFFFFFFFF


def _int32(value: int) -> int:
    value &= _MASK
    return value - (1 << 32) if value & 0x80000000 else value


def _rotl(value: int, distance: int) -> int:
    value &= _MASK
    return ((value << distance) | (value >> (32 - distance))) & _MASK


def _mix_last(h: int, data: int) -> int:
    k = (data * 0xCC9E2D51) & _MASK
    k = _rotl(k, 15)
    k = (k * 0x1B873593) & _MASK
    return (h ^ k) & _MASK


def _mix(h: int, data: int) -> int:
    h = _rotl(_mix_last(h, data), 13)
    return (h * 5 + 0xE6546B64) & _MASK


def _avalanche(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h


def product_hash(element_hashes: Iterable[int]) -> int:
    """``MurmurHash3.productHash`` of a case class whose elements hash to these (unsigned 32-bit)."""
    h = 0xCAFEBABE
    arity = 0
    for element in element_hashes:
        h = _mix(h, element)
        arity += 1
    return _avalanche(h ^ arity)


def schema_key_hash(vendor: str, name: str, fmt: str = "jsonschema", version: tuple[int, int, int] = (1, 0, 0)) -> int:
    """``SchemaKey(vendor, name, format, SchemaVer.Full(model, revision, addition)).hashCode``, unsigned."""
    ver = product_hash(v & _MASK for v in version)
    return product_hash((_java_string_hash(vendor), _java_string_hash(name), _java_string_hash(fmt), ver))


def _trie_path(h: int) -> tuple[int, ...]:
    h = (h + (~(h << 9) & _MASK)) & _MASK
    h ^= h >> 14
    h = (h + (h << 4)) & _MASK
    h ^= h >> 10
    return (h & 31, h >> 5 & 31, h >> 10 & 31, h >> 15 & 31, h >> 20 & 31, h >> 25 & 31, h >> 30)


def immutable_order(keys: list[K], hash_of: Callable[[K], int] = _java_string_hash) -> list[K]:
    """``keys`` (distinct, in insertion order) in the order an immutable ``Map`` holding them iterates."""
    if len(keys) <= 4:
        return list(keys)
    return sorted(keys, key=lambda k: _trie_path(hash_of(k)))


def group_by_order(keys: list[K], hash_of: Callable[[K], int] = _java_string_hash) -> list[K]:
    """The order of the immutable ``Map`` that ``groupBy`` returns, ``keys`` being its distinct keys in the
    order they were first met: 2.12.15 keeps up to four keys in that order, more go through a
    ``mutable.HashMap`` into a hash trie."""
    return immutable_order(keys, hash_of)
