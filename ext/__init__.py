"""Byte-level hot path of snowmelt: compiled (Cython) with a pure-Python twin.

Every codec here exists twice: a Cython module (``ext/_*.pyx``) and a
pure-Python module with the same functions, the same behaviour and the same
error messages, which the tests run side by side.  This module is the one place
that picks between them, once, at import:

- ``SNOWMELT_NO_EXTENSIONS=1``: pure Python, the compiled modules are not even
  imported (``implementations()`` then lists only ``"python"``);
- otherwise the compiled modules are imported; if any of them fails (not built,
  built for another Python, ...):

  - with ``SNOWMELT_REQUIRE_EXTENSIONS=1`` (what CI sets) this import raises
    :class:`ImportError` naming the module and the reason;
  - without it, snowmelt falls back to pure Python and says so with a
    :class:`RuntimeWarning` and a warning on the ``ext`` logger.  It never falls
    back silently.

The choice is all or nothing: either every codec is compiled or none is, and
:data:`IMPLEMENTATION` says which (``"compiled"`` or ``"python"``).

Public API (re-exported from the chosen implementation):

- :class:`CollectorPayload`, :class:`ThriftDecodeError`, :data:`SCHEMA`
  (the same objects whichever implementation runs, from ``ext.payload``);
- ``encode_collector_payload(p) -> bytes`` and
  ``decode_collector_payload(data) -> CollectorPayload`` (``ext.thrift_py``);
- :class:`QueryStringError`, :class:`Base64Error` (shared, from ``ext.errors``);
- ``parse_query_string(qs) -> list[tuple[str, str]]``,
  ``percent_decode(s) -> str``,
  ``find_parameters(qs, names, last=True) -> dict[str, str]`` and
  ``parse_uri_query(qs) -> list[tuple[str, str | None]]`` (a collector payload's
  query string as Snowplow's enrich 3.9.0 reads it) (``ext.querystring_py``);
- ``decode_base64url(s) -> bytes`` and ``encode_base64url(b, pad=False) -> str``
  (``ext.base64url_py``);
- ``join_tsv(values, kinds, fallback) -> str``,
  ``oversized(values, limits) -> list[int]``, with the ``KIND_*`` codes, and
  ``join_lines(values) -> bytes``, values as lines (the S3 loader's gzip TSV)
  (``ext.tsv_py``);
- ``map_params(params, target, table) -> list[tuple]``, with the ``PARAM_*``
  codes: tracker-protocol values checked, converted and stored, and
  ``separated_pairs(params, names) -> bytes | None``, the event fingerprint's
  text, and ``string_objects(items, allowed, required) -> bool``, whether a
  POST body's events are all plain string objects, ``holds_none(params) -> bool``,
  whether a parameter has no value, and ``known_entities(items, known) -> bool``, whether
  a list holds only ``{"schema", "data"}`` objects naming schemas in ``known``
  (``ext.params_py``);
- ``split_url(url) -> (scheme, host, port, path, query, fragment) | None``
  (``ext.url_py``);
- ``has_numbers_to_keep(text) -> bool``, ``brackets_over(text, limit) -> bool`` and
  ``iglu_uris(data) -> set[bytes]``
  (``ext.scan_py``);
- ``SlotTable(cls, names)``: ``.new()`` an instance with those slots None,
  ``.values(obj)`` them as a tuple (``ext.slots_py``);
- ``take_run(messages, start, topic, partition, values, size) -> (next, last_offset)``:
  a loader's run of consumed records of one partition appended to its batch
  (``ext.records_py``);
- :data:`IMPLEMENTATION` and :func:`implementations`.

Adding a codec is one line in ``_TWINS``: its compiled module and its twin,
which must define the same ``__all__``; the names in it are exported from here.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from types import SimpleNamespace
from typing import TYPE_CHECKING

from .errors import Base64Error, QueryStringError
from .payload import SCHEMA, CollectorPayload, ThriftDecodeError

if TYPE_CHECKING:  # for readers and type checkers; the real binding is below
    from .base64url_py import decode_base64url, encode_base64url
    from .querystring_py import find_parameters, parse_query_string, parse_uri_query, percent_decode
    from .thrift_py import decode_collector_payload, encode_collector_payload
    from .params_py import holds_none, known_entities, map_params, separated_pairs, string_objects, tsv_safe
    from .url_py import split_url
    from .scan_py import brackets_over, has_numbers_to_keep, iglu_uris
    from .slots_py import SlotTable
    from .records_py import take_run
    from .tsv_py import join_lines, join_tsv, oversized

# (compiled module, pure-Python twin), both relative to this package.
_TWINS = (
    ("_thrift", "thrift_py"),
    ("_querystring", "querystring_py"),
    ("_base64url", "base64url_py"),
    ("_tsv", "tsv_py"),
    ("_params", "params_py"),
    ("_url", "url_py"),
    ("_scan", "scan_py"),
    ("_slots", "slots_py"),
    ("_records", "records_py"),
)

_log = logging.getLogger(__name__)


class Implementation(SimpleNamespace):
    """Every function of one implementation (``name`` is "compiled" or "python"),
    as attributes: ``impl.decode_collector_payload(data)``."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _exports(module) -> dict:
    return {name: getattr(module, name) for name in module.__all__}


