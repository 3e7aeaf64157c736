"""Snowplow's ``json`` inputs: ``{field, schemaCriterion, jsonPath}``, compiled once.

The API request, SQL query and PII enrichments read values out of an event's
self-describing JSON the same way: ``field`` names where the entities are
(``unstruct_event``, ``contexts`` or ``derived_contexts``), ``schemaCriterion``
which of them (``iglu:com.acme/user/jsonschema/1-*-*``) and ``jsonPath`` what
in their ``data``.  :meth:`JsonRule.compile` checks and compiles such an
object at start-up (a :class:`ConfigError` naming the field otherwise), and
:meth:`JsonRule.entities` yields an event's matching entities in order; each
enrichment decides what to do with them (take the first, rewrite them all).

JSONPath is ``jsonpath-ng``'s extended syntax; ``$`` and dotted paths of
plain names (``$.user.id``, the common case) are walked directly, several
times faster.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from processor.enrichments.base import ConfigError, EventContext
from processor.iglu import IgluParseError, SchemaCriterion, parse_schema_key

JSON_FIELDS = ("contexts", "derived_contexts", "unstruct_event")
CONTEXTS_PREFIX = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/"
UNSTRUCT_PREFIX = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/"
_CACHE_LIMIT = 4096  # distinct schema URIs remembered per rule
_SIMPLE_PATH = re.compile(r"^\$(?:\.[A-Za-z_][A-Za-z0-9_-]*)*$")


def parse_json_path(path: str, where: str) -> Any:
    """``path`` compiled by ``jsonpath_ng`` (its ``find``/``update``); a :class:`ConfigError` naming ``where``."""
    from jsonpath_ng.ext import parse

    try:
        return parse(path)
    except Exception as exc:  # JSONPathError, and plain Exceptions from the parser too
        raise ConfigError(f"{where}: invalid JSONPath {path!r}: {exc}") from None


def compile_json_path(path: str, where: str) -> Callable[[Any], list[Any]]:
    """``path`` -> a function from a JSON value to the list of values it selects.

    ``$`` and dotted paths of plain names are walked directly; the rest is
    compiled by ``jsonpath_ng``.  Raises :class:`ConfigError` naming ``where``
    if the path does not compile.
    """
    if _SIMPLE_PATH.match(path):
        keys = tuple(path.split(".")[1:])

        def walk(value: Any) -> list[Any]:
            for key in keys:
                if not isinstance(value, dict) or key not in value:
                    return []
                value = value[key]
            return [value]
        return walk
    compiled = parse_json_path(path, where)
    return lambda value: [match.value for match in compiled.find(value)]


def _items(value: Any) -> list[dict]:
    """The entity dicts of a ``contexts``/``derived_contexts`` value: a list, or its ``contexts`` envelope."""
    if isinstance(value, dict) and str(value.get("schema", "")).startswith(CONTEXTS_PREFIX):
        value = value.get("data")
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def field_entities(event: Any, ctx: EventContext, field_name: str) -> list[dict]:
    """The self-describing dicts of one JSON field of an event being enriched.

    ``unstruct_event``: the event's own entity (inside its envelope);
    ``contexts``: the sent contexts; ``derived_contexts``: those already on the
    event, then those attached by earlier enrichments (``ctx.earlier``, the last
    one's first, as Snowplow hands them on), then the running one's (``ctx.derived``).
    The dicts are the event's own: rewriting them rewrites the event.
    """
    if field_name == "unstruct_event":
        value = event.unstruct_event
        if isinstance(value, dict):
            schema = value.get("schema")
            if isinstance(schema, str) and schema.startswith(UNSTRUCT_PREFIX):
                value = value.get("data")  # the envelope -> the event itself
            if isinstance(value, dict):
                return [value]
        return []
    if field_name == "contexts":
        return _items(event.contexts)
    return _items(event.derived_contexts) + _items(ctx.earlier) + _items(ctx.derived)


@dataclass(frozen=True)
class JsonRule:
    """One compiled ``{field, schemaCriterion, jsonPath}`` object."""

    field_name: str
    criterion: SchemaCriterion
    json_path: str
    select: Callable[[Any], list[Any]] = field(repr=False)  # the values the path selects in a value
    expression: Any = field(default=None, repr=False)       # the jsonpath_ng expression, when asked for
    _matches: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def compile(cls, spec: dict[str, Any], where: str, *, expression: bool = False) -> "JsonRule":
        """Check and compile ``spec``; ``where`` is its path in the config (``$.data.parameters.pii[0].json``).

        With ``expression`` the path is always compiled by ``jsonpath_ng``
        and kept as :attr:`expression` (to rewrite what it selects).
        """
        for required in ("field", "schemaCriterion", "jsonPath"):
            if required not in spec:
                raise ConfigError(f"{where}.{required}: is required")
        field_name = spec["field"]
        if field_name not in JSON_FIELDS:
            raise ConfigError(f"{where}.field: {field_name!r} is not one of {', '.join(JSON_FIELDS)}")
        try:
            criterion = SchemaCriterion.parse(spec["schemaCriterion"])
        except (IgluParseError, ValueError) as exc:
            raise ConfigError(f"{where}.schemaCriterion: {exc}") from None
        path = spec["jsonPath"]
        if expression:
            compiled = parse_json_path(path, f"{where}.jsonPath")
            return cls(field_name, criterion, path, lambda value: [m.value for m in compiled.find(value)],
                       compiled)
        return cls(field_name, criterion, path, compile_json_path(path, f"{where}.jsonPath"))

    def applies_to(self, schema: Any) -> bool:
        """Whether an entity of this schema URI is one the rule reads."""
        cache = self._matches
        hit = cache.get(schema) if isinstance(schema, str) else False
        if hit is None:
            try:
                hit = self.criterion.matches(parse_schema_key(schema))
            except (IgluParseError, ValueError, TypeError):
                hit = False
            if len(cache) < _CACHE_LIMIT:
                cache[schema] = hit
        return hit

    def entities(self, event: Any, ctx: EventContext) -> Iterator[dict]:
        """The event's entities in :attr:`field_name` whose schema matches, in order."""
        for entity in field_entities(event, ctx, self.field_name):
            if self.applies_to(entity.get("schema")):
                yield entity
