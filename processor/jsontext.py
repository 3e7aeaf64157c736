"""JSON text in and out on the per-event path: orjson, with the standard library behind it.

``loads`` and ``dumps`` are what the stage uses for tracker JSON (``payload_data``
bodies, contexts, self-describing events) and for the JSON columns of the
enriched TSV.  orjson parses and prints these small documents four to eight
times faster than the ``json`` module.  Where orjson refuses a document the
``json`` module accepts -- integers beyond 64 bits, UTF-16/32 bytes -- the
``json`` module takes over, so what parses is unchanged; its error message is
the one reported for text that is not JSON.  orjson 3.11 reads an integer
beyond 64 bits as a float (``123456789012345678901234567890`` becomes
``1.2345678901234568e+29``): a text with a run of 19 digits or more is read by
the ``json`` module, which keeps every integer exact, as Snowplow's enrich does.  ``NaN`` and ``Infinity`` are not
JSON and are refused by both.

``dumps`` is compact (no spaces), keeps non-ASCII as UTF-8 and escapes control
characters.  Floats are printed shortest-round-trip; an exponent is printed
without ``+`` (``1e21``), as JavaScript trackers write negative exponents
(``1.5e-7``).
"""
from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["loads", "dumps"]

_orjson_loads = orjson.loads
_orjson_dumps = orjson.dumps
_OrjsonDecodeError = orjson.JSONDecodeError


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_std_loads = json.JSONDecoder(parse_constant=_refuse_constant).decode
_std_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


#: a run of digits that may be an integer orjson cannot hold exactly (int64 has 19 digits at most)
_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")


def loads(text: str | bytes) -> Any:
    """The parsed document; ``ValueError`` (``json.JSONDecodeError``) when it is not JSON."""
    if (_LONG_DIGITS.search(text) if isinstance(text, str) else _LONG_DIGITS_BYTES.search(text)) is not None:
        return _std(text)
    try:
        return _orjson_loads(text)
    except _OrjsonDecodeError:
        return _std(text)


def _std(text: str | bytes) -> Any:
    if isinstance(text, (bytes, bytearray)):
        return json.loads(text, parse_constant=_refuse_constant)  # detects UTF-16/32 as json does
    return _std_loads(text)


def dumps(doc: Any) -> str:
    """Compact JSON text; ``TypeError``/``ValueError`` for what JSON cannot hold."""
    try:
        return _orjson_dumps(doc).decode("utf-8")
    except TypeError:  # integers beyond 64 bits, and anything orjson does not know
        return _std_dumps(doc)
