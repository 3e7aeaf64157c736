"""Analytics SDK: one enriched TSV line -> the JSON-shaped dict Snowplow's SDKs produce.

:func:`parse_tsv` turns a line of Snowplow's 131-field enriched TSV (ours or
Snowplow's) into the dict that Snowplow's analytics SDKs make of it:

* typed values: ``int`` for integer fields, ``float`` for ``geo_latitude``,
  ``geo_longitude``, ``se_value`` and the money fields, ``bool`` for
  ``br_features_*``, ``br_cookies`` and ``dvce_ismobile`` (``1``/``0``),
  timestamps as ISO-8601 UTC (``2026-11-27 23:58:43.123`` ->
  ``2026-11-27T23:58:43.123Z``; the fraction is kept as written), strings as is;
* empty fields left out;
* ``geo_location`` = ``"<lat>,<lon>"`` (as written in the TSV) when both are set;
* ``contexts`` and ``derived_contexts`` flattened into one key per schema,
  ``contexts_<vendor>_<name>_<model>`` holding the list of that schema's
  ``data`` objects in order (both fields use the ``contexts_`` prefix; a schema
  present in both gets the contexts' entries followed by the derived ones);
* ``unstruct_event`` flattened to ``unstruct_event_<vendor>_<name>_<model>``
  holding its ``data``.

In a key, the vendor has ``.`` and ``-`` replaced by ``_`` and is lower-cased,
the name is turned from camelCase to snake_case (an ``_`` before each capital
that follows a character other than a capital or ``_``) and lower-cased, and
the model is the schema's major version: ``iglu:com.acme/clickEvent/jsonschema/2-1-0``
-> ``contexts_com_acme_click_event_2``.

Every error in a line (wrong field count, bad integer, float, boolean,
timestamp, JSON or schema URI) raises :class:`ParseError`, which names all
the offending fields at once.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable

from processor.enriched import FIELD_KINDS, FIELDS

__all__ = ["ParseError", "parse_tsv", "shredded_key"]

_FIELD_COUNT = len(FIELDS)


class ParseError(ValueError):
    """A line that is not a valid enriched event.

    ``errors`` holds one message per problem and ``fields`` the names of the
    fields concerned (empty for a wrong field count).
    """

    def __init__(self, errors: list[str], fields: list[str]):
        self.errors = list(errors)
        self.fields = list(fields)
        super().__init__("; ".join(self.errors))


_SCHEMA_URI = re.compile(r"iglu:([a-zA-Z0-9\-_.]+)/([a-zA-Z0-9\-_]+)/([a-zA-Z0-9\-_]+)/([1-9][0-9]*)-(?:0|[1-9][0-9]*)-(?:0|[1-9][0-9]*)")
_CAMEL = re.compile(r"([^A-Z_])([A-Z])")
_VENDOR_CHARS = re.compile(r"[.\-]")
_TSTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,9})?")


@lru_cache(maxsize=4096)
def shredded_key(prefix: str, schema: str) -> str:
    """``<prefix>_<vendor>_<name>_<model>`` for an Iglu URI; ``ValueError`` if it is not one."""
    m = _SCHEMA_URI.fullmatch(schema) if isinstance(schema, str) else None
    if m is None:
        raise ValueError(f"invalid Iglu schema URI {schema!r}")
    vendor, name, _format, model = m.groups()
    vendor = _VENDOR_CHARS.sub("_", vendor).lower()
    name = _CAMEL.sub(r"\1_\2", name).lower()
    return f"{prefix}_{vendor}_{name}_{model}"


# --- per-kind converters: raw TSV text -> value ------------------------------------


def _conv_int(s: str) -> int:
    return int(s)


def _conv_float(s: str) -> float:
    return float(s)


def _conv_bool(s: str) -> bool:
    if s == "1":
        return True
    if s == "0":
        return False
    raise ValueError(f"expected 0 or 1, got {s!r}")


def _conv_timestamp(s: str) -> str:
    if _TSTAMP.fullmatch(s) is None:
        raise ValueError(f"expected yyyy-MM-dd HH:mm:ss.SSS, got {s!r}")
    datetime.fromisoformat(s[:23])  # range check (month 13, hour 25, ...)
    return s[:10] + "T" + s[11:] + "Z"


def _self_describing(doc: Any) -> tuple[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("schema"), str) or "data" not in doc:
        raise ValueError("not a self-describing JSON object")
    return doc["schema"], doc["data"]


def _contexts(s: str, out: dict[str, Any]) -> None:
    _, items = _self_describing(json.loads(s))
    if not isinstance(items, list):
        raise ValueError("contexts data is not an array")
    for item in items:
        schema, data = _self_describing(item)
        key = shredded_key("contexts", schema)
        existing = out.get(key)
        if existing is None:
            out[key] = [data]
        else:
            existing.append(data)


def _unstruct(s: str, out: dict[str, Any]) -> None:
    _, inner = _self_describing(json.loads(s))
    schema, data = _self_describing(inner)
    out[shredded_key("unstruct_event", schema)] = data


_KIND_CONVERTERS: dict[str, Callable[[str], Any] | None] = {
    "string": None,
    "int": _conv_int,
    "bool": _conv_bool,
    "float": _conv_float,
    "decimal": _conv_float,
    "timestamp": _conv_timestamp,
}

# (name, converter) per column; converter None = string kept as is, "json" handled below.
_COLUMNS: tuple[tuple[str, Any], ...] = tuple(
    (name, "json" if FIELD_KINDS[name] == "json" else _KIND_CONVERTERS[FIELD_KINDS[name]])
    for name in FIELDS
)
_JSON_HANDLERS = {"contexts": _contexts, "derived_contexts": _contexts, "unstruct_event": _unstruct}
_LAT = FIELDS.index("geo_latitude")
_LON = FIELDS.index("geo_longitude")


def parse_tsv(line: str) -> dict[str, Any]:
    """One enriched TSV line (a trailing newline is allowed) -> the SDK's dict. See the module doc."""
    if line.endswith("\n"):
        line = line[:-2] if line.endswith("\r\n") else line[:-1]
    values = line.split("\t")
    if len(values) != _FIELD_COUNT:
        raise ParseError([f"Expected {_FIELD_COUNT} fields, received {len(values)} fields."], [])
    out: dict[str, Any] = {}
    shredded: dict[str, Any] = {}
    errors: list[str] | None = None
    for (name, conv), value in zip(_COLUMNS, values):
        if not value:
            continue
        if conv is None:
            out[name] = value
            continue
        try:
            if conv == "json":
                _JSON_HANDLERS[name](value, shredded)
            else:
                out[name] = conv(value)
        except (ValueError, TypeError, KeyError) as exc:
            if errors is None:
                errors, bad = [], []
            errors.append(f"field {name}: {exc} (value {value[:200]!r})")
            bad.append(name)
    if errors:
        raise ParseError(errors, bad)
    lat, lon = values[_LAT], values[_LON]
    if lat and lon:
        out["geo_location"] = f"{lat},{lon}"
    if shredded:
        out.update(shredded)
    return out