def _load_compiled(python_modules) -> dict:
    """Import every compiled module; raise ImportError saying which one failed."""
    functions = {}
    for (compiled, _twin), twin_module in zip(_TWINS, python_modules):
        qualname = f"{__name__}.{compiled}"
        try:
            module = importlib.import_module(qualname)
        except Exception as exc:  # ImportError, or e.g. a binary-incompatibility ValueError
            raise ImportError(
                f"compiled extension {qualname} cannot be imported: {type(exc).__name__}: {exc}",
                name=qualname,
            ) from exc
        missing = [n for n in twin_module.__all__ if not hasattr(module, n)]
        if missing:
            raise ImportError(
                f"compiled extension {qualname} ({module.__file__}) lacks {', '.join(missing)}: "
                "it is stale; rebuild it",
                name=qualname,
            )
        functions.update({n: getattr(module, n) for n in twin_module.__all__})
    return functions


def _choose():
    python_modules = [importlib.import_module(f"{__name__}.{twin}") for _, twin in _TWINS]
    python = {}
    for module in python_modules:
        python.update(_exports(module))
    available = {"python": Implementation(name="python", **python)}
    if _flag("SNOWMELT_NO_EXTENSIONS"):
        return available, "python"
    try:
        compiled = _load_compiled(python_modules)
    except ImportError as exc:
        if _flag("SNOWMELT_REQUIRE_EXTENSIONS"):
            raise ImportError(f"SNOWMELT_REQUIRE_EXTENSIONS=1 but {exc}", name=exc.name) from exc
        message = (
            f"snowmelt: {exc}; falling back to the pure-Python implementation, which is "
            "several times slower (build with `pip install -e .` or `python setup.py "
            "build_ext --inplace`; set SNOWMELT_NO_EXTENSIONS=1 to choose pure Python "
            "deliberately, SNOWMELT_REQUIRE_EXTENSIONS=1 to make this an error)"
        )
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        _log.warning("%s", message)
        return available, "python"
    available["compiled"] = Implementation(name="compiled", **compiled)
    return available, "compiled"


_AVAILABLE, IMPLEMENTATION = _choose()
globals().update({k: v for k, v in vars(_AVAILABLE[IMPLEMENTATION]).items() if k != "name"})


def implementations() -> dict:
    """Every implementation that loaded, by name: always ``"python"``, and
    ``"compiled"`` unless the compiled modules are missing or disabled by
    ``SNOWMELT_NO_EXTENSIONS=1``.  Each value has every codec function as an
    attribute.  Tests use this to run the same assertions against both."""
    return dict(_AVAILABLE)


__all__ = [
    "CollectorPayload",
    "ThriftDecodeError",
    "QueryStringError",
    "Base64Error",
    "SCHEMA",
    "IMPLEMENTATION",
    "implementations",
    *(n for n in vars(_AVAILABLE["python"]) if n != "name"),
]
